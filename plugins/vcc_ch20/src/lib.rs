//! The `vcc_ch20` IP block emulator (block id `b123vcc` in the real
//! `vcc_processing` bitstream): the 20-channel channeliser, as
//! `docs/vcc-ip-blocks.md` describes it. Two-state machine;
//! `configure` sets the expected sample rate and/or one channel's gain,
//! `deconfigure` puts one gain back to 1.0, `recover` puts everything back.
//! Signal updates pass through unchanged (the engine's default).

#![forbid(unsafe_code)]

use bitstream_sdk::prelude::*;
use serde_json::json;
use vcc_common::{
    action_route, at_most, checked_route, common_event_handler, two_state_api, two_state_machine,
};

/// Channels per polarisation.
pub const DEFAULT_NUM_CHANNELS: i64 = 10;
/// Polarisations.
pub const DEFAULT_NUM_POLARISATIONS: i64 = 2;
/// The expected sample rate of a new (or recovered) block, in Hz.
pub const DEFAULT_EXPECTED_SAMPLE_RATE: u64 = 3_960_000_000;
/// What a sample rate must be a multiple of.
pub const SAMPLE_RATE_MULTIPLE: u64 = 18;
/// The gain of an unconfigured channel.
pub const UNITY_GAIN: f64 = 1.0;

/// The gain of one channel of one polarisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gain {
    /// The polarisation, from 0.
    pub pol: i64,
    /// The channel, from 0.
    pub channel: i64,
    /// The gain.
    pub gain: f64,
}

/// The channeliser's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VccCh20 {
    /// Channels per polarisation.
    pub num_channels: i64,
    /// Polarisations.
    pub num_polarisations: i64,
    /// The measured sample rate (reported by `status`; nothing sets it).
    pub sample_rate: u64,
    /// The sample rate set by `configure`.
    pub expected_sample_rate: u64,
    /// One entry per (pol, channel): pol 0 channels 0-9, then pol 1.
    pub gains: Vec<Gain>,
}

impl Default for VccCh20 {
    fn default() -> Self {
        VccCh20 {
            num_channels: DEFAULT_NUM_CHANNELS,
            num_polarisations: DEFAULT_NUM_POLARISATIONS,
            sample_rate: 0,
            expected_sample_rate: DEFAULT_EXPECTED_SAMPLE_RATE,
            gains: (0..DEFAULT_NUM_POLARISATIONS)
                .flat_map(|pol| {
                    (0..DEFAULT_NUM_CHANNELS).map(move |channel| Gain {
                        pol,
                        channel,
                        gain: UNITY_GAIN,
                    })
                })
                .collect(),
        }
    }
}

/// The JSON Schema of `POST configure`: `sample_rate`, or the triple `pol`,
/// `channel`, `gain` (each requiring the other two), or both. The upper
/// bounds of `pol` and `channel` depend on the block, so
/// [`VccCh20::configure`] checks them.
pub fn configure_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "sample_rate": {"type": "integer", "minimum": 0, "multipleOf": SAMPLE_RATE_MULTIPLE},
            "pol": {"type": "integer", "minimum": 0},
            "channel": {"type": "integer", "minimum": 0},
            "gain": {"type": "number"}
        },
        "dependentRequired": {
            "pol": ["channel", "gain"],
            "channel": ["pol", "gain"],
            "gain": ["pol", "channel"]
        },
        "anyOf": [
            {"required": ["sample_rate"]},
            {"required": ["pol", "channel", "gain"]}
        ]
    })
}

/// The JSON Schema of `POST deconfigure`: which gain to put back.
pub fn deconfigure_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "pol": {"type": "integer", "minimum": 0},
            "channel": {"type": "integer", "minimum": 0}
        },
        "required": ["pol", "channel"]
    })
}

/// The body of `POST configure`, once [`configure_schema`] accepted it.
/// Integers are read as floats: the schema's `integer` also accepts `1.0`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Configure {
    /// Sets `expected_sample_rate`.
    pub sample_rate: Option<f64>,
    /// With `channel` and `gain`: which gain to set.
    pub pol: Option<f64>,
    /// With `pol` and `gain`.
    pub channel: Option<f64>,
    /// With `pol` and `channel`: the new gain.
    pub gain: Option<f64>,
}

