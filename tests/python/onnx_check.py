"""Runs a gpu-nn ONNX export in onnxruntime on an IDX test set and compares its outputs with
gpu-nn's own predictions (a `gpu-nn predict --csv` file): prints the number of images whose
predicted class differs and the largest output difference, as JSON. For outputs other than a
softmax, the CSV holds them normalised to sum 1 per image (as `predict` shows them), so the
ONNX outputs are normalised the same way before the comparison.

    python3 tests/python/onnx_check.py MODEL.onnx t10k-images-idx3-ubyte.gz predictions.csv
"""
import gzip, json, struct, sys

import numpy as np
import onnxruntime as ort

onnx_path, images, csv = sys.argv[1:4]
raw = open(images, "rb").read()
if raw[:2] == b"\x1f\x8b":
    raw = gzip.decompress(raw)
n, rows, cols = struct.unpack(">III", raw[4:16])
x = np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows * cols).astype(np.float32) / 255.0
session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
out = session.run(["outputs"], {"pixels": x})[0]
table = np.loadtxt(csv, delimiter=",", skiprows=1, ndmin=2)
want_class, want_out = table[:, 2].astype(int), table[:, 3:]
if out.shape[1] > 1 and not np.allclose(out.sum(1), 1.0, atol=1e-4):
    out = out / out.sum(1, keepdims=True)
got_class = out.argmax(1) if out.shape[1] > 1 else (out[:, 0] >= 0.5).astype(int)
print(json.dumps({"images": int(n), "class_differs": int((got_class != want_class).sum()),
                  "max_output_difference": float(np.abs(out - want_out[:, :out.shape[1]]).max()),
                  "onnxruntime": ort.__version__}))
