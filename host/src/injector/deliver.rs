//! Splitting a checked request by emulator, handing each emulator its
//! groups in one call, and the per-group answer.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use reqwest::Client;
use serde_json::{json, Value as JsonValue};
use tokio::sync::Semaphore;

use super::targets::{RemoteEmulator, Target, Targets};
use crate::http::{schedule, InjectGroup, InjectRequest};

/// The largest answer read from a remote emulator's `/inject` (it answers
/// a few hundred bytes; anything longer is not an emulator's answer).
const MAX_REMOTE_ANSWER: usize = 64 * 1024;

/// The groups of one request for one known emulator, in request order,
/// each with its index in the request.
pub(crate) struct Batch {
    /// The emulator id.
    pub(crate) emulator: String,
    /// Where its groups go.
    pub(crate) target: Target,
    /// Its groups.
    pub(crate) groups: Vec<(usize, InjectGroup)>,
    /// The body of its own `POST /inject`: just these groups (also what
    /// an in-process emulator's waiting injections are charged for).
    pub(crate) body: Vec<u8>,
}

/// What became of one group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// Its index in the request.
    pub(crate) group: usize,
    /// Its `bitstream_emulator_id`.
    pub(crate) emulator: String,
    /// Its `ip_block_emulator_id`.
    pub(crate) block: String,
    /// Its events.
    pub(crate) events: usize,
    /// The events scheduled (all or none).
    pub(crate) scheduled: usize,
    /// 202 when scheduled; else the status of the refusal (404: unknown
    /// emulator or block; 502: unreachable; 504: no answer in time; or
    /// the emulator's own status).
    pub(crate) status: StatusCode,
    /// Where it went (`in-process` or the base URL); `None` for an unknown
    /// emulator.
    pub(crate) target: Option<String>,
    /// Why it was not scheduled.
    pub(crate) error: Option<String>,
    /// The blocks of its emulator, when the block was unknown there.
    pub(crate) blocks: Option<JsonValue>,
}

impl Outcome {
    fn new(group: usize, g: &InjectGroup, target: Option<String>) -> Outcome {
        Outcome {
            group,
            emulator: g.bitstream_emulator_id.clone(),
            block: g.ip_block_emulator_id.clone(),
            events: g.events.len(),
            scheduled: 0,
            status: StatusCode::ACCEPTED,
            target,
            error: None,
            blocks: None,
        }
    }

    fn delivered(&self) -> bool {
        self.error.is_none()
    }

    /// The group's entry in the answer.
    pub(crate) fn to_json(&self) -> JsonValue {
        let mut entry = json!({
            "group": self.group,
            "bitstream_emulator_id": self.emulator,
            "ip_block_emulator_id": self.block,
            "events": self.events,
            "scheduled": self.scheduled,
            "status": self.status.as_u16(),
            "delivered": self.delivered(),
            "target": self.target,
        });
        if let Some(error) = &self.error {
            entry["error"] = json!(error);
        }
        if let Some(blocks) = &self.blocks {
            entry["blocks"] = blocks.clone();
        }
        entry
    }
}

/// Splits `request` by emulator: one [`Batch`] per known emulator (in the
/// order each first appears, its groups in request order), and the
/// outcome of every group for an unknown one. `outcomes` holds one entry
/// per group, in request order; the batches' entries are filled in by
/// [`deliver`].
pub(crate) fn split(request: InjectRequest, targets: &Targets) -> (Vec<Batch>, Vec<Outcome>) {
    let mut batches: Vec<Batch> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut outcomes = Vec::with_capacity(request.injector_event_groups.len());
    for (g, group) in request.injector_event_groups.into_iter().enumerate() {
        let id = group.bitstream_emulator_id.as_str();
        let Some(target) = targets.get(id) else {
            let mut outcome = Outcome::new(g, &group, None);
            outcome.status = StatusCode::NOT_FOUND;
            outcome.error = Some(unknown_emulator(id, targets));
            outcomes.push(outcome);
            continue;
        };
        outcomes.push(Outcome::new(g, &group, Some(target.describe())));
        let b = *index.entry(id.to_owned()).or_insert_with(|| {
            batches.push(Batch {
                emulator: id.to_owned(),
                target: target.clone(),
                groups: Vec::new(),
                body: Vec::new(),
            });
            batches.len() - 1
        });
        batches[b].groups.push((g, group));
    }
    for batch in &mut batches {
        let groups: Vec<&InjectGroup> = batch.groups.iter().map(|(_, g)| g).collect();
        batch.body = serde_json::to_vec(&json!({ "injector_event_groups": groups }))
            .expect("a parsed request serializes");
    }
    (batches, outcomes)
}