/// The body of `POST deconfigure`, once [`deconfigure_schema`] accepted it.
#[derive(Debug, Clone, Deserialize)]
pub struct Deconfigure {
    /// The polarisation.
    pub pol: f64,
    /// The channel.
    pub channel: f64,
}

impl VccCh20 {
    /// The index in `gains` of (`pol`, `channel`), after checking them
    /// against `num_polarisations` and `num_channels`. With the default
    /// layout this is `pol * 10 + channel`.
    pub fn gain_index(&self, pol: f64, channel: f64) -> Result<usize, Error> {
        // The schema made both integers >= 0.
        let (pol, channel) = (pol as i64, channel as i64);
        at_most("pol", pol, self.num_polarisations - 1)?;
        at_most("channel", channel, self.num_channels - 1)?;
        self.gains
            .iter()
            .position(|g| g.pol == pol && g.channel == channel)
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "invalid body: no gain entry for pol {pol}, channel {channel}"
                ))
            })
    }

    /// Applies a configuration: the expected sample rate and/or one gain.
    /// Checks everything before changing anything.
    pub fn configure(&mut self, body: Configure) -> Result<(), Error> {
        let gain = match (body.pol, body.channel, body.gain) {
            (Some(pol), Some(channel), Some(gain)) => Some((self.gain_index(pol, channel)?, gain)),
            _ => None,
        };
        if let Some(rate) = body.sample_rate {
            self.expected_sample_rate = rate as u64;
        }
        if let Some((index, gain)) = gain {
            self.gains[index].gain = gain;
        }
        Ok(())
    }

    /// Puts one gain back to 1.0.
    pub fn deconfigure(&mut self, body: Deconfigure) -> Result<(), Error> {
        let index = self.gain_index(body.pol, body.channel)?;
        self.gains[index].gain = UNITY_GAIN;
        Ok(())
    }

    /// Every gain back to 1.0, the expected sample rate back to its default.
    pub fn recover(&mut self) {
        for gain in &mut self.gains {
            gain.gain = UNITY_GAIN;
        }
        self.expected_sample_rate = DEFAULT_EXPECTED_SAMPLE_RATE;
    }

    /// The `GET status` body.
    pub fn status(&self) -> serde_json::Value {
        json!({
            "sample_rate": self.sample_rate,
            "num_channels": self.num_channels,
            "num_polarisations": self.num_polarisations,
            "gains": self.gains,
        })
    }
}

/// The routes: configure and deconfigure (checked bodies), recover, start
/// and stop (no-ops), status.
pub fn api() -> Api<VccCh20> {
    two_state_api(
        checked_route(
            "configure",
            "Sets expected_sample_rate (sample_rate) and/or the gain of (pol, channel).",
            configure_schema(),
            VccCh20::configure,
        ),
        checked_route(
            "deconfigure",
            "Puts the gain of (pol, channel) back to 1.0.",
            deconfigure_schema(),
            VccCh20::deconfigure,
        ),
        action_route(
            "recover",
            "Every gain back to 1.0, expected_sample_rate back to 3960000000.",
            VccCh20::recover,
        ),
        VccCh20::status,
    )
}

/// Manual events as every VCC block handles them; signal updates pass
/// through unchanged and pulses do nothing (the engine's defaults).
pub fn event_handler() -> EventHandler<VccCh20> {
    common_event_handler()
}

bitstream_sdk::export_plugin! {
    ip_block: VccCh20,
    state_machine: two_state_machine,
    api: api,
    event_handler: event_handler,
}

#[cfg(test)]
mod tests {
    use bitstream_testkit::{Harness, Response};
    use vcc_common::COMMON_ROUTES;

    use super::*;

    /// `POST configure` with `body`; `Err` holds the error message of a
    /// refusal, which must be a 400.
    fn configure(h: &mut Harness<VccCh20>, body: &str) -> Result<(), String> {
        answer(h.request("POST", "configure", body.as_bytes()))
    }

    fn deconfigure(h: &mut Harness<VccCh20>, body: &str) -> Result<(), String> {
        answer(h.request("POST", "deconfigure", body.as_bytes()))
    }

    #[track_caller]
    fn answer(r: Response) -> Result<(), String> {
        match r.status() {
            200 => Ok(()),
            400 => Err(r.error().unwrap().to_owned()),
            _ => panic!("{r:?}"),
        }
    }

    fn gain(block: &VccCh20, pol: i64, channel: i64) -> f64 {
        block.gains[(pol * 10 + channel) as usize].gain
    }

