//! The `circuit_switch` IP block emulator (block id `circuit_switch_26_6` in
//! older VCC bitstreams), as `docs/vcc-ip-blocks.md`
//! describes it: the two-state machine; each output connected to at most
//! one input, set by `configure`, cleared by `deconfigure` (one output) and
//! `recover` (all of them).

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde_json::json;
use vcc_common::{
    action_route, at_most, checked_route, common_event_handler, two_state_api, two_state_machine,
};

/// Inputs of a new block (config constants may override it).
pub const DEFAULT_NUM_INPUTS: i64 = 26;
/// Outputs of a new block (config constants may override it).
pub const DEFAULT_NUM_OUTPUTS: i64 = 6;
/// The input of an unconnected output.
pub const UNCONNECTED: i64 = -1;

/// The circuit switch's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CircuitSwitch {
    /// Inputs: 0 to `num_inputs - 1`.
    pub num_inputs: i64,
    /// Outputs: 0 to `num_outputs - 1`.
    pub num_outputs: i64,
    /// Per output, its input or -1.
    pub connections: Vec<i64>,
}

impl Default for CircuitSwitch {
    fn default() -> Self {
        CircuitSwitch {
            num_inputs: DEFAULT_NUM_INPUTS,
            num_outputs: DEFAULT_NUM_OUTPUTS,
            connections: vec![UNCONNECTED; DEFAULT_NUM_OUTPUTS as usize],
        }
    }
}

/// The JSON Schema of `POST configure`. The upper bounds depend on the
/// block, so [`CircuitSwitch::connect`] checks them.
pub fn configure_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "output": {"type": "integer", "minimum": 0},
            "input": {"type": "integer", "minimum": 0}
        },
        "required": ["output", "input"]
    })
}

/// The JSON Schema of `POST deconfigure`.
pub fn deconfigure_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "output": {"type": "integer", "minimum": 0}
        },
        "required": ["output"]
    })
}

/// The body of `POST configure`, once [`configure_schema`] accepted it.
/// Integers are read as floats: the schema's `integer` also accepts `1.0`.
#[derive(Debug, Clone, Deserialize)]
pub struct Connect {
    /// The output to connect.
    pub output: f64,
    /// The input it carries.
    pub input: f64,
}

/// The body of `POST deconfigure`, once [`deconfigure_schema`] accepted it.
#[derive(Debug, Clone, Deserialize)]
pub struct Disconnect {
    /// The output to disconnect.
    pub output: f64,
}

impl CircuitSwitch {
    /// One entry per output: the constants may have changed `num_outputs`
    /// after `connections` was made with the default count.
    fn fit_connections(&mut self) {
        let outputs = usize::try_from(self.num_outputs).unwrap_or(0);
        self.connections.resize(outputs, UNCONNECTED);
    }

    /// `connections[output] = input`, both within range.
    pub fn connect(&mut self, body: Connect) -> Result<(), Error> {
        // The schema made both integers >= 0.
        let (output, input) = (body.output as i64, body.input as i64);
        at_most("output", output, self.num_outputs - 1)?;
        at_most("input", input, self.num_inputs - 1)?;
        self.fit_connections();
        self.connections[output as usize] = input;
        Ok(())
    }

    /// `connections[output] = -1`, the output within range.
    pub fn disconnect(&mut self, body: Disconnect) -> Result<(), Error> {
        let output = body.output as i64;
        at_most("output", output, self.num_outputs - 1)?;
        self.fit_connections();
        self.connections[output as usize] = UNCONNECTED;
        Ok(())
    }

    /// Every output unconnected.
    pub fn recover(&mut self) {
        self.fit_connections();
        self.connections.fill(UNCONNECTED);
    }

    /// The `GET status` body: only the connected outputs are listed.
    pub fn status(&self) -> serde_json::Value {
        let connected: Vec<serde_json::Value> = self
            .connections
            .iter()
            .enumerate()
            .take(usize::try_from(self.num_outputs).unwrap_or(0))
            .filter(|&(_, &input)| input != UNCONNECTED)
            .map(|(output, &input)| json!({"output": output, "input": input}))
            .collect();
        json!({
            "num_inputs": self.num_inputs,
            "num_outputs": self.num_outputs,
            "connected": connected,
        })
    }
}

/// The routes: configure and deconfigure (checked bodies), recover, start
/// and stop (no-ops), status.
pub fn api() -> Api<CircuitSwitch> {
    two_state_api(
        checked_route(
            "configure",
            "Connects output to input (connections[output] = input).",
            configure_schema(),
            CircuitSwitch::connect,
        ),
        checked_route(
            "deconfigure",
            "Disconnects output (connections[output] = -1).",
            deconfigure_schema(),
            CircuitSwitch::disconnect,
        ),
        action_route(
            "recover",
            "Disconnects every output.",
            CircuitSwitch::recover,
        ),
        CircuitSwitch::status,
    )
}

/// Manual events as every VCC block handles them; the other handlers keep
/// the engine's defaults.
pub fn event_handler() -> EventHandler<CircuitSwitch> {
    common_event_handler()
}

bitstream_sdk::export_plugin! {
    ip_block: CircuitSwitch,
    state_machine: two_state_machine,
    api: api,
    event_handler: event_handler,
}

#[cfg(test)]
mod tests {
    use bitstream_testkit::{Harness, Response};
    use vcc_common::COMMON_ROUTES;

    use super::*;

    fn connect(h: &mut Harness<CircuitSwitch>, body: &str) -> Response {
        h.request("POST", "configure", body.as_bytes())
    }

