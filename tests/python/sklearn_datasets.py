"""Real data no one here made: scikit-learn's bundled datasets, for tests/own_data_sklearn.rs.

  write DIR     each dataset on a fixed stratified split (25 % test, random_state 0), as
                DIR/NAME.npz (Keras's keys), DIR/NAME-train.csv and DIR/NAME-test.csv (a header,
                the label column `target` last), and digits also as an image folder
                DIR/digits-pictures/{train,test}/CLASS/*.png (8x8 grey, 0..16 scaled to 0..255);
                prints the datasets' shapes as JSON.
  sklearn DIR SEEDS HIDDEN EPOCHS
                MLPClassifier of one hidden layer of HIDDEN ReLU units, Adam (lr 1e-3), batch
                32, EPOCHS epochs, on the standardised features (StandardScaler in a
                pipeline, as its documentation advises) of each split written above: the test
                accuracy per dataset, the mean over the seeds 0..SEEDS-1, as JSON.
"""

import json
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.exceptions import ConvergenceWarning

LOADERS = {
    "digits": datasets.load_digits,
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
}


def split(name):
    d = LOADERS[name]()
    x, y = d.data.astype(np.float64), d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y), list(d.feature_names)


def png(path, pixels):
    """A grey 8-bit PNG of `pixels` (h x w uint8), written with zlib alone."""
    h, w = pixels.shape
    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shapes = {}
    for name in LOADERS:
        (x_tr, x_te, y_tr, y_te), features = split(name)
        np.savez(out / f"{name}.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
        header = ",".join(f.replace(",", " ") for f in features) + ",target"
        for part, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
            table = np.column_stack([x, y])
            fmt = ["%.17g"] * x.shape[1] + ["%d"]
            np.savetxt(out / f"{name}-{part}.csv", table, delimiter=",", header=header, comments="", fmt=fmt)
        shapes[name] = {"train": list(x_tr.shape), "test": list(x_te.shape), "classes": int(len(np.unique(y_tr)))}
        if name == "digits":
            for part, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
                for i, (row, label) in enumerate(zip(x, y)):
                    d = out / "digits-pictures" / part / str(label)
                    d.mkdir(parents=True, exist_ok=True)
                    png(d / f"{i:04d}.png", np.round(row.reshape(8, 8) * 255 / 16).astype(np.uint8))
    print(json.dumps(shapes))


def sklearn(out, seeds, hidden, epochs):
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    result = {}
    for name in LOADERS:
        (x_tr, x_te, y_tr, y_te), _ = split(name)
        accs = []
        for seed in range(seeds):
            mlp = MLPClassifier(
                hidden_layer_sizes=(hidden,),
                activation="relu",
                solver="adam",
                learning_rate_init=1e-3,
                batch_size=32,
                max_iter=epochs,
                n_iter_no_change=epochs,  # no early end: every epoch runs, as gpu-nn's do
                random_state=seed,
            )
            model = make_pipeline(StandardScaler(), mlp).fit(x_tr, y_tr)
            accs.append(float(model.score(x_te, y_te)))
        result[name] = {"mean": float(np.mean(accs)), "each": accs}
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "sklearn":
        sklearn(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
