//! `--init-from` a safetensors file written by another tool (no gpu-nn metadata): gpu-nn's
//! documented names, PyTorch `nn.Sequential` and named-`Linear` state dicts, in F16, BF16, F32
//! and F64; the layers in natural order; a missing bias read as zero; shapes checked against the
//! configuration with one clear line; and a run started from such a file computes exactly as
//! one started from the same values given in the configuration.

use gpu_nn::core::config::{Config, preset_json};
use gpu_nn::nn::model::Params;
use safetensors::{Dtype, tensor::TensorView};
mod common;
use common::{error_line, gpu_nn, s};
use std::path::Path;

/// Writes `tensors` (name, shape, values) as `dtype` into a safetensors file without metadata.
fn write(path: &Path, dtype: Dtype, tensors: &[(&str, Vec<usize>, Vec<f64>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| match dtype {
            Dtype::F64 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Dtype::F32 => v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect(),
            Dtype::F16 => v.iter().flat_map(|x| half::f16::from_f64(*x).to_le_bytes()).collect(),
            Dtype::BF16 => v.iter().flat_map(|x| half::bf16::from_f64(*x).to_le_bytes()).collect(),
            d => panic!("{d:?}"),
        })
        .collect();
    let views: Vec<(&str, TensorView)> = tensors.iter().zip(&bytes).map(|((n, shape, _), b)| (*n, TensorView::new(dtype, shape.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// doc 000's 2-2-2 network, with its weights from `file`.
fn hand_from(file: &Path) -> Config {
    let mut cfg = Config::from_layers(&[preset_json("seed000-hand").unwrap()]).unwrap();
    cfg.init_from = Some(file.to_path_buf());
    cfg
}

/// Values exact in every half type: multiples of 1/64 below 2.
fn vals(n: usize, k: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * 37 + k * 11) % 100) as f64 / 64.0 - 0.75).collect()
}

#[test]
fn every_scheme_and_dtype_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let want = Params {
        layers: vec![
            gpu_nn::nn::model::LayerParams { weight: vals(4, 1), bias: vals(2, 2) },
            gpu_nn::nn::model::LayerParams { weight: vals(4, 3), bias: vals(2, 4) },
        ],
    };
    let [l0, l1] = [&want.layers[0], &want.layers[1]];
    let schemes: [[&str; 4]; 4] = [
        ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"],
        ["0.weight", "0.bias", "2.weight", "2.bias"],
        ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"],
        // natural order: net.2 before net.10, although "net.10" < "net.2" as text
        ["net.2.weight", "net.2.bias", "net.10.weight", "net.10.bias"],
    ];
    for names in schemes {
        for dtype in [Dtype::F16, Dtype::BF16, Dtype::F32, Dtype::F64] {
            let f = tmp.path().join(format!("{}-{dtype:?}.safetensors", names[0]));
            write(&f, dtype, &[
                (names[0], vec![2, 2], l0.weight.clone()),
                (names[1], vec![2], l0.bias.clone()),
                (names[2], vec![2, 2], l1.weight.clone()),
                (names[3], vec![2], l1.bias.clone()),
            ]);
            let got = hand_from(&f).initial_params().unwrap_or_else(|e| panic!("{names:?} {dtype:?}: {e:#}"));
            assert_eq!(got, want, "{names:?} {dtype:?}");
        }
    }
    // a layer without a bias (Linear(bias=False)) starts from a zero bias
    let f = tmp.path().join("nobias.safetensors");
    write(&f, Dtype::F32, &[("0.weight", vec![2, 2], l0.weight.clone()), ("1.weight", vec![2, 2], l1.weight.clone()), ("1.bias", vec![2], l1.bias.clone())]);
    let got = hand_from(&f).initial_params().unwrap();
    assert_eq!(got.layers[0].bias, [0.0, 0.0]);
    assert_eq!(got.layers[1].bias, l1.bias);
}

#[test]
fn a_shape_mismatch_is_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("wide.safetensors");
    write(&f, Dtype::F32, &[("0.weight", vec![5, 2], vals(10, 0)), ("0.bias", vec![5], vals(5, 1)), ("2.weight", vec![2, 5], vals(10, 2)), ("2.bias", vec![2], vals(2, 3))]);
    let o = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--init-from", s(&f), "--out", s(&tmp.path().join("r"))]);
    assert!(!o.status.success());
    let line = error_line(&o);
    assert!(line.contains("its linear layers are 2→5 (0.weight), 5→2 (2.weight)") && line.contains("expect 2→2, 2→2"), "{line}");
    let f = tmp.path().join("empty.safetensors");
    write(&f, Dtype::F32, &[("scale", vec![3], vals(3, 0))]);
    let o = gpu_nn(&["train", "--preset", "seed000-hand", "--backend", "cpu", "--init-from", s(&f), "--out", s(&tmp.path().join("q"))]);
    assert!(error_line(&o).contains("no 2-D tensor named *.weight"));
}

