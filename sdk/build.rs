//! Records how the SDK is compiled (cargo's profile and opt-level), for the
//! build record every plugin exports (`runtime::plugin_info`).

fn main() {
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    let opt_level = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=BITSTREAM_SDK_PROFILE={profile}");
    println!("cargo:rustc-env=BITSTREAM_SDK_OPT_LEVEL={opt_level}");
    println!("cargo:rerun-if-changed=build.rs");
}
