#!/usr/bin/env python3
"""gpu-nn's CPU path against PyTorch's and NumPy's on the same three networks, one after another
in one process tree, so the ratios come from one run on one machine:

    python3 scripts/compare_cpu.py --data ../shared/datasets/mnist [--gpu-nn target/release/gpu-nn]

The networks are `gpu-nn bench`'s default set: seed001 (784-128-64-10 relu/relu/softmax,
cross-entropy, Adam 1e-3, batch 64), seed000-mnist (784-30-10 sigmoid/sigmoid, half squared
error, batch mean, SGD 3.0, batch 20) and wide (784-1024-1024-10 relu/relu/softmax,
cross-entropy, Adam 1e-3, batch 256). Every contender holds the training set in memory as one
f32 array, takes shuffled batches of it and is timed the way gpu-nn bench times itself: one
warm-up run of --steps steps, then --repeats timed runs, median. PyTorch and NumPy (its BLAS)
use every core, as gpu-nn does by default. Prints samples/s, seconds per 60,000-sample epoch
and gpu-nn's speed over each; --json for machines.
"""
import argparse, gzip, json, os, statistics, struct, subprocess, sys, time

import numpy as np

NETWORKS = {
    "seed001": dict(layers=[784, 128, 64, 10], acts=["relu", "relu", "softmax"], loss="ce", opt="adam", lr=1e-3, batch=64),
    "seed000-mnist": dict(layers=[784, 30, 10], acts=["sigmoid", "sigmoid"], loss="half_sse", opt="sgd", lr=3.0, batch=20),
    "wide 784-1024-1024-10": dict(layers=[784, 1024, 1024, 10], acts=["relu", "relu", "softmax"], loss="ce", opt="adam", lr=1e-3, batch=256),
}


def read_idx(path):
    with (gzip.open(path) if path.endswith(".gz") else open(path, "rb")) as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def timed(run, steps, repeats, batch):
    """samples/s: one warm-up run, then the median of `repeats` timed runs of `steps` steps."""
    run(0)
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        run(r + 1)
        times.append(time.perf_counter() - t)
    return steps * batch / statistics.median(times)


