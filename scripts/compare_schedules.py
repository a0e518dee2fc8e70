#!/usr/bin/env python3
"""gpu-nn's per-step learning rates beside PyTorch's schedulers, step by step:

    python3 scripts/compare_schedules.py

For each case (cosine, linear, one-cycle; a warm-up chained where PyTorch's chain is a
product), trains doc 000's
hand example (`--preset seed000-hand`, two samples) with `--batch-size full`, so that every
epoch is one step and metrics.csv's `lr` column (the rate of the epoch's last step) is the
rate of every step; then steps a PyTorch SGD optimiser with the matching scheduler and reads
its rate before each step. The warm-up is LinearLR(start_factor=1/W, end_factor=1,
total_iters=W-1) chained with the schedule. Prints both sequences' largest relative
difference per case; exits 1 if one exceeds 1e-12. Not a test (CI does not install torch).
The binary is $GPU_NN_BIN, else $CARGO_TARGET_DIR/release/gpu-nn, else target/release/gpu-nn.
"""
import csv, os, subprocess, sys, tempfile

import torch
from torch.optim import lr_scheduler as S

LR, T = 0.5, 40


def gpu_nn_bin():
    if os.environ.get("GPU_NN_BIN"):
        return os.environ["GPU_NN_BIN"]
    root = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    return os.path.join(root, "release", "gpu-nn")


def gpu_nn_rates(schedule, warmup):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        subprocess.run([gpu_nn_bin(), "train", "--preset", "seed000-hand", "--backend", "cpu", "--precision", "f64",
                        "--batch-size", "full", "--epochs", str(T), "--lr", str(LR), "--schedule", schedule,
                        "--warmup", str(warmup), "--out", out, "--quiet"], check=True)
        with open(os.path.join(out, "metrics.csv")) as f:
            return [float(r["lr"]) for r in csv.DictReader(f)]


def torch_rates(make, warmup):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheds = [make(opt)]
    if warmup > 1:
        # LinearLR's recursive form multiplies onto the schedule's rate: the chain is the product
        scheds.insert(0, S.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1))
    rates = []
    for _ in range(T):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        for s in scheds:
            s.step()
    return rates


# (schedule, PyTorch's scheduler, warm-ups). OneCycleLR sets the rate itself at construction, so
# nothing chains onto it; CosineAnnealingLR's recursive form multiplies onto a chained rate only
# with eta_min 0 (gpu-nn's warm-up multiplies the closed form, whatever its minimum).
CASES = [
    ("cosine:0.01", lambda o: S.CosineAnnealingLR(o, T_max=T, eta_min=0.01), (0,)),
    ("cosine", lambda o: S.CosineAnnealingLR(o, T_max=T), (0, 7)),
    ("linear:0.02", lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.02 / LR, total_iters=T), (0, 7)),
    ("constant", lambda o: S.ConstantLR(o, factor=1.0), (0, 1, 7, 60)),
    ("one_cycle", lambda o: S.OneCycleLR(o, max_lr=LR, total_steps=T, anneal_strategy="cos", cycle_momentum=False), (0,)),
    ("one_cycle:0.25:10:100", lambda o: S.OneCycleLR(o, max_lr=LR, total_steps=T, pct_start=0.25, div_factor=10,
                                                     final_div_factor=100, anneal_strategy="cos", cycle_momentum=False), (0,)),
]


def main():
    worst = 0.0
    for schedule, make, warmups in CASES:
        for warmup in warmups:
            ours, theirs = gpu_nn_rates(schedule, warmup), torch_rates(make, warmup)
            assert len(ours) == len(theirs) == T, (len(ours), len(theirs))
            rel = max(abs(a - b) / max(abs(b), 1e-300) for a, b in zip(ours, theirs))
            worst = max(worst, rel)
            print(f"{schedule:24} warmup {warmup:2}: first {ours[0]:.6g} vs {theirs[0]:.6g}, last {ours[-1]:.6g} vs "
                  f"{theirs[-1]:.6g}, largest relative difference {rel:.1e}")
    if worst > 1e-12:
        print(f"FAIL: the rates differ by {worst:.1e} relative", file=sys.stderr)
        sys.exit(1)
    print("every rate agrees within 1e-12 relative")


if __name__ == "__main__":
    main()
