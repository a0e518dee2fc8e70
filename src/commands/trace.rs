//! `gpu-nn trace`: one training step in the documents' own terms, on any backend and preset.
//! The run is set up as `train` sets it up (weights, batch order, learning rate of that step);
//! the steps before `--step` run untraced; then the backend's `trace_step` records the step
//! and this prints, per layer, z = W·a + b and a = f(z) for the first `--show` samples, the
//! per-sample losses, δ = ∂L/∂z, the gradients ∂W and ∂b of the batch (after its reduction) and
//! the weights after the update, W with one row per destination unit as the documents write
//! it. On `seed000-hand` these are the numbers of ../shared/SEEDS.md.

use crate::commands::args::TraceArgs;
use crate::commands::setup::{make_engine, prepare};
use crate::nn::math;
use crate::nn::model::tensor_names;
use crate::core::train::{attach_all, epoch_order, step_counts};
use crate::report::console::Console;
use anyhow::{Result, bail};
use serde_json::json;

pub fn run(args: TraceArgs) -> Result<()> {
    if args.step == 0 {
        bail!("--step 0: steps count from 1");
    }
    let mut cfg = args.cfg.resolve()?;
    let console = Console::quiet();
    let data = prepare(&mut cfg, &console)?;
    let n = data.train.len();
    let batch = cfg.training.batch_size.resolve(n);
    let (per_epoch, total) = step_counts(&cfg, n);
    let (mut backend, _) = make_engine(&cfg, batch, &Console::text())?;
    backend.set_params(&cfg.initial_params()?)?;
    attach_all(&data, backend.as_mut())?;
    // the step's epoch, its batch and its learning rate, as the training loop takes them
    let epoch = ((args.step - 1) / per_epoch as u64) as usize;
    let in_epoch = ((args.step - 1) % per_epoch as u64) as usize;
    let lr_at = |s: u64| cfg.optimizer.schedule.lr(cfg.optimizer.lr, (s / per_epoch as u64) as usize, s, total);
    for s in 0..args.step - 1 {
        let (e, i) = ((s / per_epoch as u64) as usize, (s % per_epoch as u64) as usize);
        let order = epoch_order(&cfg, n, e);
        let idx = &order[i * batch..((i + 1) * batch).min(n)];
        backend.train_steps(idx, batch, &[lr_at(s)])?;
    }
    let order = epoch_order(&cfg, n, epoch);
    let idx: Vec<u32> = order[in_epoch * batch..((in_epoch + 1) * batch).min(n)].to_vec();
    let lr = lr_at(args.step - 1);
    let trace = backend.trace_step(&idx, lr)?;
    let spec = &cfg.model;
    let labels: Vec<u8> = idx.iter().map(|&i| data.train.labels[i as usize]).collect();
    let last = spec.num_layers();
    let out = spec.output_size();
    let losses: Vec<f64> = labels
        .iter()
        .enumerate()
        .map(|(r, &y)| math::sample_loss(spec.loss, &trace.get(&format!("layer{last}.z"))[r * out..(r + 1) * out], &trace.get(&format!("layer{last}.a"))[r * out..(r + 1) * out], y))
        .collect();
    if args.json {
        let tensors: serde_json::Map<String, serde_json::Value> = trace.tensors.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let doc = json!({"step": args.step, "epoch": epoch + 1, "lr": lr, "backend": backend.describe(), "samples": idx, "labels": labels, "losses": losses, "tensors": tensors});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let show = args.show.max(1).min(idx.len());
    println!(
        "step {} (epoch {}, step {} of it) of {} on {}: a batch of {} samples, lr {lr}",
        args.step,
        epoch + 1,
        in_epoch + 1,
        cfg.preset.as_deref().unwrap_or("the configuration"),
        backend.describe(),
        idx.len()
    );
    let row = |v: &[f64]| v.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join("  ");
    let samples = |name: &str, v: &[f64], width: usize| {
        for (r, s) in idx.iter().take(show).enumerate() {
            println!("  {name:<5} sample {s:<6} {}", row(&v[r * width..(r + 1) * width]));
        }
        if show < idx.len() {
            println!("  {name:<5} ({} more samples; --show N prints more)", idx.len() - show);
        }
    };
    println!("\nforward");
    for l in 1..=last {
        let (n_in, n_out) = spec.layer_dims(l - 1);
        println!("layer {l} ({n_in} → {n_out}, {}): z = W{l}·a + b{l}, a = f(z)", spec.activations[l - 1]);
        samples("z", trace.get(&format!("layer{l}.z")), n_out);
        samples("a", trace.get(&format!("layer{l}.a")), n_out);
    }
    let batch_loss = losses.iter().sum::<f64>() * spec.reduction.scale(idx.len());
    println!("\nloss ({}, {} over the batch): {batch_loss}", spec.loss, spec.reduction);
    for (r, s) in idx.iter().take(show).enumerate() {
        println!("  sample {s:<6} label {}  loss {}", labels[r], losses[r]);
    }
    println!("\nbackward: δ = ∂L/∂z per sample");
    for l in (1..=last).rev() {
        println!("layer {l}");
        samples("δ", trace.get(&format!("layer{l}.delta")), spec.layers[l]);
    }
    println!("\ngradients of the batch loss, and the parameters after the update (rows = destination units)");
    for i in 0..last {
        let (n_in, n_out) = spec.layer_dims(i);
        let (w, b) = tensor_names(i);
        let l = i + 1;
        let matrix = |name: String, v: &[f64]| {
            println!("  {name}");
            for o in 0..n_out.min(8) {
                let cols = &v[o * n_in..(o + 1) * n_in];
                let shown = &cols[..n_in.min(8)];
                println!("    {}{}", row(shown), if n_in > 8 { format!("  … ({} columns)", n_in) } else { String::new() });
            }
            if n_out > 8 {
                println!("    … ({n_out} rows)");
            }
        };
        println!("layer {l} ({n_in} → {n_out})");
        matrix(format!("∂L/∂W{l}"), trace.get(&format!("{w}.grad")));
        println!("  ∂L/∂b{l}  {}", row(&trace.get(&format!("{b}.grad"))[..n_out.min(8)]));
        matrix(format!("W{l} after"), trace.get(&w));
        println!("  b{l} after  {}", row(&trace.get(&b)[..n_out.min(8)]));
    }
    Ok(())
}
