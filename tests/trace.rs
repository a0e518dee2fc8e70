//! `gpu-nn trace` prints one training step in the documents' terms. On seed000-hand its numbers
//! are ../shared/SEEDS.md's: the corrected forward values and per-sample losses, and the weights
//! after epochs 1 and 2 (one step each), to 1e-12 on the f64 reference and 1e-6 on the GPU; on
//! an MNIST preset it runs on a real batch.

mod common;
use common::{gpu_nn, in_ci, mnist_dir_or_skip, s};
use serde_json::Value;

fn trace_json(args: &[&str]) -> Value {
    let mut all = vec!["trace", "--json"];
    all.extend_from_slice(args);
    let o = gpu_nn(&all);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn close(what: &str, got: &Value, want: &[f64], tol: f64) {
    let got: Vec<f64> = got.as_array().unwrap_or_else(|| panic!("{what} missing")).iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{what}: {g} vs {w}");
    }
}

/// SEEDS.md's doc-000 values: hidden and output activations of both samples, the two losses,
/// and w1..w12 after epoch 1 and 2 as (W1 rows, b1, W2 rows, b2).
const HIDDEN: [f64; 4] = [0.5299640517645717, 0.5324543063873187, 0.5324543063873187, 0.5349429451582145];
const OUTPUT: [f64; 4] = [0.5513784696896066, 0.5645102463659317, 0.5515016245695407, 0.5646938181510764];
const LOSSES: [f64; 2] = [0.2599665478550821, 0.24682275692936534];
// [w1, w3, w2, w4], [w9, w10], [w5, w7, w6, w8], [w11, w12]
const EPOCH1: [[f64; 4]; 3] = [
    [0.09999287608226642, 0.09998921557833007, 0.19998891676306169, 0.0999985689813837],
    [0.09930886197388886, 0.09930570520953383, 0.09917137885954593, 0.19916741399056967],
    [0.09992876082266425, 0.09988916763061688, 0.09872792707492782, 0.09841131755925499],
];
const EPOCH2: [[f64; 4]; 3] = [
    [0.09998587245440584, 0.09997859293400495, 0.19997799003212677, 0.09999735895378623],
    [0.09862415224294406, 0.09861787933892739, 0.09835049214850768, 0.1983426150780483],
    [0.09985872454405843, 0.09977990032126763, 0.0974679149077061, 0.09683713463400069],
];

fn check_hand(v: &Value, tol: f64, weights: &[[f64; 4]; 3], forward: bool) {
    let t = &v["tensors"];
    if forward {
        close("layer1.a", &t["layer1.a"], &HIDDEN, tol);
        close("layer2.a", &t["layer2.a"], &OUTPUT, tol);
        close("losses", &v["losses"], &LOSSES, tol);
    }
    close("W1", &t["layers.0.weight"], &weights[0], tol);
    close("W2", &t["layers.1.weight"], &weights[1], tol);
    close("b1", &t["layers.0.bias"], &weights[2][..2], tol);
    close("b2", &t["layers.1.bias"], &weights[2][2..], tol);
}

