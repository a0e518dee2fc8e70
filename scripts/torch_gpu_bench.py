#!/usr/bin/env python3
"""PyTorch on a GPU, for the figures gpu-nn's GPU path is held against (scripts/device-check.sh):

    python3 scripts/torch_gpu_bench.py --data ../shared/datasets/mnist [--device cuda] > torch.json

Two parts, one JSON document on stdout:
- networks: `gpu-nn bench`'s default set (scripts/compare_cpu_peers.py's NETWORKS and its PyTorch
  step), eager, the training set resident on the device, timed as gpu-nn bench times itself
  (one warm-up run of --steps steps, then the median of --repeats runs, each ending with a
  synchronize): samples/s and ms per step.
- matmul: torch.matmul in f32 with TF32 off (allow_tf32 False for matmul and cuDNN, float32
  matmul precision 'highest'), GFLOP/s = 2·M·K·N / time, at the S×S×S cubes of --sizes and at
  the training shapes of the three networks (and at those of a gpu-nn kernels report,
--also-shapes), for each of gpu-nn's three products in its own
  layout: Forward X[M×K]·W[N×K]ᵀ, BackwardData D[M×K]·W[K×N], WeightGrad D[K×M]ᵀ·A[K×N].
--device defaults to cuda when PyTorch sees a GPU, else cpu.
"""
import argparse, json, os, sys, time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_cpu_peers import NETWORKS, load_train, torch_steps  # noqa: E402

KINDS = ("Forward", "BackwardData", "WeightGrad")


def training_shapes(layers, batch):
    """The products one training step gives each kernel, as gpu-nn's workbench names them."""
    out = []
    for i in range(len(layers) - 1):
        n_in, n_out = layers[i], layers[i + 1]
        out.append(("Forward", [batch, n_in, n_out]))
        if i > 0:
            out.append(("BackwardData", [batch, n_out, n_in]))
        out.append(("WeightGrad", [n_out, batch, n_in]))
    return out


def kernel_report_shapes(path):
    """(kernel, shape) of every row of a `gpu-nn bench --kernels --json` output; none when the
    file is missing, empty or not such a report (the gpu-nn step failed)."""
    if not path or not os.path.isfile(path) or os.path.getsize(path) == 0:
        return []
    try:
        rows = json.load(open(path))["kernels"]
        return [(r["kernel"], list(r["shape"])) for r in rows if r["kernel"] in KINDS]
    except (ValueError, KeyError, TypeError) as e:
        print(f"--also-shapes {path}: not a gpu-nn kernels report ({e}); ignored", file=sys.stderr)
        return []


def time_matmul(torch, dev, kind, shape, min_seconds):
    """Seconds per product: three warm-ups, then as many products as fill min_seconds."""
    m, k, n = shape
    g = torch.Generator(device=dev).manual_seed(1)
    r = lambda *s: torch.rand(*s, generator=g, device=dev, dtype=torch.float32)
    if kind == "Forward":
        a, b = r(m, k), r(n, k)
        op = lambda: torch.matmul(a, b.t())
    elif kind == "BackwardData":
        a, b = r(m, k), r(k, n)
        op = lambda: torch.matmul(a, b)
    else:
        a, b = r(k, m), r(k, n)
        op = lambda: torch.matmul(a.t(), b)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(3):
        op()
    sync()
    reps, elapsed = 1, 0.0
    while True:
        t = time.perf_counter()
        for _ in range(reps):
            op()
        sync()
        elapsed = time.perf_counter() - t
        if elapsed >= min_seconds or reps >= 1 << 16:
            return elapsed / reps
        reps = max(reps * 2, int(reps * min_seconds / max(elapsed, 1e-6)) + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("GPU_NN_DATA") or "../shared/datasets/mnist")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="256,1024,2048,4096", help="S of the S×S×S products")
    ap.add_argument("--min-seconds", type=float, default=0.2, help="timed length of each matmul")
    ap.add_argument("--also-shapes", metavar="FILE", help="also time the shapes of a `gpu-nn bench --kernels --json` output")
    ap.add_argument("--skip-networks", action="store_true")
    a = ap.parse_args()

    import torch
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(1)
    report = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "device_type": dev.type,
        "tf32": False,
        "networks": [],
        "matmul": [],
    }

    if not a.skip_networks:
        x, y = load_train(a.data)
        for name, net in NETWORKS.items():
            row = dict(network=name, layers=net["layers"], batch=net["batch"], steps=a.steps, repeats=a.repeats)
            try:  # one failure must not lose the other figures
                sps = torch_steps(net, x, y, a.steps, a.repeats, seed=1, device=dev.type)
                row.update(samples_per_sec=sps, ms_per_step=1e3 * net["batch"] / sps)
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"
            report["networks"].append(row)
            print(f"{name}: {row.get('samples_per_sec', row.get('error'))}", file=sys.stderr)

    shapes = [(kind, [s, s, s]) for s in map(int, a.sizes.split(",")) if s for kind in KINDS]
    for net in NETWORKS.values():
        shapes += [p for p in training_shapes(net["layers"], net["batch"]) if p not in shapes]
    shapes += [p for p in kernel_report_shapes(a.also_shapes) if p not in shapes]
    for kind, shape in shapes:
        row = dict(kernel=kind, shape=shape)
        try:
            sec = time_matmul(torch, dev, kind, shape, a.min_seconds)
            row.update(us=sec * 1e6, gflops=2 * shape[0] * shape[1] * shape[2] / sec / 1e9)
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
        report["matmul"].append(row)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
