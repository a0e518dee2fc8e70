//! Data of one's own through the whole tool: a CSV table, a NumPy archive and a folder of
//! pictures train (widths from the data with `--hidden`), evaluate, predict (rows and pictures),
//! export to ONNX, sweep, resume, and agree between the backends; MNIST read from an `.npz` made
//! from its IDX files gives the same model bytes; bad data gets one clear line and exit status 2.

mod common;
use common::{error_line, gpu_nn, in_ci, mnist_dir_or_skip, s};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A three-class table with a header and the label column in the middle: class c's samples lie
/// around the point (c, 2c, −c) on three of the five features, the other two are noise, and the
/// features' scales differ by 10⁴ (so standardising per feature matters). Labels 3, 5 and 9:
/// the classes are named by their labels, not numbered 0..2.
fn write_table(path: &Path, n: usize, seed: u64) {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut unit = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    let mut text = String::from("height,weight,species,noise,depth,other\n");
    for i in 0..n {
        let c = (i % 3) as f64;
        let label = [3, 5, 9][i % 3];
        let (h, w, d) = (c + 0.3 * unit(), 1e4 * (2.0 * c + 0.3 * unit()), -c + 0.3 * unit());
        writeln!(text, "{h},{w},{label},{},{d},{}", unit(), 1e-3 * unit()).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// 12×10 pictures of three shapes (a horizontal bar, a vertical bar, a diagonal) with a little
/// noise, `per_class` of each, in `dir/{train,test}/{across,down,slant}/`.
fn write_pictures(dir: &Path, per_class: usize) {
    for (part, n, salt) in [("train", per_class, 0u32), ("test", per_class / 2, 7)] {
        for (k, class) in ["across", "down", "slant"].iter().enumerate() {
            let d = dir.join(part).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n as u32 {
                let img = image::GrayImage::from_fn(10, 12, |x, y| {
                    let on = match k {
                        0 => y == 3 + (i + salt) % 6,
                        1 => x == 2 + (i + salt) % 6,
                        _ => (x + (i + salt) % 3) == y,
                    };
                    let noise = ((x * 7 + y * 13 + i * 31 + salt) % 23) as u8;
                    image::Luma([if on { 230 - noise } else { noise }])
                });
                img.save(d.join(format!("{i:03}.png"))).unwrap();
            }
        }
    }
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn last_test_accuracy(run: &Path) -> f64 {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let col = text.lines().next().unwrap().split(',').position(|h| h == "test_acc").unwrap();
    text.lines().last().unwrap().split(',').nth(col).unwrap().parse().unwrap()
}

/// The model file's architecture (its metadata) as JSON.
fn architecture(model: &Path) -> serde_json::Value {
    let bytes = std::fs::read(model).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    serde_json::from_str(&meta.metadata().as_ref().unwrap()["architecture"]).unwrap()
}

fn table_run(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (train, test, run) = (tmp.join("train.csv"), tmp.join("test.csv"), tmp.join("run"));
    write_table(&train, 300, 1);
    write_table(&test, 90, 2);
    let args = [
        "train", "--backend", "cpu", "--data", s(&train), "--test-data", s(&test), "--label-column", "species", "--hidden", "16",
        "--standardize", "--epochs", "20", "--batch-size", "30", "--lr", "0.01", "--optimizer", "adam", "--val-split", "30", "--out", s(&run), "-q",
    ];
    ok(&gpu_nn(&args));
    (train, test, run)
}

#[test]
fn a_csv_table_trains_evaluates_predicts_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, test, run) = table_run(tmp.path());
    let model = run.join("model.safetensors");
    // widths from the data: five features, three classes; the classes named by their labels
    let arch = architecture(&model);
    assert_eq!(arch["layers"], serde_json::json!([5, 16, 3]));
    assert_eq!(arch["classes"], serde_json::json!(["3", "5", "9"]));
    let norm = &arch["feature_norm"];
    assert_eq!(norm["mean"].as_array().unwrap().len(), 5);
    // the weight column's scale is 10⁴: its standard deviation is measured per feature
    let std_weight = norm["std"][1].as_f64().unwrap();
    assert!(std_weight > 5e3 && std_weight < 5e4, "{norm}");
    assert!(last_test_accuracy(&run) >= 0.95, "test accuracy {}", last_test_accuracy(&run));

    // eval: the classes by name in the confusion matrix
    let out = ok(&gpu_nn(&["eval", "--model", s(&model), "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["classes"], serde_json::json!(["3", "5", "9"]));
    assert_eq!(v["samples"], 90);
    assert!((v["accuracy"].as_f64().unwrap() - last_test_accuracy(&run)).abs() < 1e-12, "{v}");

    // predict: one row each, the label column left out, named classes
    let preds = tmp.path().join("preds.csv");
    ok(&gpu_nn(&["predict", "--model", s(&model), "--rows", s(&test), "--csv", s(&preds)]));
    let text = std::fs::read_to_string(&preds).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "index,prediction,p_3,p_5,p_9");
    assert_eq!(lines.len(), 91);
    let labels: Vec<String> = std::fs::read_to_string(&test).unwrap().lines().skip(1).map(|l| l.split(',').nth(2).unwrap().to_string()).collect();
    let right = lines[1..].iter().zip(&labels).filter(|(l, want)| l.split(',').nth(1).unwrap() == want.as_str()).count();
    assert_eq!(right as f64 / 90.0, v["accuracy"].as_f64().unwrap(), "predict --rows and eval disagree");

    // ONNX: the per-feature standardisation is in the graph; onnxruntime on the raw rows gives
    // predict's probabilities
    let onnx = tmp.path().join("model.onnx");
    ok(&gpu_nn(&["export", "--model", s(&model), "--onnx", s(&onnx)]));
    let ort = Command::new("python3").args(["-c", "import onnxruntime, numpy"]).status().is_ok_and(|st| st.success());
    if !ort {
        assert!(!in_ci(), "python3 with onnxruntime and numpy is missing in CI");
        return;
    }
    let script = r#"
import sys, numpy as np, onnxruntime as ort
rows = np.loadtxt(sys.argv[2], delimiter=",", skiprows=1)
x = np.delete(rows, 2, axis=1).astype(np.float32)
want = np.loadtxt(sys.argv[3], delimiter=",", skiprows=1, usecols=(2, 3, 4))
s = ort.InferenceSession(sys.argv[1])
got = s.run(None, {"pixels": x})[0]
meta = s.get_modelmeta().custom_metadata_map
print(float(np.abs(got - want).max()), meta.get("classes"))
"#;
    let o = Command::new("python3").args(["-c", script, s(&onnx), s(&test), s(&preds)]).output().unwrap();
    let out = ok(&o);
    let (diff, classes) = out.trim().split_once(' ').unwrap();
    assert!(diff.parse::<f64>().unwrap() <= 2e-6, "onnxruntime differs from predict by {diff}");
    assert_eq!(classes, r#"["3","5","9"]"#);

    // the same rows as a .npy (float32, no label column): the same predictions
    let npy = tmp.path().join("rows.npy");
    let write = "import sys, numpy as np; r = np.loadtxt(sys.argv[1], delimiter=',', skiprows=1); np.save(sys.argv[2], np.delete(r, 2, axis=1).astype(np.float32))";
    ok(&Command::new("python3").args(["-c", write, s(&test), s(&npy)]).output().unwrap());
    let from_npy = ok(&gpu_nn(&["predict", "--model", s(&model), "--rows", s(&npy)]));
    let classes_of = |t: &str| t.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(classes_of(&from_npy), classes_of(&text), "predict --rows: the .npy's classes differ from the CSV's");
}

#[test]
fn a_csv_run_resumes_to_the_same_bytes_and_sweeps() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, test) = (tmp.path().join("train.csv"), tmp.path().join("test.csv"));
    write_table(&train, 120, 3);
    write_table(&test, 30, 4);
    let common = ["--backend", "cpu", "--data", s(&train), "--test-data", s(&test), "--label-column", "2", "--hidden", "8,4", "--standardize", "--batch-size", "16", "-q"];
    let (whole, part) = (tmp.path().join("whole"), tmp.path().join("part"));
    let mut a = vec!["train", "--epochs", "4", "--out", s(&whole)];
    a.extend(common);
    ok(&gpu_nn(&a));
    let mut b = vec!["train", "--epochs", "2", "--out", s(&part)];
    b.extend(common);
    ok(&gpu_nn(&b));
    ok(&gpu_nn(&["train", "--resume", s(&part), "--epochs", "4", "-q"]));
    assert_eq!(std::fs::read(whole.join("model.safetensors")).unwrap(), std::fs::read(part.join("model.safetensors")).unwrap(), "a resumed CSV run differs");

    let sweep = tmp.path().join("sweep");
    let mut c = vec!["sweep", "--lr", "0.01,0.1", "--epochs", "2", "--out", s(&sweep)];
    c.extend(common);
    ok(&gpu_nn(&c));
    let table = std::fs::read_to_string(sweep.join("sweep.csv")).unwrap();
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[test]
fn the_gpu_agrees_with_the_reference_on_a_csv_table() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.csv");
    write_table(&train, 90, 5);
    let o = gpu_nn(&["parity", "--data", s(&train), "--label-column", "species", "--hidden", "7", "--standardize", "--batch-size", "13", "--steps", "10"]);
    let out = ok(&o);
    // it exits 0 only when every tensor of every step is within the tolerance
    assert!(out.contains("worst relative error"), "{out}");
}

#[test]
fn an_image_folder_trains_and_classifies_pictures() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run) = (tmp.path().join("shapes"), tmp.path().join("run"));
    write_pictures(&data, 24);
    ok(&gpu_nn(&["train", "--backend", "cpu", "--data", s(&data), "--hidden", "32", "--epochs", "15", "--batch-size", "8", "--optimizer", "adam", "--lr", "0.003", "--out", s(&run), "-q"]));
    let model = run.join("model.safetensors");
    let arch = architecture(&model);
    assert_eq!(arch["layers"], serde_json::json!([120, 32, 3]));
    assert_eq!(arch["classes"], serde_json::json!(["across", "down", "slant"]));
    assert!(last_test_accuracy(&run) >= 0.9, "{}", last_test_accuracy(&run));
    // a picture of the test set, classified by name; one twice the size is brought to 12×10
    let picture = data.join("test/down/003.png");
    let out = ok(&gpu_nn(&["predict", "--model", s(&model), s(&picture)]));
    assert!(out.contains("prediction: down"), "{out}");
    let big = tmp.path().join("big.png");
    image::imageops::resize(&image::open(&picture).unwrap().to_luma8(), 20, 24, image::imageops::FilterType::Nearest).save(&big).unwrap();
    let out = ok(&gpu_nn(&["predict", "--model", s(&model), s(&big)]));
    assert!(out.contains("prediction: down"), "{out}");
    // eval names the classes in confusion.csv
    ok(&gpu_nn(&["eval", "--model", s(&model), "-q"]));
    let confusion = std::fs::read_to_string(run.join("confusion.csv")).unwrap();
    assert_eq!(confusion.lines().next().unwrap(), "true_class,pred_across,pred_down,pred_slant", "{confusion}");
    assert!(confusion.lines().nth(3).unwrap().starts_with("slant,"), "{confusion}");
}

