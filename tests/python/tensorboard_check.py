"""Reads gpu-nn's TensorBoard event files with TensorBoard's own reader and checks them against
the run directories they sit in; prints one line per directory checked, and exits 1 with the
first discrepancy of each when something is wrong.

    python3 tests/python/tensorboard_check.py run DIR [DIR ...]   # gpu-nn train --out DIR
    python3 tests/python/tensorboard_check.py sweep DIR           # gpu-nn sweep --out DIR

A run: one event file, every record whole and its CRCs right (TensorBoard's own masked
CRC-32C); the file version first; every per-epoch scalar equal to metrics.csv (f32 rounding;
`seconds` and `samples_per_sec` as metrics.csv rounds them), at step = its epoch, exactly once
(read without TensorBoard's purging of out-of-order steps, which would hide a duplicate), and
none metrics.csv lacks; `running/loss` at strictly increasing steps within the run's steps; the
pictures equal to curves.png and confusion.png at the last epoch. A sweep: the experiment in
DIR lists every axis with its values and type and the metrics; each cell's session start holds
its axis values and name, its session end its status (failure where it diverged), and the cell
is checked as a run.
"""
import csv, glob, json, math, os, struct, sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

# metrics.csv column -> tag, and the tolerance its printing allows (absolute, relative)
COLUMNS = {
    "train_loss": ("loss/train", 0, 1e-6), "train_acc": ("accuracy/train", 0, 1e-6),
    "val_loss": ("loss/val", 0, 1e-6), "val_acc": ("accuracy/val", 0, 1e-6),
    "test_loss": ("loss/test", 0, 1e-6), "test_acc": ("accuracy/test", 0, 1e-6),
    "lr": ("lr", 0, 1e-6), "seconds": ("seconds", 5e-5, 1e-6), "samples_per_sec": ("samples_per_sec", 0.05, 1e-6),
}
METRICS = {"accuracy/test", "loss/test", "accuracy/train", "loss/train", "accuracy/val", "loss/val"}
failures = []


