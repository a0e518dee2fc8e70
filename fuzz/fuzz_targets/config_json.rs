//! A configuration file (config.json, a preset) from arbitrary text: an error, or a
//! configuration that validates or is refused with an error, and that reads back equal from
//! its own JSON; never a panic.
#![no_main]
use gpu_nn::core::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(layer) = Config::layer_from_str(text, "fuzz input") else { return };
    let cfg = Config::from_layers(&[layer]).expect("a layer that validated alone resolves");
    let _ = cfg.validate();
    let again = serde_json::to_value(&cfg).expect("a configuration serialises");
    assert_eq!(Config::from_layers(&[again]).expect("its own JSON reads back"), cfg);
});
