//! `gpu-nn trace`: one training step in the documents' own terms, on any backend and preset.
//! The run is set up as `train` sets it up (weights, batch order, learning rate of that step);
//! the steps before `--step` run untraced; then the backend's `trace_step` records the step
//! and this prints, per layer, z = W·a + b and a = f(z) for the first `--show` samples, the
//! per-sample losses, δ = ∂L/∂z, the gradients ∂W and ∂b of the batch (after its reduction) and
//! the weights after the update, W with one row per destination unit as the documents write
//! it. On `seed000-hand` these are the numbers of ../shared/SEEDS.md. With dropout, the masks of
//! the step (drawn again from the seed, as every backend draws them) are printed before the
//! layers they multiply, and the activations shown are the masked ones the next layer reads;
//! with augmentation, the first samples' pictures as stored and as the step saw them.

use crate::commands::args::TraceArgs;
use crate::commands::run_dir::open_session;
use crate::core::{Plan, Session, Settings};
use crate::nn::model::tensor_names;
use crate::report::console::Console;
use anyhow::{Result, bail};
use serde_json::json;

pub fn run(args: TraceArgs, env: &Settings) -> Result<()> {
    if args.step == 0 {
        bail!("--step 0: steps count from 1");
    }
    let cfg = args.cfg.resolve()?;
    let plan = Plan::load(cfg, &env.data, true)?;
    let mut session = open_session(env, &Console::text(), |engines| Session::start(plan, engines))?;
    let traced = session.trace(args.step)?;
    let losses = session.sample_losses(&traced);
    let (cfg, data) = (session.config().clone(), session.plan().data().clone());
    let (epoch, in_epoch, lr, idx, trace) = (traced.epoch, traced.in_epoch, traced.lr, &traced.samples, &traced.trace);
    let spec = &cfg.model;
    let labels: Vec<u8> = idx.iter().map(|&i| data.train.labels[i as usize]).collect();
    let last = spec.num_layers();
    // dropout's masks of this step on the input of each weight layer (0 = the network's input)
    let dropout = session.plan().dropout().clone();
    let masks: Vec<(usize, Vec<f64>)> = (0..last)
        .filter(|&l| dropout.rate(l) > 0.0)
        .map(|l| {
            let mut m = vec![0.0; idx.len() * spec.layers[l]];
            dropout.mask(args.step, l, 0, &mut m);
            (l, m)
        })
        .collect();
    // the augmented inputs of this step, as every backend computes them (`nn::augment`)
    let augmented: Option<Vec<f64>> = session.plan().augment().map(|aug| {
        let n = spec.input_size();
        let mut out = vec![0.0; idx.len() * n];
        for (r, &i) in idx.iter().enumerate() {
            let x: Vec<f64> = (0..n).map(|j| spec.input_norm.apply(data.train.pixel(i as usize, j))).collect();
            aug.apply(args.step, r, &x, spec.input_norm.apply(0.0), &mut out[r * n..(r + 1) * n], &mut Vec::new());
        }
        out
    });
    if args.json {
        let tensors: serde_json::Map<String, serde_json::Value> = trace.tensors.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let dropout_masks: serde_json::Map<String, serde_json::Value> = masks.iter().map(|(l, m)| (format!("layer{l}.mask"), json!(m))).collect();
        let doc = json!({"step": args.step, "epoch": epoch + 1, "lr": lr, "backend": session.describe(), "samples": idx, "labels": labels, "losses": losses, "tensors": tensors, "dropout_masks": dropout_masks, "augmented_inputs": augmented});
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
        session.describe(),
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
    if let (Some(aug), Some(x)) = (session.plan().augment(), &augmented) {
        let n = spec.input_size();
        println!("\naugmented inputs ({}): each sample as stored and as this step sees it", aug.spec);
        for (r, &i) in idx.iter().take(show.min(3)).enumerate() {
            let stored: Vec<f64> = (0..n).map(|j| data.train.pixel(i as usize, j)).collect();
            let seen: Vec<f64> = x[r * n..(r + 1) * n].iter().map(|&v| v * spec.input_norm.std + spec.input_norm.mean).collect();
            println!("  sample {i} (label {})", labels[r]);
            for y in 0..aug.height {
                let line = |v: &[f64]| v[y * aug.width..(y + 1) * aug.width].iter().map(|&p| shade(p)).collect::<String>();
                println!("    {}   {}", line(&stored), line(&seen));
            }
        }
    }
    println!("\nforward");
    for l in 1..=last {
        let (n_in, n_out) = spec.layer_dims(l - 1);
        if let Some((_, m)) = masks.iter().find(|(k, _)| *k == l - 1) {
            let p = dropout.rate(l - 1);
            let what = if l == 1 { "the input".to_string() } else { format!("layer {}'s a", l - 1) };
            println!("dropout on {what} (p = {p}): m = 0 (dropped) or 1/(1−p) = {} (kept); layer {l} reads a ⊙ m", 1.0 / (1.0 - p));
            samples("m", m, n_in);
        }
        println!("layer {l} ({n_in} → {n_out}, {}): z = W{l}·a + b{l}, a = f(z){}", spec.activations[l - 1], if l < last && dropout.rate(l) > 0.0 { " (shown masked: a ⊙ m)" } else { "" });
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

/// A pixel in [0, 1] as a character, darker for larger values.
fn shade(p: f64) -> char {
    const RAMP: [char; 5] = [' ', '.', ':', 'o', '#'];
    RAMP[((p.clamp(0.0, 1.0) * 4.0).round()) as usize]
}
