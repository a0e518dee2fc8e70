//! The CPU f32 matrix product, per library, at the exact shapes and strides of the benchmark
//! networks' steps (`cpu::products::step_products`): matrixmultiply, the `gemm` crate and this
//! crate's AVX-512 kernel (`nn::sgemm`), on one thread and on every core, each timed in turn
//! on the same buffers (the fastest of rounds in which they alternate), so their ratios come from one run.
//!
//!   cargo bench --bench cpu_gemm                 seed001, seed000-mnist, wide, a full batch, one neuron
//!   cargo bench --bench cpu_gemm -- --threads 2
//!   cargo bench --bench cpu_gemm -- --only sgemm      one library (matrixmultiply, gemm, sgemm)

use gpu_nn::cpu::products::{Product, WeightLayout, step_products};
use gpu_nn::nn::model::{Loss, ModelSpec};
use std::time::Instant;

type Gemm = fn(usize, &Product, &[f32], &[f32], &mut [f32]);

fn matrixmultiply(_threads: usize, p: &Product, a: &[f32], b: &[f32], c: &mut [f32]) {
    // SAFETY: the buffers span the product's extents (`Product::extents`).
    unsafe { matrixmultiply::sgemm(p.m, p.k, p.n, 1.0, a.as_ptr(), p.a.0 as isize, p.a.1 as isize, b.as_ptr(), p.b.0 as isize, p.b.1 as isize, 0.0, c.as_mut_ptr(), p.rsc as isize, 1) }
}

fn gemm_crate(threads: usize, p: &Product, a: &[f32], b: &[f32], c: &mut [f32]) {
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: as above.
    unsafe { gemm::gemm(p.m, p.n, p.k, c.as_mut_ptr(), 1, p.rsc as isize, false, a.as_ptr(), p.a.1 as isize, p.a.0 as isize, b.as_ptr(), p.b.1 as isize, p.b.0 as isize, 0.0, 1.0, false, false, false, par) }
}

#[cfg(target_arch = "x86_64")]
fn sgemm(threads: usize, p: &Product, a: &[f32], b: &[f32], c: &mut [f32]) {
    // SAFETY: as above; the caller checked `sgemm::available()`.
    unsafe { gpu_nn::nn::sgemm::sgemm(threads, p.m, p.k, p.n, 1.0, a.as_ptr(), p.a.0, p.a.1, b.as_ptr(), p.b.0, p.b.1, 0.0, c.as_mut_ptr(), p.rsc) }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.iter().position(|a| a == "--threads").and_then(|i| args.get(i + 1)).and_then(|t| t.parse().ok()).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let mut libs: Vec<(&str, Gemm)> = vec![("matrixmultiply", matrixmultiply), ("gemm", gemm_crate)];
    #[cfg(target_arch = "x86_64")]
    if gpu_nn::nn::sgemm::available() {
        libs.push(("sgemm", sgemm));
    }
    if let Some(only) = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)) {
        libs.retain(|(name, _)| name == only);
    }
    let net = |layers: &[usize]| ModelSpec::classifier(layers, &ModelSpec::default_activations(layers, Loss::CrossEntropy));
    let nets = [("seed001", net(&[784, 128, 64, 10]), 64), ("seed000-mnist", net(&[784, 30, 10]), 20), ("wide", net(&[784, 1024, 1024, 10]), 256), ("seed002 full batch", net(&[784, 64, 10]), 10000), ("seed002 one neuron, full batch", net(&[784, 1]), 40000)];
    println!("µs per product (fastest of 9 rounds, the libraries alternating), {threads} thread(s); GFLOP/s = 2·m·k·n / time");
    print!("{:<48}", "product");
    for (name, _) in &libs {
        print!("{name:>22}");
    }
    println!();
    for (name, spec, rows) in nets {
        println!("{name}");
        let mut totals = vec![0.0; libs.len()];
        // with the weights held as the f32 step holds them
        for p in step_products(&spec, rows, &WeightLayout::of_layers::<f32>(spec.num_layers())) {
            let [ea, eb, ec] = p.extents();
            let a: Vec<f32> = (0..ea).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..eb).map(|i| (i as f32 * 0.61).sin()).collect();
            let mut c = vec![0.0f32; ec];
            let reps = (1e8 / p.macs() as f64).clamp(3.0, 2000.0) as usize;
            print!("  {:<46}", p.describe());
            // Rounds alternate the libraries, and each keeps its fastest round: on a shared
            // machine (steal time, neighbours' caches) the least disturbed round is the
            // steadiest estimate of what the code itself costs.
            let mut best = vec![f64::INFINITY; libs.len()];
            for _ in 0..9 {
                for (li, (_, f)) in libs.iter().enumerate() {
                    let s = pool.install(|| {
                        f(threads, &p, &a, &b, &mut c);
                        let t = Instant::now();
                        for _ in 0..reps {
                            f(threads, &p, &a, &b, &mut c);
                        }
                        t.elapsed().as_secs_f64() / reps as f64
                    });
                    best[li] = best[li].min(s);
                }
            }
            for (li, s) in best.into_iter().enumerate() {
                totals[li] += s;
                print!("{:>10.1} {:>6.1} GF/s", s * 1e6, 2.0 * p.macs() as f64 / s / 1e9);
            }
            println!();
        }
        print!("  {:<46}", "all products");
        for t in totals {
            print!("{:>10.1} µs        ", t * 1e6);
        }
        println!();
    }
}