#[test]
fn mnist_from_its_idx_files_and_from_an_npz_made_from_them_gives_the_same_model_bytes() {
    let Some(mnist) = mnist_dir_or_skip("own data: idx vs npz") else { return };
    let numpy = Command::new("python3").args(["-c", "import numpy"]).status().is_ok_and(|st| st.success());
    if !numpy {
        assert!(!in_ci(), "python3 with numpy is missing in CI");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let npz = tmp.path().join("mnist.npz");
    let script = r#"
import gzip, sys, numpy as np
def idx(p):
    b = gzip.open(p).read() if p.endswith(".gz") else open(p, "rb").read()
    dims = [int.from_bytes(b[4 + 4 * i: 8 + 4 * i], "big") for i in range(b[3])]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)
d = sys.argv[1]
f = {k: idx(f"{d}/{n}-ubyte.gz") for k, n in [("x_train", "train-images-idx3"), ("y_train", "train-labels-idx1"), ("x_test", "t10k-images-idx3"), ("y_test", "t10k-labels-idx1")]}
np.savez_compressed(sys.argv[2], **f)
"#;
    ok(&Command::new("python3").args(["-c", script, s(&mnist), s(&npz)]).output().unwrap());
    for extra in [&[][..], &["--standardize"][..]] {
        let mut models = Vec::new();
        for (tag, data) in [("idx", &mnist), ("npz", &npz)] {
            let run = tmp.path().join(format!("{tag}{}", extra.len()));
            let mut a = vec!["train", "--backend", "cpu", "--preset", "seed001", "--data", s(data), "--max-steps", "60", "--epochs", "1", "--out", s(&run), "-q"];
            a.extend_from_slice(extra);
            ok(&gpu_nn(&a));
            models.push(std::fs::read(run.join("model.safetensors")).unwrap());
        }
        assert!(models[0] == models[1], "MNIST from IDX and from .npz gave different models ({extra:?})");
    }
}

