#!/usr/bin/env python3
"""Throughput of doc 001's network (784-128-64-10, relu/relu/softmax, cross-entropy, Adam 1e-3,
batch 64) in PyTorch on the CPU, for comparison with `gpu-nn bench --preset seed001 --cpu-only`.

    python3 scripts/pytorch_seed001.py --data ../shared/datasets/mnist --threads 2

Prints samples/s for training steps (warm-up excluded, median of repeats), measured the same
way gpu-nn bench measures: a fixed number of steps over a shuffled epoch, data already in memory.
"""
import argparse, gzip, statistics, struct, time

import numpy as np
import torch


def read_idx(path):
    with (gzip.open(path) if path.endswith(".gz") else open(path, "rb")) as f:
        data = f.read()
    _, _, ty, nd = data[:4]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    assert ty == 0x08, f"{path}: expected unsigned bytes"
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = torch.from_numpy(read_idx(f"{a.data}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(read_idx(f"{a.data}/train-labels-idx1-ubyte.gz").astype(np.int64))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()  # softmax + cross-entropy, batch mean
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1))

    def run(start):
        for s in range(a.steps):
            idx = order[(start + s * 64) % (x.shape[0] - 64):][:64]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()

    run(0)  # warm-up
    times = []
    for r in range(a.repeats):
        t = time.perf_counter()
        run((r + 1) * a.steps * 64)
        times.append(time.perf_counter() - t)
    t = statistics.median(times)
    print(f"pytorch {torch.__version__} cpu, {a.threads} threads: {a.steps * 64 / t:.0f} samples/s "
          f"({1e3 * t / a.steps:.3f} ms/step, median of {a.repeats})")


if __name__ == "__main__":
    main()