fn unknown_emulator(id: &str, targets: &Targets) -> String {
    let known: Vec<&str> = targets.ids().collect();
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    format!(
        "no emulator \"{id}\" is known to this injector (known: {known}); \
         start the injector with --emulator {id}=<url>; the other groups were handed on"
    )
}

/// How remote emulators are reached.
pub(crate) struct Remote {
    /// The HTTP client (connection pool).
    pub(crate) client: Client,
    /// Remote calls in flight at once, across every request.
    pub(crate) permits: Semaphore,
    /// How long one remote call may take, waiting for a permit included.
    pub(crate) timeout: Duration,
}

/// A refusal: the status and the JSON error body (from the emulator, or
/// made here).
struct Refusal {
    status: StatusCode,
    body: JsonValue,
}

impl Refusal {
    fn new(status: StatusCode, message: String) -> Refusal {
        Refusal {
            status,
            body: json!({ "error": message }),
        }
    }
}

/// Hands every batch to its emulator (all batches at once; each emulator
/// gets its groups in one call, so their order and offsets hold) and
/// fills in their groups' outcomes.
pub(crate) async fn deliver(batches: Vec<Batch>, outcomes: &mut [Outcome], remote: &Remote) {
    let calls = batches.iter().map(|batch| deliver_batch(batch, remote));
    let results = futures_util::future::join_all(calls).await;
    for (batch, result) in batches.iter().zip(results) {
        settle(batch, result, outcomes);
    }
}

async fn deliver_batch(batch: &Batch, remote: &Remote) -> Result<usize, Refusal> {
    match &batch.target {
        Target::InProcess(emulator) => schedule(emulator, batch.groups.clone(), batch.body.len())
            .await
            .map_err(|e| {
                let mut body = e.body().clone();
                body["error"] = json!(format!(
                    "emulator \"{}\" (in-process) refused its groups ({}): {}",
                    batch.emulator,
                    e.status(),
                    body["error"].as_str().unwrap_or_default()
                ));
                Refusal {
                    status: e.status(),
                    body,
                }
            }),
        Target::Remote(url) => {
            let events: usize = batch.groups.iter().map(|(_, g)| g.events.len()).sum();
            let call = forward(url, &batch.emulator, batch.body.clone(), events, remote);
            match tokio::time::timeout(remote.timeout, call).await {
                Ok(result) => result,
                Err(_) => Err(timed_out(&batch.emulator, url, remote.timeout)),
            }
        }
    }
}

/// The refusal of a remote emulator that did not answer in time.
fn timed_out(id: &str, url: &RemoteEmulator, timeout: Duration) -> Refusal {
    Refusal::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "emulator \"{id}\" at {} did not answer within {} ms; nothing is known to be \
             scheduled there (check it with GET {}/state)",
            url.base(),
            timeout.as_millis(),
            url.base()
        ),
    )
}

/// POSTs `body` to the emulator's `/inject`; answers the events it
/// scheduled.
async fn forward(
    url: &RemoteEmulator,
    id: &str,
    body: Vec<u8>,
    events: usize,
    remote: &Remote,
) -> Result<usize, Refusal> {
    let _permit = remote
        .permits
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let answer = remote
        .client
        .post(url.inject_url().clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let mut response = answer.map_err(|e| {
        if e.is_timeout() {
            return timed_out(id, url, remote.timeout);
        }
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "cannot reach emulator \"{id}\" at {}: {}; is it running there?",
                url.base(),
                error_chain(&e)
            ),
        )
    })?;
    let status = response.status();
    let mut text = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if text.len() + chunk.len() > MAX_REMOTE_ANSWER {
                    return Err(Refusal::new(
                        StatusCode::BAD_GATEWAY,
                        format!(
                            "emulator \"{id}\" at {} answered {status} with more than {MAX_REMOTE_ANSWER} bytes: \
                             is a bitstream emulator serving there?",
                            url.base()
                        ),
                    ));
                }
                text.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                    "emulator \"{id}\" at {} answered {status} but its body could not be read: {}",
                    url.base(),
                    error_chain(&e)
                ),
                ))
            }
        }
    }
    let json: Option<JsonValue> = serde_json::from_slice(&text).ok();
    let not_an_emulator = || {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "emulator \"{id}\" at {} answered {status} with {:?}, not a bitstream emulator's \
                 JSON: is the URL right?",
                url.base(),
                String::from_utf8_lossy(&text[..text.len().min(200)])
            ),
        )
    };
    if status.is_success() {
        let scheduled = json
            .as_ref()
            .and_then(|j| j["scheduled"].as_u64())
            .ok_or_else(not_an_emulator)?;
        if scheduled != events as u64 {
            return Err(Refusal::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "emulator \"{id}\" at {} scheduled {scheduled} events of the {events} sent",
                    url.base()
                ),
            ));
        }
        return Ok(events);
    }
    let mut body = json
        .filter(|j| j["error"].is_string())
        .ok_or_else(not_an_emulator)?;
    body["error"] = json!(format!(
        "emulator \"{id}\" at {} refused its groups ({status}): {}",
        url.base(),
        body["error"].as_str().unwrap_or_default()
    ));
    // The emulator names a group by its place in what it was sent.
    body["sent_group"] = body["group"].take();
    Err(Refusal { status, body })
}