    fn disconnect(h: &mut Harness<CircuitSwitch>, body: &str) -> Response {
        h.request("POST", "deconfigure", body.as_bytes())
    }

    #[track_caller]
    fn ok(r: Response) {
        assert_eq!(r.status(), 200, "{r:?}");
    }

    #[test]
    fn defaults_and_empty_status() {
        let mut h = Harness::<CircuitSwitch>::new();
        assert_eq!(
            h.snapshot(),
            json!({"num_inputs": 26, "num_outputs": 6, "connections": [-1, -1, -1, -1, -1, -1]})
        );
        assert_eq!(
            h.get("status").json(),
            json!({"num_inputs": 26, "num_outputs": 6, "connected": []})
        );
    }

    #[test]
    fn configure_connects_and_status_lists_only_connected_outputs() {
        let mut h = Harness::<CircuitSwitch>::new();
        ok(connect(&mut h, r#"{"output": 0, "input": 25}"#));
        ok(connect(&mut h, r#"{"output": 5, "input": 0}"#));
        ok(connect(&mut h, r#"{"output": 3.0, "input": 7.0}"#));
        assert_eq!(h.block().connections, [25, -1, -1, 7, -1, 0]);
        assert_eq!(
            h.get("status").json(),
            json!({"num_inputs": 26, "num_outputs": 6, "connected": [
                {"output": 0, "input": 25},
                {"output": 3, "input": 7},
                {"output": 5, "input": 0}
            ]})
        );
        // Reconnecting an output replaces its input.
        ok(connect(&mut h, r#"{"output": 0, "input": 1}"#));
        assert_eq!(h.block().connections[0], 1);
    }

    #[test]
    fn bad_configure_bodies_are_refused_and_change_nothing() {
        for (body, needle) in [
            (r#"{}"#, "is a required property"),
            (r#"{"output": 0}"#, "\"input\" is a required property"),
            (r#"{"input": 0}"#, "\"output\" is a required property"),
            (r#"{"output": -1, "input": 0}"#, "/output"),
            (r#"{"output": 0, "input": 1.5}"#, "/input"),
            (r#"{"output": "0", "input": 0}"#, "/output"),
            (
                r#"{"output": 6, "input": 0}"#,
                "/output: 6 is greater than the maximum of 5",
            ),
            (
                r#"{"output": 0, "input": 26}"#,
                "/input: 26 is greater than the maximum of 25",
            ),
        ] {
            let mut h = Harness::<CircuitSwitch>::new();
            let r = connect(&mut h, body);
            assert_eq!(r.status(), 400, "{body}");
            assert!(r.error().unwrap().contains(needle), "{body}: {r:?}");
            assert_eq!(h.block(), CircuitSwitch::default());
        }
    }

    #[test]
    fn deconfigure_disconnects_one_output() {
        let mut h = Harness::<CircuitSwitch>::new();
        ok(connect(&mut h, r#"{"output": 1, "input": 2}"#));
        ok(connect(&mut h, r#"{"output": 2, "input": 3}"#));
        ok(disconnect(&mut h, r#"{"output": 1, "input": 2}"#));
        ok(disconnect(&mut h, r#"{"output": 4}"#));
        assert_eq!(h.block().connections, [-1, -1, 3, -1, -1, -1]);
        for (body, needle) in [
            (r#"{}"#, "\"output\" is a required property"),
            (
                r#"{"output": 6}"#,
                "/output: 6 is greater than the maximum of 5",
            ),
            (r#"{"output": -1}"#, "/output"),
        ] {
            let before = h.block();
            let r = disconnect(&mut h, body);
            assert_eq!(r.status(), 400, "{body}");
            assert!(r.error().unwrap().contains(needle), "{body}: {r:?}");
            assert_eq!(h.block(), before);
        }
    }

    #[test]
    fn recover_disconnects_everything() {
        let mut h = Harness::<CircuitSwitch>::new();
        ok(connect(&mut h, r#"{"output": 1, "input": 2}"#));
        ok(connect(&mut h, r#"{"output": 5, "input": 25}"#));
        ok(h.post("recover", json!({})));
        assert_eq!(h.block(), CircuitSwitch::default());
    }

    #[test]
    fn constants_change_the_ranges_and_the_outputs() {
        // The config's constants: connections still has the default six
        // entries until something changes it.
        let mut h = Harness::<CircuitSwitch>::new()
            .with_constants(json!({"num_inputs": 4, "num_outputs": 8}));
        assert_eq!(
            connect(&mut h, r#"{"output": 0, "input": 4}"#).status(),
            400
        );
        ok(connect(&mut h, r#"{"output": 7, "input": 3}"#));
        assert_eq!(h.block().connections, [-1, -1, -1, -1, -1, -1, -1, 3]);
        assert_eq!(
            h.get("status").json()["connected"],
            json!([{"output": 7, "input": 3}])
        );

        let mut h = Harness::<CircuitSwitch>::new().with_constants(json!({"num_outputs": 2}));
        ok(h.post("recover", json!({})));
        assert_eq!(h.block().connections, [-1, -1]);
        assert_eq!(disconnect(&mut h, r#"{"output": 2}"#).status(), 400);
    }

    #[test]
    fn routes_publish_their_schemas() {
        let h = Harness::<CircuitSwitch>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        assert_eq!(h.body_schema("configure"), Some(configure_schema()));
        assert_eq!(h.body_schema("deconfigure"), Some(deconfigure_schema()));
    }
}
