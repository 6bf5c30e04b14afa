//! The `packetizer` IP block emulator, as
//! `docs/vcc-ip-blocks.md` describes it: the two-state
//! machine, a validated `configure` that stores `vid`, `vcc_id` and `fs_id`,
//! and a status of registers that are all zero but `vid_register`.

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde_json::{json, Number};
use vcc_common::{
    checked_route, common_event_handler, no_op_route, two_state_api, two_state_machine, NO_EFFECT,
};

/// The packetizer's data. The ids are kept as the client sent them (an
/// integer stays an integer, so `vid_register` echoes `vid` exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Packetizer {
    /// Reported as `vid_register`.
    pub vid: Number,
    /// The VCC id.
    pub vcc_id: Number,
    /// The frequency slice id.
    pub fs_id: Number,
}

impl Default for Packetizer {
    fn default() -> Self {
        Packetizer {
            vid: 0.into(),
            vcc_id: 0.into(),
            fs_id: 0.into(),
        }
    }
}

/// The JSON Schema of `POST configure`: all three ids required.
pub fn configure_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "vid": {"type": "number"},
            "vcc_id": {"type": "number"},
            "fs_id": {"type": "number"}
        },
        "required": ["vid", "vcc_id", "fs_id"]
    })
}

/// The body of `POST configure`, once [`configure_schema`] accepted it.
#[derive(Debug, Clone, Deserialize)]
pub struct Configure {
    /// See [`Packetizer::vid`].
    pub vid: Number,
    /// See [`Packetizer::vcc_id`].
    pub vcc_id: Number,
    /// See [`Packetizer::fs_id`].
    pub fs_id: Number,
}

impl Packetizer {
    /// Stores the ids.
    pub fn configure(&mut self, body: Configure) {
        self.vid = body.vid;
        self.vcc_id = body.vcc_id;
        self.fs_id = body.fs_id;
    }

    /// The `GET status` body.
    pub fn status(&self) -> serde_json::Value {
        json!({
            "mac_source_register": 0,
            "vid_register": self.vid,
            "flags_register": 0,
            "psn_register": 0,
            "packet_count_register": 0,
        })
    }
}

/// The routes: configure (checked body), four no-ops, status.
pub fn api() -> Api<Packetizer> {
    two_state_api(
        checked_route(
            "configure",
            "Stores vid, vcc_id and fs_id.",
            configure_schema(),
            |block: &mut Packetizer, body| {
                block.configure(body);
                Ok(())
            },
        ),
        no_op_route("deconfigure", NO_EFFECT),
        no_op_route("recover", NO_EFFECT),
        Packetizer::status,
    )
}

/// Manual events as every VCC block handles them; the other handlers keep
/// the engine's defaults.
pub fn event_handler() -> EventHandler<Packetizer> {
    common_event_handler()
}

bitstream_sdk::export_plugin! {
    ip_block: Packetizer,
    state_machine: two_state_machine,
    api: api,
    event_handler: event_handler,
}

#[cfg(test)]
mod tests {
    use bitstream_testkit::{Harness, Response};
    use vcc_common::COMMON_ROUTES;

    use super::*;

    /// `POST configure` with `body` (JSON text), as a client sends it.
    fn configure(h: &mut Harness<Packetizer>, body: &str) -> Response {
        h.request("POST", "configure", body.as_bytes())
    }

    #[test]
    fn defaults_and_status_before_configure() {
        let mut h = Harness::<Packetizer>::new();
        assert_eq!(h.snapshot(), json!({"vid": 0, "vcc_id": 0, "fs_id": 0}));
        assert_eq!(
            h.get("status").json(),
            json!({
                "mac_source_register": 0,
                "vid_register": 0,
                "flags_register": 0,
                "psn_register": 0,
                "packet_count_register": 0
            })
        );
    }

    #[test]
    fn the_clients_body_is_accepted_and_vid_is_reported() {
        let mut h = Harness::<Packetizer>::new();
        let r = configure(&mut h, r#"{"vid": 1, "vcc_id": 1, "fs_id": 1}"#);
        assert_eq!(r.status(), 200);
        assert_eq!(h.snapshot(), json!({"vid": 1, "vcc_id": 1, "fs_id": 1}));
        let status = h.get("status").json();
        assert_eq!(status["vid_register"], json!(1));
        let names: Vec<&str> = status
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            names,
            [
                "mac_source_register",
                "vid_register",
                "flags_register",
                "psn_register",
                "packet_count_register"
            ]
        );

        // Any number, kept as sent.
        let r = configure(&mut h, r#"{"vid": 2.5, "vcc_id": -3, "fs_id": 26}"#);
        assert_eq!(r.status(), 200);
        assert_eq!(h.get("status").json()["vid_register"], json!(2.5));
        let block = h.block();
        assert_eq!(block.vcc_id, Number::from(-3));
        assert_eq!(block.fs_id, Number::from(26));
    }

    #[test]
    fn missing_or_non_numeric_ids_are_refused() {
        let mut h = Harness::<Packetizer>::new();
        for (body, needle) in [
            (r#"{}"#, "is a required property"),
            (
                r#"{"vcc_id": 1, "fs_id": 1}"#,
                "\"vid\" is a required property",
            ),
            (
                r#"{"vid": 1, "fs_id": 1}"#,
                "\"vcc_id\" is a required property",
            ),
            (
                r#"{"vid": 1, "vcc_id": 1}"#,
                "\"fs_id\" is a required property",
            ),
            (r#"{"vid": "1", "vcc_id": 1, "fs_id": 1}"#, "/vid"),
            (r#"{"vid": 1, "vcc_id": null, "fs_id": 1}"#, "/vcc_id"),
            (r#"{"vid": 1, "vcc_id": 1, "fs_id": [1]}"#, "/fs_id"),
        ] {
            let r = configure(&mut h, body);
            assert_eq!(r.status(), 400, "{body}");
            assert!(r.error().unwrap().contains(needle), "{body}: {r:?}");
        }
        assert_eq!(h.snapshot(), json!({"vid": 0, "vcc_id": 0, "fs_id": 0}));
    }

    #[test]
    fn routes_are_the_common_six_with_a_published_configure_schema() {
        let h = Harness::<Packetizer>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        assert_eq!(h.body_schema("configure"), Some(configure_schema()));
    }
}
