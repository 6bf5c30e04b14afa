//! `Harness::for_plugin`: a block run through the module its crate exports
//! with `export_plugin!` (the function the library hands the loader), with
//! the same rules as a harness made from the definition.

use bitstream_sdk::prelude::*;
use bitstream_testkit::Harness;
use serde_json::json;

#[derive(Default, Serialize, Deserialize)]
pub struct Gate {
    open: bool,
    width: u32,
    #[serde(skip)]
    pulses: u64,
}

fn machine() -> StateMachine {
    StateMachine::new(["CLOSED", "OPEN"], "CLOSED")
        .triggers(["OPEN_IT"])
        .transition(Transition::on("OPEN_IT").from("CLOSED").to("OPEN"))
}

fn api() -> Api<Gate> {
    Api::new()
        .route(
            Route::post("open", |b: &mut Gate, ctx, req| {
                let body = req.json::<serde_json::Value>()?;
                b.width = body["width"].as_u64().unwrap_or(0) as u32;
                b.open = true;
                ctx.trigger("OPEN_IT", ())?;
                Ok(Response::ok())
            })
            .body_with_schema(json!({
                "type": "object",
                "properties": {"width": {"type": "integer", "minimum": 1, "maximum": 8}},
                "required": ["width"],
            })),
        )
        .route(Route::get("status", |b: &mut Gate, _ctx, _req| {
            Ok(Response::json(
                &json!({"open": b.open, "width": b.width, "pulses": b.pulses}),
            ))
        }))
}

fn events() -> EventHandler<Gate> {
    EventHandler::<Gate>::new().on_pulse(|b, ctx, _pulse| {
        b.pulses += 1;
        ctx.log_info(format!("pulse {}", b.pulses));
        Ok(())
    })
}

bitstream_sdk::export_plugin! {
    ip_block: Gate,
    state_machine: machine,
    api: api,
    event_handler: events,
    catalog: r#"{"gate": {"params": [{"name": "width", "type": "uint32"}]}}"#,
}

/// The same calls on a harness; what they answer and leave behind.
fn exercise(h: &mut Harness<Gate>) -> Vec<String> {
    let mut seen = Vec::new();
    for (target, body) in [
        ("open", json!({"width": 0})),
        ("open", json!({})),
        ("open", json!({"width": 3})),
    ] {
        let r = h.post(target, body);
        seen.push(format!("{} {}", r.status(), r.json()));
    }
    h.pulse();
    h.pulse();
    let r = h.get("status");
    seen.push(format!("{} {}", r.status(), r.json()));
    seen.push(h.state());
    seen.extend(h.logs().iter().map(|l| l.message.clone()));
    seen
}

#[test]
fn a_block_runs_through_the_exported_module_as_through_its_definition() {
    let mut exported = Harness::<Gate>::for_plugin(__bitstream_root_module);
    let mut defined = Harness::<Gate>::new();
    let seen = exercise(&mut exported);
    assert_eq!(seen, exercise(&mut defined));
    // The body schema is the host's check, the state machine the host's.
    assert_eq!(
        seen[0],
        r#"400 {"error":"invalid body: /width: 0 is less than the minimum of 1"}"#
    );
    assert!(seen[1].starts_with("400 "), "{seen:?}");
    assert!(seen[2].starts_with("200"), "{seen:?}");
    assert_eq!(seen[3], r#"200 {"open":true,"width":3,"pulses":2}"#);
    assert_eq!(seen[4], "OPEN");
    assert_eq!(exported.block().width, 3);
    // The exported module carries the catalog: the block has its buffer.
    assert!(exported.buffer().get("width").is_ok());
    assert_eq!(
        exported.route_names(),
        [("POST", "open"), ("GET", "status")]
    );
}

#[test]
#[should_panic(expected = "exports ip_block `for_plugin::Gate`, not `alloc::string::String`")]
fn a_harness_of_another_block_type_is_refused_naming_both() {
    let _ = Harness::<String>::for_plugin(__bitstream_root_module);
}
