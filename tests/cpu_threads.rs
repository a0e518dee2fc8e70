//! The CPU fast path gives the same bytes whatever the number of threads: its matrix products
//! split the work by blocks of C, never a sum, so every element adds its products in one order.

mod common;

use common::{gpu_nn, mnist_dir_or_skip};
use gpu_nn::nn::backend::{Backend, Split};
use gpu_nn::nn::math::{PARALLEL_MIN_WORK, Real};
use gpu_nn::nn::model::{Activation, Loss, ModelSpec};
use gpu_nn::nn::optim::{OptimizerKind, OptimizerSpec};
use gpu_nn::cpu::{FastBackend, PARALLEL_MIN_UPDATE};
use gpu_nn::workbench::step::{random_dataset, random_params};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Products of odd sizes above the threshold where the work is split, in the three layouts the
/// backend uses (A·Wᵀ, δ·W, δᵀ·A), with and without accumulation into C.
#[test]
fn gemm_is_bit_identical_on_one_and_several_threads() {
    let mut seed = 1u32;
    let mut next = || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
    };
    for &(m, k, n) in &[(257, 301, 259), (64, 2049, 131), (1000, 130, 140), (33, 784, 1031)] {
        assert!(m * k * n >= PARALLEL_MIN_WORK, "{m}×{k}×{n} must be split over threads");
        let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
        let c0: Vec<f32> = (0..m * n).map(|_| next()).collect();
        // (rsa, csa, rsb, csb): A·Bᵀ-like, A·B, Aᵀ·B
        for (rsa, csa, rsb, csb) in [(k, 1, 1, k), (k, 1, n, 1), (1, m, n, 1)] {
            for beta in [0.0f32, 1.0] {
                let run = |threads: usize| {
                    let mut c = c0.clone();
                    f32::gemm_threads(threads, m, k, n, 0.75, &a, rsa, csa, &b, rsb, csb, beta, &mut c, n);
                    c
                };
                let one = run(1);
                for threads in [2, 3, 4] {
                    let many = run(threads);
                    let same = one.iter().zip(&many).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{m}×{k}×{n} (strides {rsa},{csa},{rsb},{csb}, beta {beta}): {threads} threads differ from one");
                }
            }
        }
    }
}

