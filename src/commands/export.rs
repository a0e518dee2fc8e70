//! `gpu-nn export`: a trained model for other tools, written atomically; today ONNX
//! (`report::onnx`).

use crate::atomic_file::write_atomic;
use crate::commands::args::ExportArgs;
use crate::commands::eval::open_model;
use crate::report::console::Console;
use crate::report::onnx::onnx_model;
use anyhow::Result;

pub fn run(args: ExportArgs) -> Result<()> {
    let (params, cfg) = open_model(&args.model, &args.data.config_args(None, None), &Console::text())?;
    let bytes = onnx_model(&cfg.model, &params);
    write_atomic(&args.onnx, &bytes)?;
    let spec = &cfg.model;
    println!(
        "wrote {} ({} bytes): input 'pixels' [batch, {}] (pixel values scaled to [0, 1]), output 'outputs' [batch, {}]{}",
        args.onnx.display(),
        bytes.len(),
        spec.input_size(),
        spec.output_size(),
        if spec.output_activation() == crate::nn::model::Activation::Softmax { " (class probabilities)" } else { "" }
    );
    Ok(())
}
