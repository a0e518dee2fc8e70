#!/usr/bin/env python3
"""The peers of scripts/compare_cpu.py: NumPy's and PyTorch's own training loops and their matrix
products, each run in a child process of its own so that its environment (NumPy: the user's,
less OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE) and its thread pools are what a user's would be.

    python3 scripts/compare_cpu_peers.py JOB.json     # prints one JSON line: the result

JOB: {"lib": "numpy"|"torch", "data": DIR, "threads": T, "net": NETWORKS[...] (with "name"),
      "mode": "epochs"|"steps"|"none", "epochs": N, "steps": S, "repeats": R, "seed": 1,
      "products": [roofline products of gpu-nn bench], "product_repeats": R2}
Not meant to be run by hand: compare_cpu.py writes the jobs and reads the results.
"""
import gzip, json, math, os, re, statistics, struct, sys, time

import numpy as np

# gpu-nn bench's default set, as gpu-nn train runs each of them (the init is the preset's, or
# the default, glorot_uniform, for the wide network given through flags; biases start at zero).
NETWORKS = {
    "seed001": dict(layers=[784, 128, 64, 10], acts=["relu", "relu", "softmax"], loss="ce", opt="adam",
                    lr=1e-3, batch=64, init="glorot_uniform",
                    train_args=["--preset", "seed001"]),
    "seed000-mnist": dict(layers=[784, 30, 10], acts=["sigmoid", "sigmoid"], loss="half_sse", opt="sgd",
                          lr=3.0, batch=20, init="lecun_normal",
                          train_args=["--preset", "seed000-mnist"]),
    "wide 784-1024-1024-10": dict(layers=[784, 1024, 1024, 10], acts=["relu", "relu", "softmax"], loss="ce",
                                  opt="adam", lr=1e-3, batch=256, init="glorot_uniform",
                                  train_args=["--layers", "784,1024,1024,10", "--activation", "relu,relu,softmax",
                                              "--loss", "cross_entropy", "--optimizer", "adam", "--lr", "0.001",
                                              "--batch-size", "256"]),
}

DATA_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_path(data, name):
    """The IDX file `name` in `data`, gzipped or not; None when neither is there."""
    for p in (os.path.join(data, name + ".gz"), os.path.join(data, name)):
        if os.path.isfile(p):
            return p
    return None