/// `err` and its sources, joined with ": ".
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// Fills in the outcomes of `batch`'s groups.
fn settle(batch: &Batch, result: Result<usize, Refusal>, outcomes: &mut [Outcome]) {
    let refusal = match result {
        Ok(_) => {
            for (g, group) in &batch.groups {
                outcomes[*g].scheduled = group.events.len();
            }
            return;
        }
        Err(refusal) => refusal,
    };
    // The group the emulator named: by its index in the request
    // (in-process) or in what it was sent (remote).
    let culprit = match &batch.target {
        Target::InProcess(_) => refusal.body["group"].as_u64(),
        Target::Remote(_) => refusal.body["sent_group"]
            .as_u64()
            .and_then(|k| batch.groups.get(usize::try_from(k).ok()?))
            .map(|(g, _)| *g as u64),
    };
    let message = refusal.body["error"]
        .as_str()
        .unwrap_or("refused")
        .to_owned();
    for (g, _) in &batch.groups {
        let outcome = &mut outcomes[*g];
        outcome.status = refusal.status;
        match culprit {
            Some(c) if c != *g as u64 => {
                outcome.error = Some(format!(
                    "not scheduled: emulator \"{}\" refused injector_event_groups[{c}] of this \
                     request, and an emulator schedules all of its groups or none",
                    batch.emulator
                ));
            }
            _ => {
                outcome.error = Some(message.clone());
                outcome.blocks = refusal.body.get("blocks").cloned();
            }
        }
    }
}