/// Runs `train` on `args` and returns its one error line, after checking the exit status is 2
/// and that nothing was written to the run directory.
fn refused(tmp: &Path, args: &[&str]) -> String {
    let run = tmp.join("refused-run");
    let mut a = vec!["train", "--backend", "cpu", "--epochs", "1", "--out", s(&run)];
    if !args.contains(&"--layers") && !args.contains(&"--hidden") {
        a.extend(["--hidden", "4"]);
    }
    a.extend_from_slice(args);
    let o = gpu_nn(&a);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    assert!(!run.join("model.safetensors").exists(), "{args:?}: a model was written");
    error_line(&o)
}

#[test]
fn bad_data_gets_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let csv = |name: &str, text: &str| {
        let p = t.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let check = |args: &[&str], wants: &[&str]| {
        let e = refused(t, args);
        for w in wants {
            assert!(e.contains(w), "{args:?}: '{e}' does not say '{w}'");
        }
    };
    let ragged = csv("ragged.csv", "a,b,label\n1,2,0\n3,4,1\n5,0\n");
    check(&["--data", s(&ragged)], &["ragged.csv", "4"]);
    let word = csv("word.csv", "a,b,label\n1,2,0\n3,abc,1\n");
    check(&["--data", s(&word)], &["word.csv", "abc", "3"]);
    let nan = csv("nan.csv", "a,b,label\n1,NaN,0\n3,4,1\n");
    check(&["--data", s(&nan)], &["nan.csv", "NaN"]);
    let inf = csv("inf.csv", "a,b,label\n1,2,0\n3,inf,1\n");
    check(&["--data", s(&inf)], &["inf.csv", "inf"]);
    let frac = csv("frac.csv", "a,b,label\n1,2,0\n3,4,2.5\n");
    check(&["--data", s(&frac)], &["frac.csv", "2.5"]);
    let good = csv("good.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n");
    let unseen = csv("unseen.csv", "a,b,label\n1,2,0\n3,4,7\n");
    check(&["--data", s(&good), "--test-data", s(&unseen)], &["unseen.csv", "7"]);
    check(&["--data", s(&good), "--label-column", "colour"], &["colour", "label"]);
    check(&["--data", s(&good), "--label-column", "9"], &["9", "3"]);
    check(&["--data", s(&good), "--layers", "5,4,2"], &["5", "2 values"]);
    check(&["--data", s(&good), "--max-file-bytes", "10"], &["good.csv", "10"]);
    check(&["--data", s(&good), "--hidden", "16,0"], &["--hidden 16,0", "at least 1"]);
    check(&["--test-data", s(&good)], &["--test-data", "--data"]);
    check(&["--data", s(&good), "--image-size", "0x5"], &["--image-size '0x5'", "HxW"]);

    // pictures: one that does not decode, an empty class, two sizes without --image-size
    let pics = t.join("pics");
    for (class, n) in [("a", 2), ("b", 2)] {
        std::fs::create_dir_all(pics.join("train").join(class)).unwrap();
        for i in 0..n {
            image::GrayImage::new(6, 5).save(pics.join("train").join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    image::GrayImage::new(7, 5).save(pics.join("train/b/9.png")).unwrap();
    check(&["--data", s(&pics)], &["9.png", "7", "--image-size"]);
    std::fs::remove_file(pics.join("train/b/9.png")).unwrap();
    std::fs::write(pics.join("train/b/broken.png"), b"not a picture").unwrap();
    check(&["--data", s(&pics)], &["broken.png"]);
    std::fs::remove_file(pics.join("train/b/broken.png")).unwrap();
    std::fs::create_dir_all(pics.join("train/c")).unwrap();
    check(&["--data", s(&pics)], &["train/c", "no pictures"]);
}

#[test]
fn bad_archives_get_one_clear_line() {
    let numpy = Command::new("python3").args(["-c", "import numpy"]).status().is_ok_and(|st| st.success());
    if !numpy {
        assert!(!in_ci(), "python3 with numpy is missing in CI");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
np.savez(f"{d}/keys.npz", images=np.zeros((4, 3)), labels=np.zeros(4, np.int64))
np.savez(f"{d}/lengths.npz", x_train=np.zeros((4, 3)), y_train=np.zeros(5, np.int64))
np.savez(f"{d}/nan.npz", x_train=np.array([[0.0, 1.0], [np.nan, 2.0]]), y_train=np.array([0, 1]))
np.savez(f"{d}/labels.npz", x_train=np.zeros((2, 2)), y_train=np.array([0.0, 1.5]))
np.savez(f"{d}/width.npz", x_train=np.zeros((2, 2)), y_train=np.array([0, 1]), x_test=np.zeros((2, 3)), y_test=np.array([0, 1]))
"#;
    ok(&Command::new("python3").args(["-c", script, s(t)]).output().unwrap());
    let p = |n: &str| t.join(n).to_str().unwrap().to_string();
    for (file, wants) in [
        ("keys.npz", &["keys.npz", "x_train", "images"][..]),
        ("lengths.npz", &["lengths.npz", "4", "5"][..]),
        ("nan.npz", &["nan.npz", "NaN"][..]),
        ("labels.npz", &["labels.npz", "1.5"][..]),
        ("width.npz", &["width.npz", "x_test", "3"][..]),
    ] {
        let e = refused(t, &["--data", &p(file)]);
        for w in wants {
            assert!(e.contains(w), "{file}: '{e}' does not say '{w}'");
        }
    }
}

#[test]
fn a_large_csv_gives_the_same_model_bytes_whatever_the_thread_count() {
    // 12 MB: split into 4 pieces on one thread, 12 on seven, each cut at a record's end
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big.csv");
    let mut text = String::from((0..20).map(|j| format!("f{j},")).collect::<String>() + "label\n");
    for i in 0..60_000u64 {
        for j in 0..20u64 {
            let v = ((i * 2654435761 + j * 40503) % 1_000_003) as f64 / 997.0 - 500.0;
            write!(text, "{v},").unwrap();
        }
        writeln!(text, "{}", i % 4).unwrap();
    }
    std::fs::write(&path, &text).unwrap();
    assert!(text.len() > 11 << 20, "{} bytes", text.len());
    let mut models = Vec::new();
    for threads in ["1", "2", "3", "7"] {
        let run = tmp.path().join(format!("t{threads}"));
        let o = common::command(&["train", "--backend", "cpu", "--data", s(&path), "--hidden", "5", "--standardize", "--max-steps", "20", "--epochs", "1", "--out", s(&run), "-q"])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        ok(&o);
        models.push(std::fs::read(run.join("model.safetensors")).unwrap());
    }
    assert!(models.iter().all(|m| *m == models[0]), "the model bytes depend on the reading's thread count");
}
