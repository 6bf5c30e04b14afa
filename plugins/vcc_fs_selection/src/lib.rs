//! The `vcc_fs_selection` IP block emulator (block id `fs_selection_26_2_1`
//! in the real `vcc_processing` bitstream): frequency slice selection, as
//! `docs/vcc-ip-blocks.md` describes it. Two-state machine;
//! `configure` and `deconfigure` both store the band select and the two
//! band start channels, `recover` puts back "nothing selected" (-1).

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde_json::json;
use vcc_common::{
    action_route, checked_route, common_event_handler, two_state_api, two_state_machine,
};

/// `band_select` and each `band_start_channel` before any selection.
pub const UNSELECTED: i64 = -1;

/// The frequency slice selection's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FsSelection {
    /// The band, 1 to 5 (-1: none).
    pub band_select: i64,
    /// Two start channels, each 0 to 2 (-1: none).
    pub band_start_channel: [i64; 2],
}

impl Default for FsSelection {
    fn default() -> Self {
        FsSelection {
            band_select: UNSELECTED,
            band_start_channel: [UNSELECTED; 2],
        }
    }
}

/// The JSON Schema of `POST configure` and `POST deconfigure`.
pub fn selection_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "band_select": {"type": "integer", "minimum": 1, "maximum": 5},
            "band_start_channel": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 2},
                "minItems": 2,
                "maxItems": 2
            }
        },
        "required": ["band_select", "band_start_channel"]
    })
}

/// The body of `POST configure` and `POST deconfigure`, once
/// [`selection_schema`] accepted it. Integers are read as floats: the
/// schema's `integer` also accepts `1.0`.
#[derive(Debug, Clone, Deserialize)]
pub struct Selection {
    /// 1 to 5.
    pub band_select: f64,
    /// Exactly two, each 0 to 2.
    pub band_start_channel: [f64; 2],
}

impl FsSelection {
    /// Stores a selection.
    pub fn select(&mut self, body: Selection) {
        self.band_select = body.band_select as i64;
        self.band_start_channel = body.band_start_channel.map(|c| c as i64);
    }

    /// Nothing selected.
    pub fn recover(&mut self) {
        *self = FsSelection::default();
    }

    /// The `GET status` body.
    pub fn status(&self) -> serde_json::Value {
        json!({
            "band_select": self.band_select,
            "band_start_channel": self.band_start_channel,
        })
    }
}

/// A `POST` route that stores the checked selection.
fn selection_route(name: &str) -> Route<FsSelection> {
    const STORES: &str = "Stores band_select (1 to 5) and band_start_channel (two of 0 to 2).";
    checked_route(
        name,
        STORES,
        selection_schema(),
        |block: &mut FsSelection, body| {
            block.select(body);
            Ok(())
        },
    )
}

/// The routes: configure and deconfigure (both store the checked body),
/// recover, start and stop (no-ops), status.
pub fn api() -> Api<FsSelection> {
    two_state_api(
        selection_route("configure"),
        selection_route("deconfigure"),
        action_route(
            "recover",
            "band_select back to -1, band_start_channel back to [-1, -1].",
            FsSelection::recover,
        ),
        FsSelection::status,
    )
}

/// Manual events as every VCC block handles them; the other handlers keep
/// the engine's defaults.
pub fn event_handler() -> EventHandler<FsSelection> {
    common_event_handler()
}

bitstream_sdk::export_plugin! {
    ip_block: FsSelection,
    state_machine: two_state_machine,
    api: api,
    event_handler: event_handler,
}

#[cfg(test)]
mod tests {
    use bitstream_testkit::{Harness, Response};
    use vcc_common::COMMON_ROUTES;

    use super::*;

    /// `POST route` with `body` (JSON text), as a client sends it.
    fn post(h: &mut Harness<FsSelection>, route: &str, body: &str) -> Response {
        h.request("POST", route, body.as_bytes())
    }

