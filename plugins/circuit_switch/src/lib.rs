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
    use vcc_common::testing::{assert_common_routes, checked, published_schema};

    use super::*;

    fn connect(block: &mut CircuitSwitch, body: &str) -> Result<(), Error> {
        block.connect(checked(configure_schema(), body)?)
    }

    fn disconnect(block: &mut CircuitSwitch, body: &str) -> Result<(), Error> {
        block.disconnect(checked(deconfigure_schema(), body)?)
    }

    #[test]
    fn defaults_and_empty_status() {
        let block = CircuitSwitch::default();
        assert_eq!(
            serde_json::to_value(&block).unwrap(),
            json!({"num_inputs": 26, "num_outputs": 6, "connections": [-1, -1, -1, -1, -1, -1]})
        );
        assert_eq!(
            block.status(),
            json!({"num_inputs": 26, "num_outputs": 6, "connected": []})
        );
    }

    #[test]
    fn configure_connects_and_status_lists_only_connected_outputs() {
        let mut block = CircuitSwitch::default();
        connect(&mut block, r#"{"output": 0, "input": 25}"#).unwrap();
        connect(&mut block, r#"{"output": 5, "input": 0}"#).unwrap();
        connect(&mut block, r#"{"output": 3.0, "input": 7.0}"#).unwrap();
        assert_eq!(block.connections, [25, -1, -1, 7, -1, 0]);
        assert_eq!(
            block.status(),
            json!({"num_inputs": 26, "num_outputs": 6, "connected": [
                {"output": 0, "input": 25},
                {"output": 3, "input": 7},
                {"output": 5, "input": 0}
            ]})
        );
        // Reconnecting an output replaces its input.
        connect(&mut block, r#"{"output": 0, "input": 1}"#).unwrap();
        assert_eq!(block.connections[0], 1);
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
            let mut block = CircuitSwitch::default();
            let err = connect(&mut block, body).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert!(err.message().contains(needle), "{body}: {err}");
            assert_eq!(block, CircuitSwitch::default());
        }
    }

    #[test]
    fn deconfigure_disconnects_one_output() {
        let mut block = CircuitSwitch::default();
        connect(&mut block, r#"{"output": 1, "input": 2}"#).unwrap();
        connect(&mut block, r#"{"output": 2, "input": 3}"#).unwrap();
        disconnect(&mut block, r#"{"output": 1, "input": 2}"#).unwrap();
        disconnect(&mut block, r#"{"output": 4}"#).unwrap();
        assert_eq!(block.connections, [-1, -1, 3, -1, -1, -1]);
        for (body, needle) in [
            (r#"{}"#, "\"output\" is a required property"),
            (
                r#"{"output": 6}"#,
                "/output: 6 is greater than the maximum of 5",
            ),
            (r#"{"output": -1}"#, "/output"),
        ] {
            let before = block.clone();
            let err = disconnect(&mut block, body).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert!(err.message().contains(needle), "{body}: {err}");
            assert_eq!(block, before);
        }
    }

    #[test]
    fn recover_disconnects_everything() {
        let mut block = CircuitSwitch::default();
        connect(&mut block, r#"{"output": 1, "input": 2}"#).unwrap();
        connect(&mut block, r#"{"output": 5, "input": 25}"#).unwrap();
        block.recover();
        assert_eq!(block, CircuitSwitch::default());
    }

    #[test]
    fn constants_change_the_ranges_and_the_outputs() {
        // As after constants {"num_inputs": 4, "num_outputs": 8}: connections
        // still has the default six entries until something changes it.
        let mut block = CircuitSwitch {
            num_inputs: 4,
            num_outputs: 8,
            ..CircuitSwitch::default()
        };
        assert!(connect(&mut block, r#"{"output": 0, "input": 4}"#).is_err());
        connect(&mut block, r#"{"output": 7, "input": 3}"#).unwrap();
        assert_eq!(block.connections, [-1, -1, -1, -1, -1, -1, -1, 3]);
        assert_eq!(
            block.status()["connected"],
            json!([{"output": 7, "input": 3}])
        );

        block.num_outputs = 2;
        block.recover();
        assert_eq!(block.connections, [-1, -1]);
        assert!(disconnect(&mut block, r#"{"output": 2}"#).is_err());
    }

    #[test]
    fn routes_publish_their_schemas() {
        let routes = api().describe();
        assert_common_routes(&routes);
        assert_eq!(published_schema(&routes[0]), Some(configure_schema()));
        assert_eq!(published_schema(&routes[1]), Some(deconfigure_schema()));
    }
}
