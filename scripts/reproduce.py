#!/usr/bin/env python3
"""Reproduce every experiment of the source documents from its preset, on the CPU and on the
GPU, and write docs/REPRODUCTION.md: the document's figure next to ours (command, accuracy,
time). Re-runnable by anyone:

    cargo build --release
    python3 scripts/reproduce.py --data ../shared/datasets/mnist              # both backends, then the report
    python3 scripts/reproduce.py --backends cpu --presets seed001 seed003     # a subset
    python3 scripts/reproduce.py --report-only                                # rebuild the report from runs/

Runs go to runs/repro/<preset>-<backend>/ (config.json, metrics.csv, model.safetensors,
curves.png, ...). A run whose directory already has a complete metrics.csv is not repeated
unless --force is given.
"""
import argparse, csv, json, os, struct, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the release binary: $GPU_NN_BIN, else cargo's target directory ($CARGO_TARGET_DIR or target/)
BIN = os.environ.get("GPU_NN_BIN") or os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "gpu-nn")

# preset -> (what the document reports, the quantity compared, the document's figure as a fraction)
DOCS = {
    "seed000-hand": ("doc 000: weights after 3 epochs of the hand-worked 2-2-2 example", "weights", None),
    "seed000-mnist": ("doc 000: 784-30-10 sigmoid, eta 3, batch 20, 30 epochs", "test_acc", 0.9445),
    "seed001": ("doc 001: 784-128-64-10 relu/softmax, Adam, batch 64, 20 epochs (on the training set)", "train_acc", 0.9979),
    "seed002-neuron-0": ("doc 002: one sigmoid neuron, 0 vs all, full batch, lr 1, 500 epochs", "test_acc", 0.9919),
    "seed002-neuron-5": ("doc 002: one sigmoid neuron, 5 vs all, full batch, lr 1, 500 epochs", "test_acc", 0.9736),
    "seed002-hidden": ("doc 002: 784-64-1 sigmoid, 0 vs all, full batch, 500 epochs ('more than 98%')", "test_acc", 0.98),
    "seed002-softmax": ("doc 002: 784-64-10 sigmoid/softmax, full batch, lr 0.7, 500 epochs, centred inputs", "test_acc", 0.94),
    "seed003": ("doc 003: 784-32-16-10 sigmoid, sum of squares, batch 20, lr 0.9, 10 epochs", "test_acc", 0.8945),
    "seed004": ("doc 004: 784-16-16-10 sigmoid, squared error, 51,419 iterations", "test_acc", 0.9208),
}

# SEEDS.md: w1..w12 after epoch 3 of the hand example
HAND_EXACT = [0.09997898706535735, 0.19996721746366128, 0.09996812911816463, 0.09999636644016184,
              0.09794581468812233, 0.09753727739791612, 0.09793646565529952, 0.19752554009442153,
              0.09978987065357361, 0.0996721746366127, 0.09621985933466744, 0.09527733565042554]


def command(preset, backend, data, out):
    cmd = [BIN, "train", "--preset", preset, "--backend", backend, "--out", out, "--force", "--quiet"]
    if preset == "seed000-hand":
        if backend == "cpu":
            cmd += ["--precision", "f64"]
    else:
        cmd += ["--data", data]
    return cmd