    #[test]
    fn defaults_are_unselected() {
        let mut h = Harness::<FsSelection>::new();
        assert_eq!(
            h.snapshot(),
            json!({"band_select": -1, "band_start_channel": [-1, -1]})
        );
        assert_eq!(
            h.get("status").json(),
            json!({"band_select": -1, "band_start_channel": [-1, -1]})
        );
    }

    #[test]
    fn the_clients_body_and_the_bounds_are_accepted() {
        for (body, band, channels) in [
            (
                r#"{"band_select": 1, "band_start_channel": [0, 1]}"#,
                1,
                [0, 1],
            ),
            (
                r#"{"band_select": 5, "band_start_channel": [2, 2]}"#,
                5,
                [2, 2],
            ),
            (
                r#"{"band_select": 3.0, "band_start_channel": [1.0, 0]}"#,
                3,
                [1, 0],
            ),
        ] {
            for route in ["configure", "deconfigure"] {
                let mut h = Harness::<FsSelection>::new();
                assert_eq!(post(&mut h, route, body).status(), 200, "{route} {body}");
                let block = h.block();
                assert_eq!(block.band_select, band, "{body}");
                assert_eq!(block.band_start_channel, channels, "{body}");
                assert_eq!(
                    h.get("status").json(),
                    json!({"band_select": band, "band_start_channel": channels})
                );
            }
        }
    }

    #[test]
    fn bad_bodies_are_refused() {
        let mut h = Harness::<FsSelection>::new();
        for (body, needle) in [
            (r#"{}"#, "is a required property"),
            (
                r#"{"band_select": 1}"#,
                "\"band_start_channel\" is a required property",
            ),
            (
                r#"{"band_start_channel": [0, 1]}"#,
                "\"band_select\" is a required property",
            ),
            (
                r#"{"band_select": 0, "band_start_channel": [0, 1]}"#,
                "/band_select",
            ),
            (
                r#"{"band_select": 6, "band_start_channel": [0, 1]}"#,
                "/band_select",
            ),
            (
                r#"{"band_select": 1.5, "band_start_channel": [0, 1]}"#,
                "/band_select",
            ),
            (
                r#"{"band_select": "1", "band_start_channel": [0, 1]}"#,
                "/band_select",
            ),
            (
                r#"{"band_select": 1, "band_start_channel": [0]}"#,
                "/band_start_channel",
            ),
            (
                r#"{"band_select": 1, "band_start_channel": [0, 1, 2]}"#,
                "/band_start_channel",
            ),
            (
                r#"{"band_select": 1, "band_start_channel": [0, 3]}"#,
                "/band_start_channel/1",
            ),
            (
                r#"{"band_select": 1, "band_start_channel": [-1, 0]}"#,
                "/band_start_channel/0",
            ),
            (
                r#"{"band_select": 1, "band_start_channel": 0}"#,
                "/band_start_channel",
            ),
        ] {
            for route in ["configure", "deconfigure"] {
                let r = post(&mut h, route, body);
                assert_eq!(r.status(), 400, "{route} {body}");
                assert!(r.error().unwrap().contains(needle), "{route} {body}: {r:?}");
            }
        }
        assert_eq!(h.block(), FsSelection::default());
    }

    #[test]
    fn recover_forgets_the_selection() {
        let mut h = Harness::<FsSelection>::new();
        let body = r#"{"band_select": 2, "band_start_channel": [1, 2]}"#;
        assert_eq!(post(&mut h, "configure", body).status(), 200);
        assert_ne!(h.block(), FsSelection::default());
        assert_eq!(h.post("recover", json!({})).status(), 200);
        assert_eq!(h.block(), FsSelection::default());
    }

    #[test]
    fn configure_and_deconfigure_publish_the_same_schema() {
        let h = Harness::<FsSelection>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        for route in ["configure", "deconfigure"] {
            assert_eq!(h.body_schema(route), Some(selection_schema()));
        }
    }
}
