//! Fashion-MNIST and KMNIST: read from small files made here with their real IDX headers (and
//! gzip, under their real names), trained on, and evaluated with their class names in `eval`'s
//! JSON and printed matrix (the confusion picture is drawn from the same names).

mod common;
use common::{gpu_nn, s};
use flate2::{Compression, write::GzEncoder};
use std::io::Write;
use std::path::Path;

/// IDX files of `n` training and `n / 5` test samples, 28×28 bytes, labels 0..9, gzipped.
fn write_set(dir: &Path, n: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let gz = |name: &str, bytes: Vec<u8>| {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(&bytes).unwrap();
        std::fs::write(dir.join(format!("{name}.gz")), e.finish().unwrap()).unwrap();
    };
    for (prefix, count) in [("train", n), ("t10k", n / 5)] {
        let mut images = vec![0, 0, 8, 3];
        for d in [count, 28, 28] {
            images.extend(d.to_be_bytes());
        }
        let mut labels = vec![0, 0, 8, 1];
        labels.extend(count.to_be_bytes());
        for i in 0..count {
            let label = (i % 10) as u8;
            labels.push(label);
            // each class lights its own band of rows, so a network can learn it
            images.extend((0..784u32).map(|p| if p / 28 / 3 == label as u32 { 200 } else { (p * 7 + i) as u8 % 40 }));
        }
        gz(&format!("{prefix}-images-idx3-ubyte"), images);
        gz(&format!("{prefix}-labels-idx1-ubyte"), labels);
    }
}

#[test]
fn fashion_mnist_and_kmnist_train_and_name_their_classes() {
    let tmp = tempfile::tempdir().unwrap();
    for (dataset, names) in [("fashion-mnist", ["T-shirt", "Trouser", "Boot"]), ("kmnist", ["o", "ki", "wo"])] {
        let data = tmp.path().join(dataset);
        write_set(&data, 500);
        let run = tmp.path().join(format!("run-{dataset}"));
        let o = gpu_nn(&["train", "--dataset", dataset, "--data", s(&data), "--layers", "784,32,10", "--epochs", "3", "--backend", "cpu", "--out", s(&run)]);
        assert!(o.status.success(), "{dataset}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("on {dataset} (500 train, 100 test samples)")));
        let o = gpu_nn(&["eval", "--model", s(&run.join("model.safetensors")), "--json"]);
        assert!(o.status.success(), "{dataset}: {}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let classes: Vec<&str> = v["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        for n in names {
            assert!(classes.contains(&n), "{dataset}: {classes:?}");
        }
        assert!(v["accuracy"].as_f64().unwrap() > 0.5, "{dataset}: the bands are learnable: {}", v["accuracy"]);
        // the printed matrix and the picture (drawn from the same names: confusion_picture.rs)
        let o = gpu_nn(&["eval", "--model", s(&run.join("model.safetensors"))]);
        let text = String::from_utf8_lossy(&o.stdout);
        for n in names {
            assert!(text.contains(n), "{dataset}: eval's matrix lacks '{n}':\n{text}");
        }
        assert!(std::fs::metadata(run.join("confusion.png")).unwrap().len() > 1000);
    }
}