/// Training from a PyTorch-named F64 file of the preset's own initial weights gives the same
/// model, tensor for tensor, as training from the preset.
#[test]
fn a_run_from_foreign_weights_computes_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Config::from_layers(&[preset_json("seed000-hand").unwrap()]).unwrap();
    let p = cfg.initial_params().unwrap();
    let f = tmp.path().join("torch.safetensors");
    write(&f, Dtype::F64, &[
        ("0.weight", vec![2, 2], p.layers[0].weight.clone()),
        ("0.bias", vec![2], p.layers[0].bias.clone()),
        ("2.weight", vec![2, 2], p.layers[1].weight.clone()),
        ("2.bias", vec![2], p.layers[1].bias.clone()),
    ]);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (out, extra) in [(&a, vec![]), (&b, vec!["--init-from", s(&f)])] {
        let mut args = vec!["train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64", "--out", s(out)];
        args.extend(extra);
        let o = gpu_nn(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (ma, mb) = (std::fs::read(a.join("model.safetensors")).unwrap(), std::fs::read(b.join("model.safetensors")).unwrap());
    let (ta, tb) = (safetensors::SafeTensors::deserialize(&ma).unwrap(), safetensors::SafeTensors::deserialize(&mb).unwrap());
    let mut names = ta.names();
    names.sort();
    assert!(!names.is_empty());
    for n in names {
        assert_eq!(ta.tensor(n).unwrap().data(), tb.tensor(n).unwrap().data(), "{n}");
    }
}

/// `eval --model` on another tool's file, the architecture from `--layers` (activations and
/// loss defaulted): the same loss, accuracy and confusion matrix as gpu-nn's own file of the
/// same weights; without matching `--layers`, one line says what the file holds.
#[test]
fn eval_reads_foreign_weights_with_the_architecture_from_flags() {
    let Some(data) = common::mnist_dir_or_skip("eval foreign") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let o = gpu_nn(&["train", "--preset", "seed001", "--backend", "cpu", "--max-steps", "30", "--epochs", "1", "--data", s(&data), "--out", s(&a)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let own = std::fs::read(a.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&own).unwrap();
    std::fs::create_dir(&b).unwrap();
    let foreign = b.join("sequential.safetensors");
    let views: Vec<(String, safetensors::tensor::TensorView)> = (0..3)
        .flat_map(|i| ["weight", "bias"].map(|t| (format!("{}.{t}", 2 * i), st.tensor(&format!("layers.{i}.{t}")).unwrap())))
        .collect();
    safetensors::serialize_to_file(views, None, &foreign).unwrap();
    let eval = |model: &Path, extra: &[&str]| {
        let mut args = vec!["eval", "--model", s(model), "--json", "--data", s(&data)];
        args.extend_from_slice(extra);
        let o = gpu_nn(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["loss"].clone(), v["correct"].clone(), v["confusion"].clone())
    };
    let want = eval(&a.join("model.safetensors"), &[]);
    assert_eq!(eval(&foreign, &["--layers", "784,128,64,10"]), want);
    let o = gpu_nn(&["eval", "--model", s(&foreign), "--layers", "784,100,10", "--data", s(&data)]);
    assert!(error_line(&o).contains("its linear layers are 784→128 (0.weight), 128→64 (2.weight), 64→10 (4.weight)"));
}
