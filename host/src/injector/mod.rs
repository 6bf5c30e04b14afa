//! The injector: one service that takes the original's
//! `injector_event_groups` for several emulators at once and hands each
//! emulator its groups (its one job: routing groups to emulators).
//!
//! ```text
//! POST /inject ──► read and check the whole body (http::read_inject_request,
//!                  as an emulator does: 400/408/413 and nothing handed on)
//!              ──► split by bitstream_emulator_id (deliver::split)
//!                    unknown id ─► that group reported 404, naming the known ids
//!                    known id   ─► one batch per emulator, its groups in request order
//!              ──► every batch at once (deliver::deliver):
//!                    in-process emulator ─► http::schedule (the engine's inject_all)
//!                    remote emulator     ─► POST <url>/inject with just its groups
//!                                           (timeout, bounded calls in flight)
//!              ──► one entry per group, in request order
//! ```
//!
//! [`Targets`] maps emulator ids to a [`Target`]: an in-process
//! [`crate::engine::Emulator`] (a fleet member) or a [`RemoteEmulator`]
//! (the base URL of an emulator's HTTP API). [`router`] and [`serve`] give
//! the HTTP service; it is served with the emulators' own connection rules
//! ([`crate::http::serve_router`]: body limit, header and body timeouts,
//! trailing slashes accepted) and answers errors as they do (`{"error":
//! ...}`).
//!
//! **Each emulator gets its groups in one call**, so their relative order
//! and offsets hold there; an emulator schedules all of them or none (one
//! refused group, e.g. an unknown block, leaves that emulator's other
//! groups unscheduled, and says so). Emulators are independent: a failure
//! at one never stops another's groups. Once a request is checked, its
//! delivery runs on a task of its own to the end, even if the client goes
//! away meanwhile. Offsets count from when the
//! emulator receives its groups (for a remote one, the time of one
//! loopback or cluster hop after the injector's request).
//!
//! **The answer.** A JSON object: `groups`, one entry per group in
//! request order (`group` index, `bitstream_emulator_id`,
//! `ip_block_emulator_id`, `events`, `scheduled`, `status`, `delivered`,
//! `target`, and `error` when it was not scheduled; `blocks` when its
//! block is unknown there); `scheduled` (events), `delivered_groups`,
//! `failed_groups`; and `error`, summing up, when a group failed.
//!
//! **The status.** The original's clients treat any 2xx as success, so a
//! 2xx is given only when every group was scheduled: **202** (as an
//! emulator's own `/inject`). When a group was not, the status is an
//! error, so that those clients notice, and the body still reports every
//! group (those reported scheduled were scheduled: there is no rollback
//! across emulators). It is the failed groups' status when they share one
//! (404: unknown emulator or block; 429: an emulator's queue full; 502: an
//! emulator unreachable, or answering 5xx or not as an emulator; 504: no
//! answer within the forward timeout), else 502 when any failure is on the
//! emulators' side, else 400. A 207 Multi-Status was considered and
//! refused: clients that check for 2xx would take a partial failure for
//! success.

mod deliver;
mod service;
mod targets;

pub use service::{
    router, serve, InjectorError, InjectorOptions, InjectorServeError, DEFAULT_FORWARD_TIMEOUT,
    DEFAULT_MAX_FORWARDS,
};
pub use targets::{parse_spec, RemoteEmulator, Target, TargetError, Targets};
