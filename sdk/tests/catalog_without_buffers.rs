//! A plugin's device-buffer catalog is only text that the host reads:
//! `catalog:` in `export_plugin!` works whether or not the SDK's `buffer`
//! feature is on (run with `--no-default-features` to check the latter).

use bitstream_sdk::prelude::*;
use bitstream_sdk::runtime::{plugin_module, PluginDefinition};

#[derive(Default, Serialize, Deserialize)]
pub struct Meter {
    power: f64,
}

const CATALOG: &str = r#"{"meter": {"params": [{"name": "power", "type": "double"}]}}"#;

bitstream_sdk::define_plugin!(MeterPlugin,
    ip_block: Meter,
    state_machine: || StateMachine::new(["ON"], "ON"),
    api: Api::<Meter>::new,
    event_handler: EventHandler::<Meter>::new,
    catalog: CATALOG,
);

#[test]
fn the_declared_catalog_reaches_the_module_table() {
    assert_eq!(MeterPlugin::catalog(), Some(CATALOG));
    let module = plugin_module::<MeterPlugin>("meter", "0.1.0");
    let ip_block = module.ip_block.expect("an ip_block table");
    let catalog = ip_block.catalog().expect("an SDK 1.1 table has catalog");
    assert_eq!(catalog().as_str(), CATALOG);
}