def read_metrics(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        fmt, size = ("d", 8) if v["dtype"] == "F64" else ("f", 4)
        raw = b[8 + n + s:8 + n + e]
        out[k] = struct.unpack("<%d%s" % (len(raw) // size, fmt), raw)
    return out


def hand_error(run_dir):
    t = read_safetensors(os.path.join(run_dir, "model.safetensors"))
    w0, b0, w1, b1 = t["layers.0.weight"], t["layers.0.bias"], t["layers.1.weight"], t["layers.1.bias"]
    ours = [w0[0], w0[2], w0[1], w0[3], w1[0], w1[2], w1[1], w1[3], b0[0], b0[1], b1[0], b1[1]]
    return max(abs(a - b) for a, b in zip(ours, HAND_EXACT))


def run(preset, backend, data, root, force):
    out = os.path.join(root, f"{preset}-{backend}")
    done = os.path.join(out, "metrics.csv")
    if os.path.exists(done) and not force and os.path.exists(os.path.join(out, "model.safetensors")):
        return
    cmd = command(preset, backend, data, out)
    print("running:", " ".join(cmd), flush=True)
    t = time.time()
    p = subprocess.run(cmd, cwd=ROOT)
    with open(os.path.join(out, "wall_seconds.txt"), "w") as f:
        f.write(f"{time.time() - t:.1f}\n")
    if p.returncode != 0:
        print(f"  failed with status {p.returncode}", file=sys.stderr)


def cell(preset, backend, root):
    out = os.path.join(root, f"{preset}-{backend}")
    # wall_seconds.txt is written when the command has finished: no partial runs in the report
    if not os.path.exists(os.path.join(out, "wall_seconds.txt")):
        return "not run", ""
    rows = read_metrics(os.path.join(out, "metrics.csv"))
    secs = open(os.path.join(out, "wall_seconds.txt")).read().strip()
    _, quantity, figure = DOCS[preset]
    if quantity == "weights":
        err = hand_error(out)
        return f"max abs error {err:.1e}", secs
    vals = [float(r[quantity]) for r in rows if r[quantity]]
    final, best = vals[-1], max(vals)
    verdict = "meets" if final >= figure - 1e-12 else ("best epoch meets" if best >= figure else "below")
    return f"{100 * final:.2f} % (best {100 * best:.2f} %, {verdict})", secs


def report(root, backends, data):
    lines = [
        "# Reproduction of the source documents",
        "",
        "Every experiment of `../shared/SEEDS.md`, run from its preset on each backend by",
        "`python3 scripts/reproduce.py` (which also rewrote this file). Accuracies are the final",
        "epoch's, with the best epoch in brackets; 'meets' compares the final epoch with the",
        "document's figure. Times are wall-clock seconds of the whole `gpu-nn train` command",
        "(training plus the evaluations after every epoch) on the machine of docs/BENCHMARKS.md;",
        "the GPU is lavapipe, a CPU-emulated Vulkan adapter.",
        "",
        "| preset | document | quantity | document's figure | " + " | ".join(f"ours, {b} | {b} s" for b in backends) + " |",
        "|---|---|---|---|" + "---|---|" * len(backends),
    ]
    for preset, (doc, quantity, figure) in DOCS.items():
        fig = "exact table (SEEDS.md)" if figure is None else f"{100 * figure:.2f} %"
        if preset == "seed002-hidden":
            fig = "> 98 %"
        cells = []
        for b in backends:
            v, s = cell(preset, b, root)
            cells += [v, s]
        q = {"test_acc": "test accuracy", "train_acc": "training accuracy", "weights": "weights"}[quantity]
        lines.append(f"| `{preset}` | {doc} | {q} | {fig} | " + " | ".join(cells) + " |")
    lines += ["", "Commands (per backend `B`):", ""]
    for preset in DOCS:
        lines.append("    " + " ".join(["gpu-nn"] + command(preset, "B", data, f"runs/repro/{preset}-B")[1:]))
    lines.append("")
    notes = os.path.join(ROOT, "docs", "REPRODUCTION-notes.md")
    if os.path.exists(notes):
        lines += [open(notes).read().rstrip(), ""]
    with open(os.path.join(ROOT, "docs", "REPRODUCTION.md"), "w") as f:
        f.write("\n".join(lines))
    print("wrote docs/REPRODUCTION.md")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/mnist")
    ap.add_argument("--backends", nargs="+", default=["cpu", "gpu"])
    ap.add_argument("--presets", nargs="+", default=list(DOCS))
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "repro"))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    a = ap.parse_args()
    if not a.report_only:
        for preset in a.presets:
            for b in a.backends:
                run(preset, b, a.data, a.out, a.force)
    report(a.out, ["cpu", "gpu"], a.data)


if __name__ == "__main__":
    main()