    #[test]
    fn defaults() {
        let mut h = Harness::<VccCh20>::new();
        let block = h.block();
        assert_eq!(block.gains.len(), 20);
        for (i, g) in block.gains.iter().enumerate() {
            assert_eq!(
                (g.pol, g.channel, g.gain),
                (i as i64 / 10, i as i64 % 10, 1.0)
            );
        }
        let json = h.snapshot();
        assert_eq!(json["num_channels"], 10);
        assert_eq!(json["num_polarisations"], 2);
        assert_eq!(json["sample_rate"], 0);
        assert_eq!(json["expected_sample_rate"], 3_960_000_000u64);
        assert_eq!(
            json["gains"][10],
            json!({"pol": 1, "channel": 0, "gain": 1.0})
        );
    }

    #[test]
    fn the_clients_body_sets_both_the_rate_and_the_gain() {
        let mut h = Harness::<VccCh20>::new().with_constants(json!({"expected_sample_rate": 0}));
        configure(
            &mut h,
            r#"{"sample_rate": 3960000000, "pol": 1, "channel": 9, "gain": 0.5}"#,
        )
        .unwrap();
        let block = h.block();
        assert_eq!(block.expected_sample_rate, 3_960_000_000);
        assert_eq!(gain(&block, 1, 9), 0.5);
        assert_eq!(block.gains.iter().filter(|g| g.gain != 1.0).count(), 1);
    }

    #[test]
    fn the_clients_twenty_calls_set_every_gain() {
        let mut h = Harness::<VccCh20>::new();
        for pol in 0..2 {
            for channel in 0..10 {
                // Exact in binary, so that the JSON round trip keeps it.
                let g = (pol * 10 + channel + 1) as f64 / 8.0;
                let body = json!({"sample_rate": 3960000000u64, "pol": pol, "channel": channel, "gain": g});
                configure(&mut h, &body.to_string()).unwrap();
            }
        }
        for (i, g) in h.block().gains.iter().enumerate() {
            assert_eq!(g.gain, (i + 1) as f64 / 8.0);
        }
    }