class Bad(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Bad(what)


def event_file(d):
    files = glob.glob(os.path.join(d, "events.out.tfevents.*"))
    check(len(files) == 1, f"{d}: {len(files)} event files, expected one: {files}")
    return files[0]


def check_framing(path):
    """Every record whole, both CRCs right, nothing after the last record; the file version
    first."""
    raw = open(path, "rb").read()
    at, n = 0, 0
    while at < len(raw):
        check(at + 12 <= len(raw), f"{path}: torn header at byte {at}")
        header = raw[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", raw[at + 8:at + 12])
        check(crc == masked_crc32c(header), f"{path}: length CRC of record {n} wrong")
        end = at + 12 + length
        check(end + 4 <= len(raw), f"{path}: record {n} torn")
        (crc,) = struct.unpack("<I", raw[end:end + 4])
        check(crc == masked_crc32c(raw[at + 12:end]), f"{path}: data CRC of record {n} wrong")
        if n == 0:
            version = event_pb2.Event.FromString(raw[at + 12:end]).file_version
            check(version == "brain.Event:2", f"{path}: first record's file version {version!r}")
        at, n = end + 4, n + 1
    check(n >= 2, f"{path}: only {n} records")


def load(d):
    acc = ea.EventAccumulator(d, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0}, purge_orphaned_data=False)
    acc.Reload()
    return acc


def close(got, want, atol, rtol):
    if math.isnan(want):
        return math.isnan(got)
    if math.isinf(want):
        return got == want
    return abs(got - want) <= atol + rtol * abs(want) + 1e-45


def png_size(data):
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
    return struct.unpack(">II", data[16:24])


def check_run(d, pictures=True):
    path = event_file(d)
    check_framing(path)
    acc = load(d)
    tags = acc.Tags()
    scalars = set(tags["scalars"])
    rows = list(csv.DictReader(open(os.path.join(d, "metrics.csv"))))
    check(rows, f"{d}: metrics.csv has no rows")
    epochs = [int(r["epoch"]) for r in rows]
    for col, (tag, atol, rtol) in COLUMNS.items():
        events = acc.Scalars(tag) if tag in scalars else []
        steps = [e.step for e in events]
        check(len(steps) == len(set(steps)), f"{d}: {tag} has steps twice: {steps}")
        want_steps = [int(r["epoch"]) for r in rows if r[col] != ""]
        check(sorted(steps) == want_steps, f"{d}: {tag} at steps {steps}, metrics.csv has epochs {want_steps}")
        by_step = {e.step: e.value for e in events}
        for r in rows:
            if r[col] != "":
                got, want = by_step[int(r["epoch"])], float(r[col])
                check(close(got, want, atol, rtol), f"{d}: {tag} at epoch {r['epoch']} is {got}, metrics.csv {want}")
    unknown = scalars - {t for t, _, _ in COLUMNS.values()} - {"running/loss"}
    check(not unknown, f"{d}: unexpected scalar tags {unknown}")
    check("running/loss" in scalars, f"{d}: no running/loss")
    running = acc.Scalars("running/loss")
    steps = [e.step for e in running]
    last_step = int(rows[-1]["step"])
    check(all(a < b for a, b in zip(steps, steps[1:])), f"{d}: running/loss steps not strictly increasing: {steps}")
    check(steps[0] >= 1 and steps[-1] <= last_step, f"{d}: running/loss steps {steps[0]}..{steps[-1]} outside 1..{last_step}")
    check(all(math.isfinite(e.value) for e in running), f"{d}: running/loss not finite")
    images = set(tags["images"])
    if pictures:
        for tag, name in [("curves", "curves.png"), ("confusion", "confusion.png")]:
            file = os.path.join(d, name)
            if not os.path.exists(file):
                check(tag not in images, f"{d}: image {tag} without {name}")
                continue
            check(tag in images, f"{d}: no image {tag}")
            imgs = acc.Images(tag)
            check(len(imgs) == 1, f"{d}: image {tag} {len(imgs)} times")
            want = open(file, "rb").read()
            check(imgs[0].encoded_image_string == want, f"{d}: image {tag} differs from {name}")
            check((imgs[0].width, imgs[0].height) == png_size(want), f"{d}: image {tag} size {imgs[0].width}x{imgs[0].height}")
            check(imgs[0].step == epochs[-1], f"{d}: image {tag} at step {imgs[0].step}, last epoch {epochs[-1]}")
    else:
        check(not images, f"{d}: pictures in a run that did not finish: {images}")
    return acc, len(running)


def hparams_of(acc, d):
    content = acc.PluginTagToContent("hparams")
    out = {}
    for tag, raw in content.items():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        check(data.version == 0, f"{d}: {tag} version {data.version}")
        out[tag] = data
    return out


def number(v):
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def check_sweep(d):
    plan = json.load(open(os.path.join(d, "sweep.json")))
    axes = [("batch" if a["flag"] == "batch-size" else a["flag"], a["values"]) for a in plan["grid"]["axes"]]
    numeric = {name: all(number(v) is not None for v in values) for name, values in axes}
    check_framing(event_file(d))
    root = hparams_of(load(d), d)
    check(set(root) == {"_hparams_/experiment"}, f"{d}: hparams tags {set(root)}")
    exp = root["_hparams_/experiment"].experiment
    check([h.name for h in exp.hparam_infos] == [n for n, _ in axes], f"{d}: experiment axes {[h.name for h in exp.hparam_infos]}")
    for h, (name, values) in zip(exp.hparam_infos, axes):
        listed = [v.WhichOneof("kind") for v in h.domain_discrete.values]
        if numeric[name]:
            check(h.type == api_pb2.DATA_TYPE_FLOAT64, f"{d}: axis {name} type {h.type}")
            check(listed == ["number_value"] * len(values) and [v.number_value for v in h.domain_discrete.values] == [float(v) for v in values],
                  f"{d}: axis {name} values {h.domain_discrete}")
        else:
            check(h.type == api_pb2.DATA_TYPE_STRING, f"{d}: axis {name} type {h.type}")
            check([v.string_value for v in h.domain_discrete.values] == values, f"{d}: axis {name} values {h.domain_discrete}")
    check({m.name.tag for m in exp.metric_infos} == METRICS, f"{d}: metrics {[m.name.tag for m in exp.metric_infos]}")
    cells = sorted(glob.glob(os.path.join(d, "cells", "*")))
    n_cells = math.prod(len(v) for _, v in axes)
    check(len(cells) == n_cells, f"{d}: {len(cells)} cell directories for {n_cells} cells")
    statuses = []
    for c in cells:
        try:
            result = json.load(open(os.path.join(c, "result.json")))
            diverged = "diverged" in result["outcome"]
            acc, _ = check_run(c, pictures=not diverged) if os.path.exists(os.path.join(c, "metrics.csv")) else (load(c), 0)
            hp = hparams_of(acc, c)
            check(set(hp) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}, f"{c}: hparams tags {set(hp)}")
            for tag in hp:
                check(len(acc.Tensors(tag)) == 1, f"{c}: {tag} {len(acc.Tensors(tag))} times")
            start = hp["_hparams_/session_start_info"].session_start_info
            check(start.group_name == result["name"] == os.path.basename(c), f"{c}: group {start.group_name}")
            check(start.start_time_secs > 0, f"{c}: no start time")
            check(sorted(start.hparams) == sorted(n for n, _ in axes), f"{c}: hparams {sorted(start.hparams)}")
            for (name, _), value in zip(axes, result["values"]):
                v = start.hparams[name]
                if numeric[name]:
                    check(v.WhichOneof("kind") == "number_value" and v.number_value == float(value), f"{c}: {name} = {v}, the cell's is {value}")
                else:
                    check(v.WhichOneof("kind") == "string_value" and v.string_value == value, f"{c}: {name} = {v}, the cell's is {value}")
            end = hp["_hparams_/session_end_info"].session_end_info
            want = api_pb2.STATUS_FAILURE if diverged else api_pb2.STATUS_SUCCESS
            check(end.status == want, f"{c}: session end status {end.status}, expected {want}")
            check(end.end_time_secs >= start.start_time_secs, f"{c}: ends before it starts")
            statuses.append(api_pb2.Status.Name(end.status))
        except Bad as e:
            failures.append(str(e))
    print(f"ok sweep {d}: {len(axes)} axes, {len(cells)} cells: {', '.join(statuses)}")


def main():
    mode, dirs = sys.argv[1], sys.argv[2:]
    for d in dirs:
        try:
            if mode == "run":
                _, running = check_run(d)
                print(f"ok run {d}: {running} running/loss points")
            else:
                check_sweep(d)
        except Bad as e:
            failures.append(str(e))
    for f in failures:
        print("FAIL", f)
    sys.exit(1 if failures else 0)


main()