def read_idx(path):
    with (gzip.open(path) if path.endswith(".gz") else open(path, "rb")) as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load_train(data):
    """The training set in memory: x as one f32 array in [0, 1], y as labels."""
    x = read_idx(idx_path(data, "train-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32) / np.float32(255.0)
    y = read_idx(idx_path(data, "train-labels-idx1-ubyte")).astype(np.int64)
    return np.ascontiguousarray(x, dtype=np.float32), y


def initial_weights(net, rng):
    """Weights (out × in, row-major, as gpu-nn stores them) at gpu-nn's initial scale; zero biases."""
    L = net["layers"]
    W = []
    for i in range(len(L) - 1):
        fan_in, fan_out = L[i], L[i + 1]
        if net["init"] == "glorot_uniform":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-bound, bound, (fan_out, fan_in))
        else:  # lecun_normal
            w = rng.standard_normal((fan_out, fan_in)) / math.sqrt(fan_in)
        W.append(w.astype(np.float32))
    B = [np.zeros(L[i + 1], np.float32) for i in range(len(L) - 1)]
    return W, B


# ---------------------------------------------------------------------------------------------
# NumPy: a training loop as a user writes it, f32 throughout.

class NumpyNet:
    def __init__(self, net, seed):
        self.net = net
        self.W, self.B = initial_weights(net, np.random.default_rng(seed))
        self.params = self.W + self.B
        self.adam = net["opt"] == "adam"
        self.M = [np.zeros_like(p) for p in self.params]
        self.V = [np.zeros_like(p) for p in self.params]
        self.t = 0
        self.eye = np.eye(net["layers"][-1], dtype=np.float32)

    def step(self, xb, yb):
        """One optimiser step on the batch; returns the batch's summed loss (a running average's term)."""
        net, W, B = self.net, self.W, self.B
        b = xb.shape[0]
        a = [xb]
        for i, act in enumerate(net["acts"]):
            z = a[-1] @ W[i].T
            z += B[i]
            if act == "relu":
                np.maximum(z, 0, out=z)
            elif act == "sigmoid":
                np.negative(z, out=z)
                np.exp(z, out=z)
                z += 1
                np.reciprocal(z, out=z)
            else:  # softmax
                z -= z.max(axis=1, keepdims=True)
                np.exp(z, out=z)
                z /= z.sum(axis=1, keepdims=True)
            a.append(z)
        out, target = a[-1], self.eye[yb]
        if net["loss"] == "ce":  # softmax output with cross-entropy, batch mean
            loss = -np.log(out[np.arange(b), yb] + np.float32(1e-30)).sum()
            d = out - target
            d *= np.float32(1.0 / b)
        else:  # half squared error through a sigmoid output, batch mean
            d = out - target
            loss = np.float32(0.5) * np.einsum("ij,ij->", d, d)
            d *= out * (1 - out)
            d *= np.float32(1.0 / b)
        gw, gb = [None] * len(W), [None] * len(W)
        for i in reversed(range(len(W))):
            gw[i] = d.T @ a[i]
            gb[i] = d.sum(axis=0)
            if i > 0:
                d = d @ W[i]
                if net["acts"][i - 1] == "relu":
                    d *= a[i] > 0
                else:
                    d *= a[i] * (1 - a[i])
        self.t += 1
        lr = net["lr"]
        if self.adam:
            b1, b2, eps = 0.9, 0.999, 1e-8
            step_size = np.float32(lr / (1 - b1 ** self.t))
            denom_scale = np.float32(1.0 / math.sqrt(1 - b2 ** self.t))
            for p, g, m, v in zip(self.params, gw + gb, self.M, self.V):
                m *= np.float32(b1)
                m += np.float32(1 - b1) * g
                v *= np.float32(b2)
                v += np.float32(1 - b2) * (g * g)
                den = np.sqrt(v)
                den *= denom_scale
                den += np.float32(eps)
                p -= step_size * (m / den)
        else:
            for p, g in zip(self.params, gw + gb):
                g *= np.float32(lr)
                p -= g
        return loss

    def check_f32(self):
        for arr in self.params + self.M + self.V:
            assert arr.dtype == np.float32, arr.dtype


def numpy_epochs(net, x, y, epochs, seed):
    """Seconds per epoch: a fresh permutation every epoch, batches in its order, the last
    partial batch included; training only (the running loss is accumulated, nothing evaluated)."""
    model, rng, n, b = NumpyNet(net, seed), np.random.default_rng(seed + 1), x.shape[0], net["batch"]
    times, losses = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = rng.permutation(n)
        total = 0.0
        for lo in range(0, n, b):
            idx = perm[lo:lo + b]
            total += float(model.step(x[idx], y[idx]))
        times.append(time.perf_counter() - t0)
        losses.append(total / n)
    model.check_f32()
    return times, losses


def timed(run, steps, repeats, batch):
    """samples/s: one warm-up run, then the median of `repeats` timed runs of `steps` steps."""
    run(0)
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        run(r + 1)
        times.append(time.perf_counter() - t)
    return steps * batch / statistics.median(times)


def numpy_steps(net, x, y, steps, repeats, seed):
    model, b = NumpyNet(net, seed), net["batch"]
    order = np.random.default_rng(seed + 1).permutation(x.shape[0])

    def run(rep):
        for s in range(steps):
            lo = ((rep * steps + s) * b) % (x.shape[0] - b)
            idx = order[lo:lo + b]
            model.step(x[idx], y[idx])

    return timed(run, steps, repeats, b)


# ---------------------------------------------------------------------------------------------
# PyTorch: eager mode, the data resident as one f32 tensor, batches indexed out of it (no
# DataLoader: its per-sample collation would be far slower than either loop).

def torch_model(net, seed, device="cpu"):
    import torch
    W, B = initial_weights(net, np.random.default_rng(seed))
    mods = []
    for i, act in enumerate(net["acts"]):
        lin = torch.nn.Linear(net["layers"][i], net["layers"][i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W[i]))
            lin.bias.copy_(torch.from_numpy(B[i]))
        mods.append(lin)
        if act == "relu":
            mods.append(torch.nn.ReLU())
        elif act == "sigmoid":
            mods.append(torch.nn.Sigmoid())
    model = torch.nn.Sequential(*mods).to(device)  # a softmax output is folded into the cross-entropy
    params = model.parameters()
    opt = torch.optim.Adam(params, lr=net["lr"]) if net["opt"] == "adam" else torch.optim.SGD(params, lr=net["lr"])
    return model, opt


def torch_loss(net, out, yb, onehot):
    import torch
    if net["loss"] == "ce":
        return torch.nn.functional.cross_entropy(out, yb)
    return 0.5 * ((out - onehot[yb]) ** 2).sum(dim=1).mean()


def torch_epochs(net, x, y, epochs, seed):
    import torch
    model, opt = torch_model(net, seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    onehot = torch.eye(net["layers"][-1], dtype=torch.float32)
    g = torch.Generator().manual_seed(seed + 1)
    n, b = x.shape[0], net["batch"]
    times, losses = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for idx in perm.split(b):
            yb = yt[idx]
            opt.zero_grad(set_to_none=True)
            loss = torch_loss(net, model(xt[idx]), yb, onehot)
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        losses.append(total / n)
        times.append(time.perf_counter() - t0)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    return times, losses


def torch_steps(net, x, y, steps, repeats, seed, device="cpu"):
    """Steps of `net` on `device` (the data resident there; on a GPU each timed run ends with a
    synchronisation, so the time is the work's, not its queueing)."""
    import torch
    model, opt = torch_model(net, seed, device)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    onehot = torch.eye(net["layers"][-1], dtype=torch.float32, device=device)
    b = net["batch"]
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed + 1)).to(device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def run(rep):
        for s in range(steps):
            lo = ((rep * steps + s) * b) % (x.shape[0] - b)
            idx = order[lo:lo + b]
            opt.zero_grad(set_to_none=True)
            torch_loss(net, model(xt[idx]), yt[idx], onehot).backward()
            opt.step()
        sync()

    return timed(run, steps, repeats, b)


# ---------------------------------------------------------------------------------------------
# The products of a step, alone, at gpu-nn's shapes and strides.

def operand(lib, rows, cols, strides, rng):
    """A rows×cols f32 operand read through (row, column) element strides: (cols, 1) is a
    contiguous array, (1, rows) the .T view of a contiguous cols×rows array, anything else an
    as_strided view of a buffer."""
    rs, cs = strides
    if (rs, cs) == (cols, 1):
        base = rng.standard_normal((rows, cols)).astype(np.float32)
        arr = base
    elif (rs, cs) == (1, rows):
        base = rng.standard_normal((cols, rows)).astype(np.float32)
        arr = base.T
    else:
        base = rng.standard_normal((rows - 1) * rs + (cols - 1) * cs + 1).astype(np.float32)
        arr = np.lib.stride_tricks.as_strided(base, (rows, cols), (rs * 4, cs * 4))
    if lib == "numpy":
        return arr
    import torch
    if (rs, cs) == (1, rows):
        return torch.from_numpy(base).T
    if (rs, cs) == (cols, 1):
        return torch.from_numpy(base)
    return torch.as_strided(torch.from_numpy(base), (rows, cols), (rs, cs))


def time_products(lib, products, repeats, seed, target_s=0.02):
    """Per product: the median of `repeats` timings (each of enough calls to take ~target_s)
    after a warm-up, of C = A·B into a preallocated C (np.matmul / torch.matmul with out=)."""
    rng = np.random.default_rng(seed)
    if lib == "torch":
        import torch
        mm = lambda a, b, c: torch.matmul(a, b, out=c)
        empty = lambda m, n: torch.empty((m, n), dtype=torch.float32)
    else:
        mm = lambda a, b, c: np.matmul(a, b, out=c)
        empty = lambda m, n: np.empty((m, n), np.float32)
    results = []
    for p in products:
        m, k, n = p["m"], p["k"], p["n"]
        a = operand(lib, m, k, p["a_strides"], rng)
        b = operand(lib, k, n, p["b_strides"], rng)
        c = empty(m, n)
        mm(a, b, c)
        t = time.perf_counter()
        mm(a, b, c)
        once = max(time.perf_counter() - t, 1e-7)
        inner = max(1, int(target_s / once))
        t = time.perf_counter()  # warm-up: one repeat's worth
        for _ in range(inner):
            mm(a, b, c)
        inner = max(1, int(inner * target_s / max(time.perf_counter() - t, 1e-7)))
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(inner):
                mm(a, b, c)
            times.append((time.perf_counter() - t) / inner)
        ms = statistics.median(times) * 1e3
        results.append(dict(product=p["product"], ms=ms, gflops=2 * p["macs"] / (ms * 1e6), calls_per_repeat=inner))
    return results


# ---------------------------------------------------------------------------------------------

def blas_info():
    """The BLAS this process runs (threadpoolctl), as a list of dicts; a note if it cannot say."""
    try:
        import threadpoolctl
    except ImportError:
        return [dict(note="threadpoolctl not installed (python3 -m pip install threadpoolctl): BLAS unnamed")]
    keep = ("user_api", "internal_api", "version", "architecture", "corename", "threading_layer", "num_threads", "prefix")
    return [{k: i[k] for k in keep if i.get(k) is not None} for i in threadpoolctl.threadpool_info()]


_LIMITS = []


def limit_threads(threads):
    """Every BLAS/OpenMP pool of this process to `threads` for the process's life (without
    threadpoolctl, compare_cpu.py sets OPENBLAS/OMP/MKL_NUM_THREADS in the child's environment)."""
    try:
        import threadpoolctl
    except ImportError:
        return
    _LIMITS.append(threadpoolctl.threadpool_limits(limits=threads))


def main(job):
    lib, net, threads, seed = job["lib"], job["net"], job["threads"], job.get("seed", 1)
    res = dict(lib=lib)
    if lib == "torch":
        try:
            import torch
        except Exception as e:  # noqa: BLE001 - any failure to import is "not importable"
            return dict(lib=lib, error=f"{type(e).__name__}: {e}")
        torch.set_num_threads(threads)
        cfg = torch.__config__.show()
        blas = re.search(r"BLAS_INFO=([\w.-]+)", cfg)
        cap = re.search(r"CPU capability usage: (\S+)", cfg)
        mkl = re.search(r"Math Kernel Library Version (\S+)", cfg)
        res.update(version=torch.__version__, num_threads=torch.get_num_threads(),
                   blas=(blas.group(1) if blas else "unknown") + (f" {mkl.group(1)}" if mkl else "")
                   + (f", CPU capability {cap.group(1)}" if cap else ""),
                   threadpools=blas_info())
    else:
        limit_threads(threads)
        res.update(version=np.__version__, blas=blas_info(),
                   env={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")})
    mode = job.get("mode", "none")
    if mode != "none":
        x, y = load_train(job["data"])
        if mode == "epochs":
            fn = torch_epochs if lib == "torch" else numpy_epochs
            res["epoch_s"], res["epoch_loss"] = fn(net, x, y, job["epochs"], seed)
        else:
            fn = torch_steps if lib == "torch" else numpy_steps
            res["samples_per_sec"] = fn(net, x, y, job["steps"], job["repeats"], seed)
        del x, y
    if job.get("products"):
        res["products"] = time_products(lib, job["products"], job.get("product_repeats", 7), seed)
    return res


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        result = main(json.load(f))
    sys.stdout.write("\n" + json.dumps(result) + "\n")
