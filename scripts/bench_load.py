#!/usr/bin/env python3
"""How fast gpu-nn reads data of one's own, beside pandas and NumPy on the same files.

A table of ROWS x FEATURES float features and an integer label (10 classes), written once into
DIR (kept between runs: writing 1.8 GB of CSV takes minutes) as table.csv (a header, the label
last, numbers as numpy.savetxt's %.9g) and table.npz (np.savez: x_train float64, y_train int64,
uncompressed). Then, alternating, REPEATS times each:

  gpu-nn inspect --data table.csv --json   vs  pandas.read_csv("table.csv")
  gpu-nn inspect --data table.npz --json   vs  numpy.load("table.npz") (both arrays read)

gpu-nn is timed as a process (wall time, process start included) and by its own report of the
reading (load_seconds); pandas and NumPy inside this process (their import excluded). Medians.

  python3 scripts/bench_load.py [--rows 1000000] [--features 100] [--repeats 3] [--dir DIR]
      [--gpu-nn target/release/gpu-nn]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_files(d: Path, rows: int, features: int):
    csv, npz = d / "table.csv", d / "table.npz"
    if csv.exists() and npz.exists():
        return csv, npz
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    print(f"writing {rows} x {features} into {d} (once) ...", file=sys.stderr)
    tmp = d / "table.csv.part"
    with open(tmp, "w") as f:
        f.write(",".join(f"f{j}" for j in range(features)) + ",label\n")
        for lo in range(0, rows, 100_000):
            n = min(100_000, rows - lo)
            x = rng.standard_normal((n, features))
            y = rng.integers(0, 10, n)
            np.savetxt(f, np.column_stack([x, y]), delimiter=",", fmt=["%.9g"] * features + ["%d"])
    tmp.rename(csv)
    # the .npz holds the numbers the CSV holds, as read back
    import pandas as pd

    t = pd.read_csv(csv)
    # C order, as NumPy's own arrays are (pandas hands out Fortran order, which gpu-nn transposes)
    x = np.ascontiguousarray(t.iloc[:, :features].to_numpy(np.float64))
    np.savez(d / "table.part.npz", x_train=x, y_train=t["label"].to_numpy(np.int64))
    (d / "table.part.npz").rename(npz)
    return csv, npz


def gpu_nn_load(binary: str, path: Path):
    t0 = time.perf_counter()
    o = subprocess.run([binary, "inspect", "--data", str(path), "--json"], capture_output=True, text=True, env={**os.environ, "GPU_NN_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    if o.returncode != 0:
        sys.exit(f"gpu-nn inspect failed: {o.stderr.strip()}")
    return wall, json.loads(o.stdout)["load_seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/gpu-nn-bench-load")
    ap.add_argument("--gpu-nn", default="target/release/gpu-nn")
    a = ap.parse_args()
    import pandas as pd

    csv, npz = write_files(Path(a.dir) / f"{a.rows}x{a.features}", a.rows, a.features)
    times = {k: [] for k in ["gpu-nn csv (process)", "gpu-nn csv (reading)", "pandas.read_csv", "gpu-nn npz (process)", "gpu-nn npz (reading)", "numpy.load"]}
    for _ in range(a.repeats):
        wall, own = gpu_nn_load(a.gpu_nn, csv)
        times["gpu-nn csv (process)"].append(wall)
        times["gpu-nn csv (reading)"].append(own)
        t0 = time.perf_counter()
        pd.read_csv(csv)
        times["pandas.read_csv"].append(time.perf_counter() - t0)
        wall, own = gpu_nn_load(a.gpu_nn, npz)
        times["gpu-nn npz (process)"].append(wall)
        times["gpu-nn npz (reading)"].append(own)
        t0 = time.perf_counter()
        with np.load(npz) as f:
            f["x_train"], f["y_train"]
        times["numpy.load"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.rows} x {a.features} floats: table.csv {csv.stat().st_size / 1e9:.2f} GB, table.npz {npz.stat().st_size / 1e9:.2f} GB; medians of {a.repeats}")
    print("| reader | seconds |")
    print("|---|---:|")
    for k, v in med.items():
        print(f"| {k} | {v:.2f} |")
    print(f"gpu-nn / pandas on CSV (process): {med['gpu-nn csv (process)'] / med['pandas.read_csv']:.2f}x the time")
    print(f"gpu-nn / NumPy on .npz (process): {med['gpu-nn npz (process)'] / med['numpy.load']:.2f}x the time")
    print(f"pandas {pd.__version__}, NumPy {np.__version__}")


if __name__ == "__main__":
    main()
