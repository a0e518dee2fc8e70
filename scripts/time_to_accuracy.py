#!/usr/bin/env python3
"""Time to accuracy: gpu-nn against PyTorch with the same recipe, on the same cores, in one run.

For each (preset, target) pair, trains the preset with `gpu-nn train --target-acc` and then
PyTorch with the recipe read from that run's config.json: the same network, initialisation
family, optimiser, learning-rate schedule (one-cycle, cosine, linear, warm-up), batch, dropout,
label smoothing, clipping, max-norm, input normalisation and augmentation (the same affine map and
elastic deformation, through affine_grid/grid_sample and a separable Gaussian), evaluating the
test set after every epoch. Both clocks count the epochs' training and evaluation, not loading
the data or starting up (gpu-nn's target.json `seconds`; the same span in PyTorch), so the
ratio is the work of the loops themselves. Prints a Markdown table for docs/BENCHMARKS.md.

    python3 scripts/time_to_accuracy.py --data ../shared/datasets/mnist \
        --runs mlp-fast-98:0.98 mlp-99:0.99 [--threads 2] [--gpu-nn target/release/gpu-nn]
"""

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def read_idx(path):
    p = Path(path)
    if not p.exists() and Path(str(p) + ".gz").exists():
        p = Path(str(p) + ".gz")
    raw = gzip.open(p).read() if p.suffix == ".gz" else p.read_bytes()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def run_gpu_nn(binary, data, preset, target, threads, out):
    cmd = [binary, "train", "--preset", preset, "--data", data, "--backend", "cpu", "--target-acc", str(target),
           "--threads", str(threads), "--out", out, "--force", "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    cfg = json.loads(Path(out, "config.json").read_text())
    reached = Path(out, "target.json")
    hit = json.loads(reached.read_text()).get("reached") if reached.exists() else None
    return cfg, hit, wall


def lr_schedule(opt, total):
    """The learning rate of step s (0-based), as gpu-nn's OptimizerSpec::lr_at: the schedule,
    then the warm-up factor (s+1)/W for s < W."""
    base, sched = opt["lr"], str(opt.get("schedule", "constant"))
    parts = sched.split(":")
    warm = int(opt.get("warmup_steps", 0) or 0)

    def at(s, epoch):
        kind = parts[0]
        if kind == "constant":
            lr = base
        elif kind == "cosine":
            lo = float(parts[1]) if len(parts) > 1 else 0.0
            lr = lo + 0.5 * (base - lo) * (1 + math.cos(math.pi * s / max(total, 1)))
        elif kind == "linear":
            lo = float(parts[1]) if len(parts) > 1 else 0.0
            lr = base + (lo - base) * s / max(total, 1)
        elif kind == "one_cycle":
            pct = float(parts[1]) if len(parts) > 1 else 0.3
            div = float(parts[2]) if len(parts) > 2 else 25.0
            fdiv = float(parts[3]) if len(parts) > 3 else 1e4
            start, end = base / div, base / (div * fdiv)
            up = pct * total - 1
            if s <= up:
                frac = s / up if up > 0 else 1.0
                lr = base + (start - base) / 2 * (math.cos(math.pi * frac) + 1)
            else:
                down = total - 1 - up
                frac = (s - up) / down if down > 0 else 1.0
                lr = end + (base - end) / 2 * (math.cos(math.pi * frac) + 1)
        elif kind == "step":
            lr = base * float(parts[2]) ** (epoch // int(float(parts[1])))
        elif kind == "exponential":
            lr = base * float(parts[1]) ** epoch
        else:
            raise SystemExit(f"time_to_accuracy.py: schedule '{sched}' is not mirrored here")
        return lr * ((s + 1) / warm if s < warm else 1.0)

    return at


def augment_batch(torch, F, x, aug, gen):
    """x: (B, 1, H, W) pixels in [0, 1]. The map of nn::augment: q = c + R(−θ)(p − c − t)/s + e(p),
    in affine_grid's normalised coordinates (align_corners=True puts c at 0)."""
    b, _, h, w = x.shape
    u = lambda n: torch.rand(n, generator=gen) * 2 - 1
    tx, ty = aug["shift"] * u(b), aug["shift"] * u(b)
    th = math.radians(aug["rotate"]) * u(b)
    s = 1 + aug["scale"] * u(b)
    c, sn = torch.cos(th), torch.sin(th)
    txn, tyn = 2 * tx / (w - 1), 2 * ty / (h - 1)
    a = torch.stack([
        torch.stack([c / s, sn / s, -(c * txn + sn * tyn) / s], 1),
        torch.stack([-sn / s, c / s, (sn * txn - c * tyn) / s], 1),
    ], 1)
    grid = F.affine_grid(a, (b, 1, h, w), align_corners=True)
    alpha, sigma = aug.get("elastic_alpha", 0.0), aug.get("elastic_sigma", 0.0)
    if alpha > 0:
        r = math.ceil(3 * sigma)
        k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma * sigma))
        k = k / k.sum()
        field = torch.rand(b * 2, 1, h, w, generator=gen) * 2 - 1
        field = F.conv2d(field, k.view(1, 1, 1, -1), padding=(0, r))
        field = F.conv2d(field, k.view(1, 1, -1, 1), padding=(r, 0))
        field = alpha * field.view(b, 2, h, w).permute(0, 2, 3, 1)
        grid = grid + field * torch.tensor([2 / (w - 1), 2 / (h - 1)])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def run_torch(cfg, data, target, threads, seed):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xtr = torch.from_numpy(read_idx(Path(data, "train-images-idx3-ubyte")).astype(np.float32) / 255.0).unsqueeze(1)
    ytr = torch.from_numpy(read_idx(Path(data, "train-labels-idx1-ubyte")).astype(np.int64))
    xte = torch.from_numpy(read_idx(Path(data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0).reshape(-1, 784)
    yte = torch.from_numpy(read_idx(Path(data, "t10k-labels-idx1-ubyte")).astype(np.int64))
    m, t, o = cfg["model"], cfg["training"], cfg["optimizer"]
    norm = m.get("input_norm") or {"mean": 0.0, "std": 1.0}
    mean, std = norm["mean"], norm["std"]
    layers, acts = m["layers"], m["activations"]
    hidden = len(layers) - 2
    rates = t.get("dropout") or []
    rates = [rates[0]] * hidden if len(rates) == 1 else (rates or [0.0] * hidden)
    mods = []
    if t.get("input_dropout", 0) > 0:
        mods.append(torch.nn.Dropout(t["input_dropout"]))
    for i in range(len(layers) - 1):
        lin = torch.nn.Linear(layers[i], layers[i + 1])
        if cfg.get("init") == "he_uniform":
            torch.nn.init.kaiming_uniform_(lin.weight, nonlinearity="relu")
        else:
            torch.nn.init.xavier_uniform_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
        mods.append(lin)
        if i < len(layers) - 2:
            mods.append({"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh(), "sigmoid": torch.nn.Sigmoid()}[acts[i]])
            if rates[i] > 0:
                mods.append(torch.nn.Dropout(rates[i]))
    net = torch.nn.Sequential(*mods)
    kind, lr, wd = o["kind"], o["lr"], o.get("weight_decay", 0.0)
    if kind in ("sgd", "momentum", "nesterov"):
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.0 if kind == "sgd" else o["momentum"], nesterov=kind == "nesterov", weight_decay=wd)
    elif kind == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(o["beta1"], o["beta2"]), eps=o["epsilon"], weight_decay=wd)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(o["beta1"], o["beta2"]), eps=o["epsilon"], weight_decay=wd)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=m.get("label_smoothing", 0.0))
    batch = int(t["batch_size"])
    n = xtr.shape[0]
    spe = math.ceil(n / batch)
    total = spe * t["epochs"]
    lr_at = lr_schedule(o, total)
    aug = t.get("augment")
    clip, max_norm = o.get("clip_norm"), o.get("max_norm")
    step, spent, history = 0, 0.0, []
    for epoch in range(t["epochs"]):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(n, generator=gen)
        for lo in range(0, n, batch):
            idx = perm[lo:lo + batch]
            x = xtr[idx]
            if aug:
                x = augment_batch(torch, F, x, aug, gen)
            x = (x.reshape(len(idx), 784) - mean) / std
            for g in opt.param_groups:
                g["lr"] = lr_at(step, epoch)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), ytr[idx])
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            if max_norm:
                with torch.no_grad():
                    for mod in net:
                        if isinstance(mod, torch.nn.Linear):
                            mod.weight.copy_(torch.renorm(mod.weight, 2, 0, max_norm))
            step += 1
        net.eval()
        with torch.no_grad():
            acc = (net((xte - mean) / std).argmax(1) == yte).float().mean().item()
        spent += time.perf_counter() - t0
        history.append(acc)
        if acc >= target:
            return {"epoch": epoch + 1, "seconds": spent, "accuracy": acc}, history
    return None, history


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", nargs="+", default=["mlp-fast-98:0.98", "mlp-99:0.99"], help="PRESET:TARGET pairs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gpu-nn", default=str(Path(__file__).resolve().parent.parent / "target/release/gpu-nn"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    import torch
    rows = []
    for pair in a.runs:
        preset, target = pair.rsplit(":", 1)
        target = float(target)
        with tempfile.TemporaryDirectory() as tmp:
            cfg, hit, wall = run_gpu_nn(a.gpu_nn, a.data, preset, target, a.threads, str(Path(tmp, "run")))
        print(f"{preset} to {target:.1%}: gpu-nn {'epoch %d, %.1f s' % (hit['epoch'], hit['seconds']) if hit else 'not reached'} (process {wall:.1f} s)", flush=True)
        t0 = time.perf_counter()
        th, hist = run_torch(cfg, a.data, target, a.threads, a.seed)
        print(f"{preset} to {target:.1%}: PyTorch {'epoch %d, %.1f s' % (th['epoch'], th['seconds']) if th else 'not reached'} (process {time.perf_counter() - t0:.1f} s; accuracies {', '.join('%.4f' % x for x in hist)})", flush=True)
        rows.append((preset, target, hit, th))
    print(f"\nPyTorch {torch.__version__}, {a.threads} threads, {os.cpu_count()} cores here")
    print("| preset | target | gpu-nn: epoch, s | PyTorch: epoch, s | PyTorch / gpu-nn |")
    print("|---|---:|---:|---:|---:|")
    for preset, target, hit, th in rows:
        g = f"{hit['epoch']}, {hit['seconds']:.1f}" if hit else "not reached"
        p = f"{th['epoch']}, {th['seconds']:.1f}" if th else "not reached"
        ratio = f"{th['seconds'] / hit['seconds']:.2f}×" if hit and th else "—"
        print(f"| {preset} | {target:.1%} | {g} | {p} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
