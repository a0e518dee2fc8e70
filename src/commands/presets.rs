//! `gpu-nn presets`: the shipped experiments, with their descriptions.

use crate::core::config::PRESETS;
use anyhow::Result;

pub fn run() -> Result<()> {
    for (name, text) in PRESETS {
        let desc = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v["description"].as_str().map(str::to_string))
            .unwrap_or_default();
        println!("{name:18} {desc}");
    }
    Ok(())
}