/// The status of the whole answer (see the module docs): 202 when every
/// group was scheduled; else the failed groups' status when they share
/// one (an emulator's 5xx becomes 502), else 502 when any failure is on
/// the emulators' side (5xx), else 400.
pub(crate) fn overall_status(outcomes: &[Outcome]) -> StatusCode {
    let failed: Vec<StatusCode> = outcomes
        .iter()
        .filter(|o| !o.delivered())
        .map(|o| match o.status {
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => o.status,
            s if s.is_server_error() => StatusCode::BAD_GATEWAY,
            s => s,
        })
        .collect();
    let Some(&first) = failed.first() else {
        return StatusCode::ACCEPTED;
    };
    if failed.iter().all(|&s| s == first) {
        first
    } else if failed.iter().any(StatusCode::is_server_error) {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// The whole answer: `groups` (one entry per group, in request order),
/// totals, and, when a group failed, `error` summing up what failed.
pub(crate) fn answer(outcomes: &[Outcome]) -> JsonValue {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.delivered()).collect();
    let mut body = json!({
        "groups": outcomes.iter().map(Outcome::to_json).collect::<Vec<_>>(),
        "scheduled": outcomes.iter().map(|o| o.scheduled).sum::<usize>(),
        "delivered_groups": outcomes.len() - failed.len(),
        "failed_groups": failed.len(),
    });
    if let Some(first) = failed.first() {
        body["error"] = json!(format!(
            "{} of {} injector event groups were not scheduled (see \"groups\"; the others were); \
             first: injector_event_groups[{}]: {}",
            failed.len(),
            outcomes.len(),
            first.group,
            first.error.as_deref().unwrap_or_default()
        ));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::injector::targets::RemoteEmulator;

    fn request(groups: &[(&str, &str, usize)]) -> InjectRequest {
        let groups: Vec<JsonValue> = groups
            .iter()
            .map(|(emulator, block, events)| {
                json!({"bitstream_emulator_id": emulator, "ip_block_emulator_id": block,
                       "events": vec![json!({"severity": "WARNING", "value": {"e": 1}, "offset": 5}); *events]})
            })
            .collect();
        serde_json::from_value(json!({ "injector_event_groups": groups })).unwrap()
    }

    fn targets(ids: &[&str]) -> Targets {
        let mut targets = Targets::new();
        for (port, id) in (5001..).zip(ids) {
            let url = RemoteEmulator::parse(&format!("http://127.0.0.1:{port}")).unwrap();
            targets.add(*id, Target::Remote(url)).unwrap();
        }
        targets
    }

    #[test]
    fn groups_are_split_by_emulator_keeping_request_order() {
        let (batches, outcomes) = split(
            request(&[
                ("b", "x", 1),
                ("a", "y", 2),
                ("ghost", "x", 1),
                ("b", "z", 0),
                ("a", "x", 1),
            ]),
            &targets(&["a", "b"]),
        );
        let shape: Vec<(&str, Vec<usize>)> = batches
            .iter()
            .map(|b| {
                (
                    b.emulator.as_str(),
                    b.groups.iter().map(|(g, _)| *g).collect(),
                )
            })
            .collect();
        assert_eq!(shape, [("b", vec![0, 3]), ("a", vec![1, 4])]);
        // Each batch's body is the format again, with just its groups.
        let sent: JsonValue = serde_json::from_slice(&batches[1].body).unwrap();
        let sent = sent["injector_event_groups"].as_array().unwrap().clone();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0]["ip_block_emulator_id"], "y");
        assert_eq!(sent[0]["events"][1]["offset"], 5.0);
        assert_eq!(sent[1]["ip_block_emulator_id"], "x");
        // One outcome per group, in request order; only the unknown
        // emulator's is settled already.
        assert_eq!(
            outcomes.iter().map(|o| o.group).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(outcomes[2].status, StatusCode::NOT_FOUND);
        let error = outcomes[2].error.as_deref().unwrap();
        assert!(
            error.contains("\"ghost\"") && error.contains("known: a, b"),
            "{error}"
        );
        assert!(outcomes
            .iter()
            .filter(|o| o.group != 2)
            .all(|o| o.error.is_none()));
        assert_eq!(outcomes[1].target.as_deref(), Some("http://127.0.0.1:5001"));
    }

    #[test]
    fn a_refusal_fails_every_group_of_its_emulator_naming_the_culprit() {
        let (batches, mut outcomes) = split(
            request(&[("a", "x", 1), ("b", "y", 1), ("a", "nope", 2)]),
            &targets(&["a", "b"]),
        );
        let mut body =
            json!({"error": "emulator \"a\" refused: no block \"nope\"", "blocks": ["x"]});
        body["sent_group"] = json!(1); // the second group sent to a
        settle(
            &batches[0],
            Err(Refusal {
                status: StatusCode::NOT_FOUND,
                body,
            }),
            &mut outcomes,
        );
        settle(&batches[1], Ok(1), &mut outcomes);
        assert_eq!(outcomes[2].status, StatusCode::NOT_FOUND);
        assert!(outcomes[2].error.as_deref().unwrap().contains("nope"));
        assert_eq!(outcomes[2].blocks, Some(json!(["x"])));
        let bystander = outcomes[0].error.as_deref().unwrap();
        assert!(
            bystander.contains("injector_event_groups[2]"),
            "{bystander}"
        );
        assert_eq!(outcomes[0].blocks, None);
        assert_eq!(
            (outcomes[1].scheduled, outcomes[1].error.as_deref()),
            (1, None)
        );
        let answer = answer(&outcomes);
        assert_eq!(answer["scheduled"], 1);
        assert_eq!(answer["failed_groups"], 2);
        assert_eq!(answer["groups"][1]["delivered"], true);
        assert!(answer["error"]
            .as_str()
            .unwrap()
            .starts_with("2 of 3 injector event groups"));
    }

    #[test]
    fn the_overall_status_is_2xx_only_when_every_group_was_scheduled() {
        let outcome = |status: u16, failed: bool| Outcome {
            group: 0,
            emulator: "a".into(),
            block: "x".into(),
            events: 1,
            scheduled: usize::from(!failed),
            status: StatusCode::from_u16(status).unwrap(),
            target: None,
            error: failed.then(|| "refused".to_owned()),
            blocks: None,
        };
        let status = |outcomes: &[(u16, bool)]| {
            let outcomes: Vec<Outcome> = outcomes.iter().map(|&(s, f)| outcome(s, f)).collect();
            overall_status(&outcomes).as_u16()
        };
        assert_eq!(status(&[]), 202);
        assert_eq!(status(&[(202, false), (202, false)]), 202);
        assert_eq!(status(&[(202, false), (404, true), (404, true)]), 404);
        assert_eq!(status(&[(429, true)]), 429);
        assert_eq!(status(&[(504, true), (504, true)]), 504);
        assert_eq!(status(&[(503, true)]), 502, "an emulator's 5xx");
        assert_eq!(status(&[(404, true), (502, true)]), 502);
        assert_eq!(status(&[(404, true), (400, true), (202, false)]), 400);
    }
}