#[test]
fn the_hand_example_step_is_seeds_md_on_the_reference() {
    let v = trace_json(&["--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64"]);
    check_hand(&v, 1e-12, &EPOCH1, true);
    let v = trace_json(&["--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--step", "2"]);
    check_hand(&v, 1e-12, &EPOCH2, false);
    // and the text names the same numbers in full precision
    let o = gpu_nn(&["trace", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for n in ["0.5299640517645717", "0.2599665478550821", "0.09999287608226642", "0.09841131755925499", "∂L/∂W2", "δ"] {
        assert!(text.contains(n), "trace text lacks {n}:\n{text}");
    }
}

#[test]
fn the_hand_example_step_on_the_gpu() {
    let o = gpu_nn(&["trace", "--json", "--preset", "seed000-hand", "--backend", "gpu"]);
    if !o.status.success() {
        assert!(!in_ci(), "trace on the GPU failed in CI: {}", String::from_utf8_lossy(&o.stderr));
        eprintln!("SKIPPED: no GPU ({})", String::from_utf8_lossy(&o.stderr));
        return;
    }
    check_hand(&serde_json::from_slice(&o.stdout).unwrap(), 1e-6, &EPOCH1, true);
}

#[test]
fn an_mnist_preset_traces_a_real_batch() {
    let Some(dir) = mnist_dir_or_skip("trace seed001") else { return };
    let o = gpu_nn(&["trace", "--preset", "seed001", "--backend", "cpu", "--show", "1", "--step", "3", "--data", s(&dir)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("step 3 (epoch 1, step 3 of it) of seed001"), "{text}");
    assert!(text.contains("layer 3 (64 → 10, softmax)") && text.contains("(63 more samples"), "{text}");
    let o = gpu_nn(&["trace", "--preset", "seed001", "--step", "0"]);
    assert!(!o.status.success());
}

/// With dropout, the trace shows each mask of the step, and the activations it shows are the
/// masked ones: zero wherever the mask drops a unit, f(z)/(1−p) where it keeps one, on the CPU
/// and on the GPU alike (the GPU's kernel draws its masks itself).
#[test]
fn a_trace_with_dropout_shows_the_masks_the_step_used() {
    let Some(dir) = mnist_dir_or_skip("trace dropout") else { return };
    for backend in ["cpu", "gpu"] {
        let v = trace_json(&["--preset", "seed001", "--layers", "784,40,30,10", "--dropout", "0.5,0.25", "--input-dropout", "0.2", "--backend", backend, "--step", "2", "--data", s(&dir)]);
        let masks = v["dropout_masks"].as_object().unwrap();
        assert!(v["augmented_inputs"].is_null(), "no augmentation asked for");
        assert_eq!(masks.keys().cloned().collect::<Vec<_>>(), ["layer0.mask", "layer1.mask", "layer2.mask"], "{backend}");
        for (l, p) in [(1usize, 0.5f64), (2, 0.25)] {
            let m: Vec<f64> = serde_json::from_value(masks[&format!("layer{l}.mask")].clone()).unwrap();
            let z: Vec<f64> = serde_json::from_value(v["tensors"][format!("layer{l}.z")].clone()).unwrap();
            let a: Vec<f64> = serde_json::from_value(v["tensors"][format!("layer{l}.a")].clone()).unwrap();
            assert_eq!((m.len(), a.len()), (64 * [0, 40, 30][l], 64 * [0, 40, 30][l]));
            let dropped = m.iter().filter(|&&x| x == 0.0).count() as f64 / m.len() as f64;
            assert!((dropped - p).abs() < 0.1, "{backend} layer {l}: {dropped} of the units dropped, p = {p}");
            for ((&m, &z), &a) in m.iter().zip(&z).zip(&a) {
                let want = z.max(0.0) * m;
                assert!((a - want).abs() <= 1e-5 * (1.0 + want.abs()), "{backend} layer {l}: a = {a}, relu(z)·m = {want}");
            }
        }
    }
}

/// With augmentation, the trace shows the pictures the step saw: one per sample of the batch,
/// not the stored ones, and the text shows the first samples side by side with their originals.
#[test]
fn a_trace_with_augmentation_shows_the_augmented_inputs() {
    let Some(dir) = mnist_dir_or_skip("trace augmentation") else { return };
    let args = ["--preset", "seed001", "--augment", "shift=2,rotate=15,elastic=34:4", "--backend", "cpu", "--step", "3", "--data", s(&dir)];
    let v = trace_json(&args);
    let x: Vec<f64> = serde_json::from_value(v["augmented_inputs"].clone()).unwrap();
    assert_eq!(x.len(), 64 * 784);
    assert!(x.iter().all(|p| (-1e-9..=1.0 + 1e-9).contains(p)), "bilinear samples of pixels in [0, 1] stay in [0, 1]");
    let inked = x[..784].iter().filter(|&&p| p > 0.5).count();
    assert!((40..400).contains(&inked), "a digit's worth of ink: {inked}");
    let o = gpu_nn(&[&["trace"], &args[..]].concat());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("augmented inputs (shift=2,rotate=15,scale=0,elastic=34:4)"), "{text}");
    assert!(text.lines().filter(|l| l.contains('#')).count() >= 10, "{text}");
}