    #[test]
    fn the_rate_alone_or_the_triple_alone_is_accepted() {
        let mut h = Harness::<VccCh20>::new();
        configure(&mut h, r#"{"sample_rate": 18}"#).unwrap();
        assert_eq!(h.block().expected_sample_rate, 18);
        assert_eq!(h.block().gains, VccCh20::default().gains);

        configure(&mut h, r#"{"sample_rate": 0}"#).unwrap();
        assert_eq!(h.block().expected_sample_rate, 0);

        configure(&mut h, r#"{"pol": 0, "channel": 3, "gain": 2}"#).unwrap();
        assert_eq!(h.block().expected_sample_rate, 0);
        assert_eq!(gain(&h.block(), 0, 3), 2.0);

        // `integer` accepts integral floats.
        configure(
            &mut h,
            r#"{"sample_rate": 36.0, "pol": 1.0, "channel": 0.0, "gain": 3}"#,
        )
        .unwrap();
        assert_eq!(h.block().expected_sample_rate, 36);
        assert_eq!(gain(&h.block(), 1, 0), 3.0);
    }

    #[test]
    fn bad_bodies_are_refused_and_change_nothing() {
        for (body, needle) in [
            (r#"{}"#, "'anyOf'"),
            (r#"{"gain": 0.5}"#, "\"pol\" is a required property"),
            (
                r#"{"pol": 0, "channel": 1}"#,
                "\"gain\" is a required property",
            ),
            (
                r#"{"sample_rate": 3960000000, "pol": 0}"#,
                "is a required property",
            ),
            (r#"{"sample_rate": 19}"#, "/sample_rate"),
            (r#"{"sample_rate": -18}"#, "/sample_rate"),
            (r#"{"sample_rate": 18.5}"#, "/sample_rate"),
            (r#"{"sample_rate": "18"}"#, "/sample_rate"),
            (r#"{"pol": -1, "channel": 0, "gain": 1.0}"#, "/pol"),
            (r#"{"pol": 0, "channel": 0.5, "gain": 1.0}"#, "/channel"),
            (r#"{"pol": 0, "channel": 0, "gain": "1"}"#, "/gain"),
            // Upper bounds come from the block: 2 polarisations, 10 channels.
            (
                r#"{"pol": 2, "channel": 0, "gain": 1.0}"#,
                "/pol: 2 is greater than the maximum of 1",
            ),
            (
                r#"{"sample_rate": 18, "pol": 0, "channel": 10, "gain": 0.5}"#,
                "/channel: 10 is greater than the maximum of 9",
            ),
        ] {
            let mut h = Harness::<VccCh20>::new();
            let err = configure(&mut h, body).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
            assert_eq!(h.block(), VccCh20::default(), "{body}");
        }
    }

    #[test]
    fn ranges_follow_the_constants() {
        let mut h = Harness::<VccCh20>::new().with_constants(json!({"num_polarisations": 1}));
        let err = configure(&mut h, r#"{"pol": 1, "channel": 0, "gain": 0.5}"#).unwrap_err();
        assert!(err.contains("maximum of 0"), "{err}");
        // More channels than gain entries: refused rather than guessed.
        h.apply_constants(json!({"num_channels": 12})).unwrap();
        let err = configure(&mut h, r#"{"pol": 0, "channel": 11, "gain": 0.5}"#).unwrap_err();
        assert!(err.contains("no gain entry"), "{err}");
    }

    #[test]
    fn deconfigure_puts_that_gain_back() {
        let mut h = Harness::<VccCh20>::new();
        configure(
            &mut h,
            r#"{"sample_rate": 18, "pol": 1, "channel": 2, "gain": 0.25}"#,
        )
        .unwrap();
        configure(&mut h, r#"{"pol": 0, "channel": 2, "gain": 4}"#).unwrap();
        // The client's own body (with sample_rate and gain) is accepted.
        deconfigure(
            &mut h,
            r#"{"sample_rate": 18, "pol": 1, "channel": 2, "gain": 0.25}"#,
        )
        .unwrap();
        let block = h.block();
        assert_eq!(gain(&block, 1, 2), 1.0);
        assert_eq!(gain(&block, 0, 2), 4.0);
        assert_eq!(block.expected_sample_rate, 18);

        for (body, needle) in [
            (r#"{}"#, "is a required property"),
            (r#"{"pol": 0}"#, "\"channel\" is a required property"),
            (r#"{"channel": 0}"#, "\"pol\" is a required property"),
            (
                r#"{"pol": 0, "channel": 10}"#,
                "/channel: 10 is greater than the maximum of 9",
            ),
            (r#"{"pol": "0", "channel": 1}"#, "/pol"),
        ] {
            let before = h.block();
            let err = deconfigure(&mut h, body).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
            assert_eq!(h.block(), before);
        }
    }

    #[test]
    fn recover_puts_everything_back() {
        let mut h = Harness::<VccCh20>::new();
        configure(
            &mut h,
            r#"{"sample_rate": 180, "pol": 1, "channel": 9, "gain": 0.5}"#,
        )
        .unwrap();
        configure(&mut h, r#"{"pol": 0, "channel": 0, "gain": 0.0}"#).unwrap();
        assert_eq!(h.post("recover", json!({})).status(), 200);
        assert_eq!(h.block(), VccCh20::default());
    }

    #[test]
    fn status_shape() {
        let mut h = Harness::<VccCh20>::new();
        configure(
            &mut h,
            r#"{"sample_rate": 180, "pol": 0, "channel": 1, "gain": 0.5}"#,
        )
        .unwrap();
        let status = h.get("status").json();
        let names: Vec<&str> = status
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            names,
            ["sample_rate", "num_channels", "num_polarisations", "gains"]
        );
        // `sample_rate` is the measured rate, not the configured one.
        assert_eq!(status["sample_rate"], 0);
        assert_eq!(status["num_channels"], 10);
        assert_eq!(status["num_polarisations"], 2);
        assert_eq!(status["gains"].as_array().unwrap().len(), 20);
        assert_eq!(
            status["gains"][1],
            json!({"pol": 0, "channel": 1, "gain": 0.5})
        );
    }

    #[test]
    fn routes_publish_their_schemas() {
        let h = Harness::<VccCh20>::new();
        assert_eq!(h.route_names(), COMMON_ROUTES);
        assert_eq!(h.body_schema("configure"), Some(configure_schema()));
        assert_eq!(h.body_schema("deconfigure"), Some(deconfigure_schema()));
        assert_eq!(h.body_schema("recover"), None);
        assert!(!h.overrides().signal_update);
    }
}
