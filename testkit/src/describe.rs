//! What a plugin declares, in forms that are easy to compare in a test.

use bitstream_host::model::{ParamLocation, StateRef};
use serde_json::Value as Json;

use crate::Harness;

impl<B> Harness<B> {
    /// The machine's states, in declaration order.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// assert_eq!(Harness::<Lamp>::new().states(), ["OFF", "ON", "FAULT"]);
    /// ```
    pub fn states(&self) -> Vec<String> {
        self.machine().states.clone()
    }

    /// The machine's transitions, one line each in declaration order:
    /// `TRIGGER: SOURCE, SOURCE -> DEST [label] [label]`, with `*` for any
    /// state (`FROM_ANY`) and `=` for the same state (`TO_SAME`).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// assert_eq!(
    ///     Harness::<Lamp>::new().transitions(),
    ///     [
    ///         "SWITCH_ON: OFF, ON -> ON [brightness > 0]",
    ///         "SWITCH_OFF: ON, OFF -> OFF",
    ///         "CRITICAL_FAULT: * -> FAULT",
    ///     ]
    /// );
    /// ```
    pub fn transitions(&self) -> Vec<String> {
        let name = |state: &StateRef| match state {
            StateRef::State(name) => name.clone(),
            StateRef::FromAny => "*".to_owned(),
            StateRef::ToSame => "=".to_owned(),
        };
        self.machine()
            .transitions
            .iter()
            .map(|t| {
                let sources: Vec<String> = t.sources.iter().map(name).collect();
                let labels: String = t
                    .conditions
                    .iter()
                    .map(|c| format!(" [{}]", c.label))
                    .collect();
                format!(
                    "{}: {} -> {}{labels}",
                    t.trigger,
                    sources.join(", "),
                    name(&t.dest)
                )
            })
            .collect()
    }

    /// The labels of the machine's conditions, in declaration order.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// assert_eq!(Harness::<Lamp>::new().condition_labels(), ["brightness > 0"]);
    /// ```
    pub fn condition_labels(&self) -> Vec<String> {
        self.machine()
            .transitions
            .iter()
            .flat_map(|t| t.conditions.iter().map(|c| c.label.clone()))
            .collect()
    }

    /// The routes as `(method, name)`, in declaration order.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// assert_eq!(
    ///     Harness::<Lamp>::new().route_names(),
    ///     [("POST", "on"), ("POST", "off"), ("POST", "dim"), ("POST", "refresh"), ("GET", "status")]
    /// );
    /// ```
    pub fn route_names(&self) -> Vec<(&str, &str)> {
        self.routes
            .iter()
            .map(|r| (r.method.as_str(), r.name.as_str()))
            .collect()
    }

    /// The JSON Schema route `route` declares for its body, if it does.
    /// Panics on an unknown route.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let h = Harness::<Lamp>::new();
    /// assert_eq!(h.body_schema("on").unwrap()["required"], serde_json::json!(["brightness"]));
    /// assert_eq!(h.body_schema("status"), None);
    /// ```
    #[track_caller]
    pub fn body_schema(&self, route: &str) -> Option<Json> {
        let desc = self
            .routes
            .iter()
            .find(|r| r.name == route)
            .unwrap_or_else(|| panic!("no route {route:?}"));
        let body = desc
            .params
            .iter()
            .find(|p| p.location == ParamLocation::Body)?;
        body.schema.clone().map(Json::from)
    }

    /// The one-sentence summary of route `route`. Panics on an unknown
    /// route.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// assert_eq!(Harness::<Lamp>::new().summary("refresh"), "Sends the brightness downstream now.");
    /// ```
    #[track_caller]
    pub fn summary(&self, route: &str) -> &str {
        self.routes
            .iter()
            .find(|r| r.name == route)
            .map(|r| r.summary.as_str())
            .unwrap_or_else(|| panic!("no route {route:?}"))
    }
}