def torch_rate(net, x, y, steps, repeats, threads=None, device="cpu"):
    """PyTorch eager on `device` (scripts/torch_gpu_bench.py: cuda), the data resident there;
    on a GPU each timed run ends with a synchronize."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y.astype(np.int64)).to(dev)
    mods = []
    for i, act in enumerate(net["acts"]):
        mods.append(torch.nn.Linear(net["layers"][i], net["layers"][i + 1]))
        if act == "relu":
            mods.append(torch.nn.ReLU())
        elif act == "sigmoid":
            mods.append(torch.nn.Sigmoid())
    model = torch.nn.Sequential(*mods).to(dev)  # a softmax output is folded into the cross-entropy
    params = model.parameters()
    opt = torch.optim.Adam(params, lr=net["lr"]) if net["opt"] == "adam" else torch.optim.SGD(params, lr=net["lr"])
    onehot = torch.nn.functional.one_hot(yt, 10).float()
    b = net["batch"]
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1)).to(dev)

    def loss_of(out, idx):
        if net["loss"] == "ce":
            return torch.nn.functional.cross_entropy(out, yt[idx])
        return 0.5 * ((out - onehot[idx]) ** 2).sum(dim=1).mean()

    def run(rep):
        for s in range(steps):
            lo = ((rep * steps + s) * b) % (x.shape[0] - b)
            idx = order[lo:lo + b]
            opt.zero_grad(set_to_none=True)
            loss_of(model(xt[idx]), idx).backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return timed(run, steps, repeats, b), torch.__version__


def numpy_rate(net, x, y, steps, repeats):
    rng = np.random.default_rng(1)
    L = net["layers"]
    W = [(rng.standard_normal((L[i + 1], L[i])) / np.sqrt(L[i])).astype(np.float32) for i in range(len(L) - 1)]
    B = [np.zeros(L[i + 1], np.float32) for i in range(len(L) - 1)]
    adam = net["opt"] == "adam"
    M = [np.zeros_like(p) for p in W + B]
    V = [np.zeros_like(p) for p in W + B]
    onehot = np.eye(10, dtype=np.float32)[y]
    b = net["batch"]
    order = rng.permutation(x.shape[0])
    t = [0]

    def step(idx):
        a = [x[idx]]
        for i, act in enumerate(net["acts"]):
            z = a[-1] @ W[i].T + B[i]
            if act == "relu":
                a.append(np.maximum(z, 0))
            elif act == "sigmoid":
                a.append(1 / (1 + np.exp(-z)))
            else:
                e = np.exp(z - z.max(axis=1, keepdims=True))
                a.append(e / e.sum(axis=1, keepdims=True))
        out, target = a[-1], onehot[idx]
        if net["loss"] == "ce":
            d = (out - target) / b
        else:  # half squared error through a sigmoid output
            d = (out - target) * out * (1 - out) / b
        grads_w, grads_b = [None] * len(W), [None] * len(W)
        for i in reversed(range(len(W))):
            grads_w[i] = d.T @ a[i]
            grads_b[i] = d.sum(axis=0)
            if i > 0:
                d = d @ W[i]
                d *= (a[i] > 0) if net["acts"][i - 1] == "relu" else a[i] * (1 - a[i])
        t[0] += 1
        for k, (p, g) in enumerate(zip(W + B, grads_w + grads_b)):
            if adam:
                M[k] = 0.9 * M[k] + 0.1 * g
                V[k] = 0.999 * V[k] + 0.001 * g * g
                p -= net["lr"] * (M[k] / (1 - 0.9 ** t[0])) / (np.sqrt(V[k] / (1 - 0.999 ** t[0])) + 1e-8)
            else:
                p -= net["lr"] * g

    def run(rep):
        for s in range(steps):
            lo = ((rep * steps + s) * b) % (x.shape[0] - b)
            step(order[lo:lo + b])

    return timed(run, steps, repeats, b), np.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/datasets/mnist")
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target")
    ap.add_argument("--gpu-nn", default=os.environ.get("GPU_NN_BIN") or os.path.join(target, "release", "gpu-nn"))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    bench = subprocess.run(
        [a.gpu_nn, "bench", "--cpu-only", "--json", "--data", a.data, "--threads", str(a.threads),
         "--steps", str(a.steps), "--repeats", str(a.repeats)],
        check=True, capture_output=True, text=True)
    ours = {c["case"]: c for c in json.loads(bench.stdout)}

    x = (read_idx(f"{a.data}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    y = read_idx(f"{a.data}/train-labels-idx1-ubyte.gz")
    rows = []
    for name, net in NETWORKS.items():
        case = ours[name]
        cpu = [r for r in case["rows"] if r["dispatches_per_step"] is None]
        mine = cpu[-1]["samples_per_sec"]
        torch_sps, torch_version = torch_rate(net, x, y, a.steps, a.repeats, a.threads)
        numpy_sps, numpy_version = numpy_rate(net, x, y, a.steps, a.repeats)
        rows.append(dict(network=name, gpu_nn=mine, gpu_nn_backend=cpu[-1]["backend"], pytorch=torch_sps, numpy=numpy_sps,
                         pytorch_version=torch_version, numpy_version=numpy_version,
                         over_pytorch=mine / torch_sps, over_numpy=mine / numpy_sps))
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"samples/s (seconds per 60,000-sample epoch); {a.threads} threads each; "
          f"PyTorch {rows[0]['pytorch_version']}, NumPy {rows[0]['numpy_version']}")
    print(f"{'network':<24} {'gpu-nn cpu':>18} {'PyTorch':>18} {'NumPy':>18} {'/PyTorch':>9} {'/NumPy':>7}")
    cell = lambda sps: f"{sps:9.0f} ({60000 / sps:5.2f})"
    for r in rows:
        print(f"{r['network']:<24} {cell(r['gpu_nn']):>18} {cell(r['pytorch']):>18} {cell(r['numpy']):>18} "
              f"{r['over_pytorch']:9.2f} {r['over_numpy']:7.2f}")


if __name__ == "__main__":
    sys.exit(main())