/// Training steps of a network whose products and Adam update are split over threads: the same
/// weights and optimiser state, bit for bit, on one thread and on two.
#[test]
fn training_is_bit_identical_on_one_and_two_threads() {
    let spec = ModelSpec::classifier(&[784, 400, 64, 10], &[Activation::Relu, Activation::Tanh, Activation::Softmax]);
    let opt = OptimizerSpec { kind: OptimizerKind::Adam, lr: 1e-3, ..Default::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let data = Arc::new(random_dataset(&spec, 600, false, &mut rng));
    let p = random_params(&spec, &mut rng);
    let batch = 200;
    assert!(batch * 784 * 400 >= PARALLEL_MIN_WORK, "the first layer's products must be split");
    assert!(784 * 400 >= PARALLEL_MIN_UPDATE, "the first layer's update must be split");
    let order: Vec<u32> = (0..600).map(|i| (i * 7 % 600) as u32).collect();
    // with augmented pictures (split by rows) and dropout on the input and both hidden layers
    // (400 units: their masks split too)
    let dropout = gpu_nn::nn::dropout::Dropout::new(&spec, 0.1, &[0.5, 0.2], 3, batch).unwrap();
    let aug_spec = gpu_nn::nn::augment::AugmentSpec { shift: 2.0, rotate: 10.0, scale: 0.1, elastic_alpha: 10.0, elastic_sigma: 2.0 };
    let augment = gpu_nn::nn::augment::Augment::new(aug_spec, 28, 28, 3, batch).unwrap();
    let train = |threads: usize| {
        let mut b = FastBackend::with_threads(&spec, &opt, threads);
        b.set_params(&p).unwrap();
        b.set_dropout(&dropout).unwrap();
        b.set_augment(Some(&augment)).unwrap();
        b.attach(Split::Train, data.clone()).unwrap();
        let stats = b.train_steps(&order, batch, &[1e-3; 3]).unwrap();
        (b.params().unwrap(), b.optimizer_state().unwrap(), stats)
    };
    assert!(FastBackend::with_threads(&spec, &opt, 2).splits(batch), "the steps must run on the pool");
    let (p1, s1, st1) = train(1);
    let (p2, s2, st2) = train(2);
    assert_ne!(p1, p, "the steps must change the weights");
    assert_eq!(p1, p2, "weights differ between one and two threads");
    assert_eq!(s1, s2, "optimiser state differs between one and two threads");
    assert_eq!(st1.loss_sum.to_bits(), st2.loss_sum.to_bits(), "the running loss differs");
}

/// A full batch runs in blocks of rows (each forward and back while its inputs are in cache,
/// the weight gradients added block after block): the same bits as the batch in one pass, which
/// a traced step takes, on one thread and on two, with a last block shorter than the others.
#[test]
fn a_full_batch_in_blocks_gives_the_bits_of_one_pass() {
    let spec = ModelSpec::classifier(&[784, 64, 10], &[Activation::Sigmoid, Activation::Softmax]);
    let opt = OptimizerSpec { kind: OptimizerKind::Sgd, lr: 0.7, ..Default::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 2 * 1024 + 301;
    let p = random_params(&spec, &mut rng);
    if gpu_nn::nn::sgemm::available() {
        assert!(f32::k_block().is_some(), "where sgemm runs, a full batch must run in blocks");
    }
    let all: Vec<u32> = (0..n as u32).collect();
    // the full batch, shuffled: read in file order, in blocks
    let shuffled: Vec<u32> = (0..n).map(|i| (i * 7 % n) as u32).collect();
    // bytes (converted block by block) and floats (read in place from their converted copy)
    for float_pixels in [false, true] {
        let data = Arc::new(random_dataset(&spec, n, float_pixels, &mut rng));
        let backend = |threads: usize| {
            let mut b = FastBackend::with_threads(&spec, &opt, threads);
            b.set_params(&p).unwrap();
            b.attach(Split::Train, data.clone()).unwrap();
            b
        };
        let mut one_pass = backend(1);
        let trace = one_pass.trace_step(&all, 0.7).unwrap();
        let want = one_pass.params().unwrap();
        assert_ne!(want, p, "the step must change the weights");
        assert!(trace.get("layers.0.bias.grad").iter().all(|&g| g != 0.0), "every bias gradient sums {n} rows");
        for threads in [1, 2] {
            let mut blocks = backend(threads);
            blocks.train_steps(&shuffled, n, &[0.7]).unwrap();
            assert_eq!(blocks.params().unwrap(), want, "{threads} thread(s), float pixels {float_pixels}: the blocks' step differs from one pass");
        }
    }
}

/// A network whose steps split nothing (seed000-mnist's 784-30-10 on batches of 20): on two
/// threads its steps run on the calling thread, subnormals flushed there as on the pool, and
/// give the bytes of one thread; its evaluation still runs on the pool.
#[test]
fn small_steps_on_the_calling_thread_give_the_bytes_of_one_thread() {
    let spec = ModelSpec { loss: Loss::HalfSse, ..ModelSpec::classifier(&[784, 30, 10], &[Activation::Sigmoid, Activation::Sigmoid]) };
    let opt = OptimizerSpec { kind: OptimizerKind::Adam, lr: 1e-3, ..Default::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let data = Arc::new(random_dataset(&spec, 300, false, &mut rng));
    let p = random_params(&spec, &mut rng);
    let batch = 20;
    let order: Vec<u32> = (0..300).map(|i| (i * 7 % 300) as u32).collect();
    let two = FastBackend::with_threads(&spec, &opt, 2);
    assert!(!two.splits(batch) && two.splits(300), "steps of 20 split nothing, a pass over 300 samples does");
    let train = |threads: usize| {
        let mut b = FastBackend::with_threads(&spec, &opt, threads);
        b.set_params(&p).unwrap();
        b.attach(Split::Train, data.clone()).unwrap();
        let stats = b.train_steps(&order, batch, &[1e-3; 15]).unwrap();
        let eval = b.evaluate(Split::Train).unwrap();
        (b.params().unwrap(), b.optimizer_state().unwrap(), stats.loss_sum.to_bits(), eval.loss_sum.to_bits())
    };
    let one = train(1);
    assert_ne!(one.0, p, "the steps must change the weights");
    assert!(one == train(2), "a 2-thread backend's small steps differ from one thread's");
}

/// The command line: `--threads 1` and `--threads 2` write the same model file.
#[test]
fn threads_flag_gives_the_same_model_file() {
    let Some(mnist) = mnist_dir_or_skip("threads_flag_gives_the_same_model_file") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for t in ["1", "2"] {
        let out = dir.path().join(format!("t{t}"));
        let o = gpu_nn(&[
            "train", "--backend", "cpu", "--data", mnist.to_str().unwrap(), "--layers", "784,256,10",
            "--activation", "relu,softmax", "--batch-size", "300", "--max-steps", "12", "--threads", t,
            "--out", out.to_str().unwrap(), "--quiet",
        ]);
        assert!(o.status.success(), "--threads {t}: {}", String::from_utf8_lossy(&o.stderr));
        files.push(std::fs::read(out.join("model.safetensors")).unwrap());
    }
    assert!(300 * 784 * 256 >= PARALLEL_MIN_WORK);
    assert!(files[0] == files[1], "model.safetensors differs between --threads 1 and --threads 2");
}
