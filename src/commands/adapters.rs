//! `gpu-nn adapters`: every adapter wgpu finds, with the limits that matter.

use crate::gpu::context::{NO_ADAPTER_HELP, instance, list_adapters};
use anyhow::Result;

pub fn run() -> Result<()> {
    let all = list_adapters(&instance());
    if all.is_empty() {
        println!("{NO_ADAPTER_HELP}");
    }
    for a in &all {
        println!("{}{}", a.summary(), if a.is_software() { "  [CPU emulation]" } else { "" });
    }
    Ok(())
}
