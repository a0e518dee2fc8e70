//! The roofline of a CPU training step: the step's own matrix products
//! (`cpu::products::step_products`, the very list the backend computes) timed alone with the
//! GEMM the step calls, at the step's exact shapes and strides and on its threads. The step's
//! time then splits into "its products at the rate this GEMM reaches on them" and everything
//! else (the batch gather, activations, loss, bias gradients, the update), so the gap between
//! the step and the best GEMM at these shapes is a number per network.

use crate::cpu::products::{Product, WeightLayout, step_products};
use crate::nn::model::ModelSpec;
use serde::Serialize;
use std::time::Instant;

/// One product, timed alone.
#[derive(Clone, Debug, Serialize)]
pub struct ProductTime {
    pub product: String,
    /// Its shape, `C[m×n] = A[m×k]·B[k×n]`, and the (row, column) strides A and B are read
    /// through: (1, m) for A, (1, k) for B, is a transpose read in place.
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_strides: (usize, usize),
    pub b_strides: (usize, usize),
    pub macs: u64,
    pub ms: f64,
    pub gflops: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Roofline {
    pub threads: usize,
    pub products: Vec<ProductTime>,
    /// The products' times summed: the step's time if everything else were free.
    pub products_ms: f64,
    pub step_ms: f64,
    /// products_ms / step_ms.
    pub products_share: f64,
    pub products_gflops: f64,
    pub step_gflops: f64,
}

/// Milliseconds per call of `p` on `threads` (f32, the fast path): a warm-up call, then the
/// median of batches of calls that last a few milliseconds each.
fn time_product(p: &Product, threads: usize, batches: usize) -> f64 {
    let [na, nb, nc] = p.extents();
    let fill = |n: usize| (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect::<Vec<f32>>();
    let (a, b, mut c) = (fill(na), fill(nb), fill(nc));
    let run = |c: &mut [f32]| p.run(threads, 1.0f32, &a, &b, 0.0, c);
    let t = Instant::now();
    run(&mut c);
    // calls per batch: about 5 ms of them, judged from the warm-up call
    let calls = ((5e-3 / t.elapsed().as_secs_f64().max(1e-7)) as usize).clamp(1, 10_000);
    let mut per_call: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                run(&mut c);
            }
            1e3 * t.elapsed().as_secs_f64() / calls as f64
        })
        .collect();
    std::hint::black_box(&c);
    per_call.sort_by(f64::total_cmp);
    per_call[per_call.len() / 2]
}

/// The roofline of one step of `spec` on `batch` rows and `threads` cores, against the step's
/// measured `step_ms`. The products are timed as the step runs them: on a thread of a pool of
/// `threads` flushing threads (`cpu::flush::pool`, the backend's), whose other threads take
/// the split pieces. (Timed from the calling thread instead, each call also went through
/// rayon's global pool and woke its threads, and a product's median moved up to 2× between runs.)
pub fn measure(spec: &ModelSpec, batch: usize, threads: usize, step_ms: f64, batches: usize) -> Roofline {
    let time_all = || -> Vec<ProductTime> {
        step_products(spec, batch, &WeightLayout::of_layers::<f32>(spec.num_layers()))
            .iter()
            .map(|p| {
                let ms = time_product(p, threads, batches.max(3));
                ProductTime { product: p.describe(), m: p.m, k: p.k, n: p.n, a_strides: p.a, b_strides: p.b, macs: p.macs() as u64, ms, gflops: 2.0 * p.macs() as f64 / ms / 1e6 }
            })
            .collect()
    };
    let products = match crate::cpu::flush::pool(threads.max(1)) {
        Ok(pool) => pool.install(time_all),
        // (where no thread can be started, on this one: the step then runs on it alone too)
        Err(_) => time_all(),
    };
    let products_ms: f64 = products.iter().map(|p| p.ms).sum();
    let flops = 2.0 * products.iter().map(|p| p.macs as f64).sum::<f64>();
    Roofline {
        threads,
        products_ms,
        step_ms,
        products_share: products_ms / step_ms,
        products_gflops: flops / products_ms / 1e6,
        step_gflops: flops / step_ms / 1e6,
        products,
    }
}

/// The lines `gpu-nn bench` prints under a case's table.
pub fn print(r: &Roofline) {
    println!(
        "CPU roofline ({} thread(s), f32): the step's {} products alone (its GEMM, its shapes) take {:.3} ms of its {:.3} ms ({:.0} %), {:.1} GFLOP/s; the whole step {:.1} GFLOP/s",
        r.threads,
        r.products.len(),
        r.products_ms,
        r.step_ms,
        100.0 * r.products_share,
        r.products_gflops,
        r.step_gflops
    );
    for p in &r.products {
        println!("  {:<44} {:>9.4} ms {:>8.1} GFLOP/s", p.product, p.ms, p.gflops);
    }
}
