#!/usr/bin/env python3
"""The PyTorch round trip of a gpu-nn model, as a user would do it:

    python3 scripts/pytorch_roundtrip.py runs/s1/model.safetensors --data ../shared/datasets/mnist

1. load gpu-nn's model.safetensors in PyTorch: the architecture from its metadata, the weights
   `layers.{i}.weight` [out, in] and `layers.{i}.bias` into a `torch.nn.Sequential`;
2. evaluate it on the test set (the model's own input normalisation, pixels scaled to [0, 1]);
3. save the Sequential's state dict (`0.weight`, `0.bias`, `2.weight`, …) with safetensors;
4. load that file back into a fresh Sequential and evaluate again, and have gpu-nn evaluate it
   (`gpu-nn eval --model FILE --layers … --activation … --loss …`, which reads PyTorch's names).

All three accuracies must be gpu-nn's own (`gpu-nn eval` on the original file); exits 1 if not.
The binary is $GPU_NN_BIN, else $CARGO_TARGET_DIR/release/gpu-nn, else target/release/gpu-nn.
"""
import argparse, gzip, json, os, struct, subprocess, sys, tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

ACTS = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh,
        "leaky_relu": lambda: torch.nn.LeakyReLU(0.01), "softmax": lambda: torch.nn.Softmax(dim=1)}


def gpu_nn_bin():
    if os.environ.get("GPU_NN_BIN"):
        return os.environ["GPU_NN_BIN"]
    root = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
    return os.path.join(root, "release", "gpu-nn")


def sequential(arch):
    mods = []
    for i, act in enumerate(arch["activations"]):
        mods.append(torch.nn.Linear(arch["layers"][i], arch["layers"][i + 1]))
        if act != "identity":
            mods.append(ACTS[act]())
    return torch.nn.Sequential(*mods)


def test_set(data):
    def idx(name):
        raw = gzip.open(os.path.join(data, name)).read()
        dims = struct.unpack(">" + "I" * raw[3], raw[4:4 + 4 * raw[3]])
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)
    x = idx("t10k-images-idx3-ubyte.gz").reshape(10000, -1).astype(np.float32) / 255.0
    return torch.from_numpy(x), torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))


def accuracy(model, x, y, norm):
    with torch.no_grad():
        out = model((x - norm["mean"]) / norm["std"])
    return (out.argmax(1) == y).float().mean().item()


def gpu_nn_eval(model_file, data, extra):
    out = subprocess.run([gpu_nn_bin(), "eval", "--model", model_file, "--data", data, "--json", "--backend", "cpu"] + extra,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["accuracy"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "mnist"))
    a = ap.parse_args()
    with safe_open(a.model, "pt") as f:
        arch = json.loads(f.metadata()["architecture"])
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    model = sequential(arch)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        lin.weight.data.copy_(tensors[f"layers.{i}.weight"])
        lin.bias.data.copy_(tensors[f"layers.{i}.bias"])
    norm = arch.get("input_norm", {"mean": 0.0, "std": 1.0})
    x, y = test_set(a.data)
    acc_torch = accuracy(model, x, y, norm)
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "torch.safetensors")
        save_file(model.state_dict(), saved)
        back = sequential(arch)
        back.load_state_dict(load_file(saved))
        acc_back = accuracy(back, x, y, norm)
        flags = ["--layers", ",".join(map(str, arch["layers"])), "--activation", ",".join(arch["activations"]), "--loss", arch["loss"]]
        acc_gpu_nn_of_torch = gpu_nn_eval(saved, a.data, flags) if norm == {"mean": 0.0, "std": 1.0} else None
    acc_gpu_nn = gpu_nn_eval(a.model, a.data, [])
    print(f"gpu-nn on its own file:              {acc_gpu_nn:.4f}")
    print(f"PyTorch on gpu-nn's file:            {acc_torch:.4f}")
    print(f"PyTorch on its own saved copy:       {acc_back:.4f}")
    if acc_gpu_nn_of_torch is None:
        print("gpu-nn on PyTorch's copy:            - (the model normalises its inputs; a bare state dict cannot say so)")
    else:
        print(f"gpu-nn on PyTorch's copy:            {acc_gpu_nn_of_torch:.4f}")
    same = {round(v, 4) for v in (acc_gpu_nn, acc_torch, acc_back, acc_gpu_nn_of_torch) if v is not None}
    sys.exit(0 if len(same) == 1 else 1)


if __name__ == "__main__":
    main()
