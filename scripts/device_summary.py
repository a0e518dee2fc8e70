#!/usr/bin/env python3
"""Merges the raw logs of scripts/device-check.sh into summary.json and summary.md:

    python3 scripts/device_summary.py WORKDIR OUTDIR

WORKDIR holds what device-check.sh wrote: meta.txt, steps.tsv (name, exit status, seconds,
limit, command), each step's NAME.out / NAME.err, nvidia-smi.csv, train-metrics.csv. A step that
failed, timed out or did not run leaves its section saying so, and the other sections stand.
"""
import csv, io, json, os, re, sys


def read(work, name):
    try:
        with open(os.path.join(work, name), errors="replace") as f:
            return f.read()
    except OSError:
        return None


def load_json(text):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def steps_of(work):
    steps = {}
    for line in (read(work, "steps.tsv") or "").splitlines():
        name, rc, seconds, limit, command = (line.split("\t", 4) + [""] * 5)[:5]
        steps[name] = dict(name=name, rc=None if rc == "skipped" else int(rc), skipped=rc == "skipped",
                           seconds=float(seconds or 0), limit_s=int(limit or 0), command=command)
    return steps


def why_not(work, steps, name):
    """None when the step ran and exited 0; else a sentence on what happened."""
    s = steps.get(name)
    if s is None:
        return "did not run"
    if s["skipped"]:
        return "skipped: the time budget was spent"
    if s["rc"] == 0:
        return None
    last = [l for l in (read(work, name + ".err") or "").splitlines() if l.strip()]
    what = "timed out" if s["rc"] in (124, 137) else f"exit status {s['rc']}"
    return f"{what} after {s['seconds']:.0f} s" + (f": {last[-1].strip()[:300]}" if last else "")


def parity_of(work, steps):
    out = read(work, "parity.out") or ""
    m = re.search(r"worst relative error (\S+) \(tolerance (\S+)\)", out)
    dev = re.search(r"reference vs (.*?) over (\d+) step", out)
    return dict(
        verdict="pass" if steps.get("parity", {}).get("rc") == 0 else "FAIL",
        device=dev.group(1) if dev else None,
        steps=int(dev.group(2)) if dev else None,
        worst_relative_error=float(m.group(1)) if m else None,
        tolerance=float(m.group(2)) if m else None,
        failed_tensors=[l.split()[0] for l in out.splitlines() if l.rstrip().endswith("FAIL")],
        problem=why_not(work, steps, "parity"),
    )


def kernel_parity_of(work, steps):
    """Each kernel configuration against the f64 reference at seed001's and odd shapes, with
    the validation layer where the bundle carried it (kernel-parity.out, a line per run)."""
    rows = []
    for line in (read(work, "kernel-parity.out") or "").splitlines():
        f = line.split()
        if len(f) == 12 and f[0] == "kernels":
            rows.append(dict(kernels=f[1], shape=f[3], exit=int(f[5]), worst=f[7], validation=f[9], validation_errors=int(f[11])))
    return dict(runs=rows, problem=why_not(work, steps, "kernel-parity"))


def bench_of(work, steps, torch):
    cases = load_json(read(work, "bench.out")) or []
    theirs = {n["network"]: n for n in (torch or {}).get("networks", [])}
    names = [c["case"] for c in cases] + [n for n in theirs if n not in {c["case"] for c in cases}]
    rows = []
    for name in names:
        case = next((c for c in cases if c["case"] == name), None)
        gpu = next((r for r in case["rows"] if r.get("dispatches_per_step") is not None), None) if case else None
        cpu = [r for r in case["rows"] if r.get("dispatches_per_step") is None] if case else []
        t = theirs.get(name, {})
        row = dict(network=name, layers=case["layers"] if case else t.get("layers"), batch=case["batch"] if case else t.get("batch"),
                   gpu_nn_backend=gpu["backend"] if gpu else None,
                   gpu_nn_samples_per_sec=gpu["samples_per_sec"] if gpu else None,
                   gpu_nn_ms_per_step=gpu["ms_per_step"] if gpu else None,
                   gpu_nn_gflops=gpu["gflops"] if gpu else None,
                   gpu_nn_compute_ms=gpu.get("compute_ms") if gpu else None,
                   gpu_nn_cpu_samples_per_sec=cpu[-1]["samples_per_sec"] if cpu else None,
                   gpu_nn_cpu_backend=cpu[-1]["backend"] if cpu else None,
                   torch_samples_per_sec=t.get("samples_per_sec"), torch_ms_per_step=t.get("ms_per_step"),
                   torch_error=t.get("error"))
        row["gpu_nn_over_torch"] = ratio(row["gpu_nn_samples_per_sec"], row["torch_samples_per_sec"])
        rows.append(row)
    return rows


def ratio(a, b):
    return a / b if a is not None and b else None


def kernels_of(work, steps, torch):
    name = "kernels" if steps.get("kernels", {}).get("rc") == 0 else "kernels-fallback"
    report = load_json(read(work, name + ".out")) or {}
    best = {}
    for r in report.get("kernels", []):
        key = (r["kernel"], tuple(r["shape"]))
        if key not in best or r["gpu_gflops"] > best[key]["gpu_gflops"]:
            best[key] = r
    theirs = {(m["kernel"], tuple(m["shape"])): m for m in (torch or {}).get("matmul", [])}
    rows = []
    for key in list(best) + [k for k in theirs if k not in best]:
        ours, t = best.get(key, {}), theirs.get(key, {})
        rows.append(dict(kernel=key[0], shape=list(key[1]), gpu_nn_config=ours.get("config"), gpu_nn_variant=ours.get("variant"),
                         gpu_nn_gflops=ours.get("gpu_gflops"), gpu_nn_us=ours.get("device_us") or ours.get("gpu_us"),
                         cpu_gflops=ours.get("cpu_gflops"), torch_gflops=t.get("gflops"), torch_us=t.get("us"),
                         gpu_nn_over_torch=ratio(ours.get("gpu_gflops"), t.get("gflops"))))
    rows.sort(key=lambda r: (r["shape"][0] != r["shape"][1] or r["shape"][1] != r["shape"][2], r["shape"][0] * r["shape"][1] * r["shape"][2], r["kernel"]))
    return dict(source=name if report else None, device=report.get("device"), timestamps=report.get("timestamps"),
                configs=sorted({r["config"] for r in report.get("kernels", []) if r.get("config")}), rows=rows)


def train_of(work, steps):
    epochs = []
    text = read(work, "train-metrics.csv")
    if text:
        epochs = list(csv.DictReader(io.StringIO(text)))
    else:  # the run ended before its files: the per-epoch JSON lines
        epochs = [j for j in map(load_json, (read(work, "train.out") or "").splitlines()) if isinstance(j, dict)]
    num = lambda v: None if v in (None, "") else float(v)
    rows = [dict(epoch=int(num(e.get("epoch")) or 0), seconds=num(e.get("seconds")), samples_per_sec=num(e.get("samples_per_sec")),
                 train_loss=num(e.get("train_loss")), test_acc=num(e.get("test_acc"))) for e in epochs]
    s = steps.get("train", {})
    return dict(wall_s=s.get("seconds"), command=s.get("command"), epochs=rows, problem=why_not(work, steps, "train"))


def f(v, fmt="{:.0f}"):
    return "—" if v is None else fmt.format(v)


def markdown(s):
    m = s["meta"]
    L = [f"# gpu-nn device check, {m.get('started', '?')}", ""]
    L.append(f"{'Quick rehearsal (DEVICE_CHECK_QUICK=1)' if m.get('quick') == '1' else 'Full run'} on {m.get('host', '?')}; "
             f"{f(s['wall_s'], '{:.0f}')} s of a {m.get('budget_s', '?')} s budget; bundle: {s['manifest'] or 'no MANIFEST'}.")
    L.append(f"GPU: {s['gpu'] or 'no nvidia-smi'}. {s['python'] or 'PyTorch: ?'}; its benchmarks ran on {s['torch_device'] or '?'}. Vulkan loader: {m.get('loader', '?')}"
             + (f"; VK_DRIVER_FILES={m['vk_driver_files']}" if m.get("vk_driver_files") else "") + ".")
    L += ["", "## Steps", "", "| step | exit | seconds | limit s |", "|---|---|---|---|"]
    for st in s["steps"]:
        L.append(f"| {st['name']} | {'skipped' if st['skipped'] else st['rc']} | {st['seconds']:.1f} | {st['limit_s']} |")

    L += ["", "## Adapters (`gpu-nn adapters`)", ""]
    L += [f"- {a}" for a in s["adapters"]] or [f"- none listed ({s['problems'].get('adapters') or 'no output'})"]

    p = s["parity"]
    L += ["", "## Parity (`gpu-nn parity --preset seed001`: CPU f64 reference against the GPU, each step from the same weights)", ""]
    L.append(f"**{p['verdict']}**: worst relative error {f(p['worst_relative_error'], '{:.3e}')} (tolerance {f(p['tolerance'], '{:.1e}')}) "
             f"over {f(p['steps'])} steps on {p['device'] or '?'}"
             + (f"; over the tolerance: {', '.join(p['failed_tensors'])}" if p["failed_tensors"] else "")
             + (f". Step: {p['problem']}" if p["problem"] else "") + ".")

    kp = s["kernel_parity"]
    L += ["", "## Every kernel configuration against the f64 reference (`gpu-nn parity --kernels K`, 5 steps, seed001's shapes and 784-37-19-10 at batch 37), validation layer on", ""]
    if kp["runs"]:
        L += ["| kernels | shapes | exit | worst relative error | validation layer | validation errors |", "|---|---|---|---|---|---|"]
        L += [f"| {r['kernels']} | {r['shape']} | {r['exit']} | {r['worst']} | {r['validation']} | {r['validation_errors']} |" for r in kp["runs"]]
    if kp["problem"]:
        L.append(f"- step: {kp['problem']}")

    L += ["", "## Training throughput (`gpu-nn bench` against PyTorch eager on the same card, data resident)", ""]
    for k in ("bench", "torch"):
        if s["problems"].get(k):
            L.append(f"- `{k}` step: {s['problems'][k]}")
    L += ["", "| network | batch | gpu-nn GPU samples/s | ms/step | GFLOP/s | gpu-nn CPU samples/s | PyTorch samples/s | ms/step | gpu-nn / PyTorch |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in s["bench"]:
        L.append(f"| {r['network']} | {f(r['batch'])} | {f(r['gpu_nn_samples_per_sec'])} | {f(r['gpu_nn_ms_per_step'], '{:.3f}')} | "
                 f"{f(r['gpu_nn_gflops'], '{:.1f}')} | {f(r['gpu_nn_cpu_samples_per_sec'])} | {f(r['torch_samples_per_sec'])} | "
                 f"{f(r['torch_ms_per_step'], '{:.3f}')} | {f(r['gpu_nn_over_torch'], '{:.2f}')} |")
    if s["bench"] and s["bench"][0].get("gpu_nn_backend"):
        L.append(f"\ngpu-nn GPU: {s['bench'][0]['gpu_nn_backend']}; CPU column: {s['bench'][0]['gpu_nn_cpu_backend']}.")

    k = s["kernels"]
    L += ["", "## Matmul, f32 (`gpu-nn bench --kernels` against `torch.matmul`, TF32 off), GFLOP/s = 2·M·K·N / time", ""]
    for name in ("kernels", "kernels-fallback"):
        if s["problems"].get(name) and s["problems"][name] != "did not run":
            L.append(f"- `{name}` step: {s['problems'][name]}")
    if k["source"]:
        L.append(f"- from `{k['source']}` on {k['device']}; gpu-nn's best configuration per shape"
                 + (f" among {', '.join(k['configs'])}" if k["configs"] else "")
                 + ("; timed by the device's timestamps" if k["timestamps"] else "; timed by the host") + ".")
    L += ["", "| product | M×K×N | gpu-nn GFLOP/s | config (variant) | PyTorch GFLOP/s | gpu-nn / PyTorch | CPU GEMM GFLOP/s |",
          "|---|---|---|---|---|---|---|"]
    for r in (r for r in k["rows"] if r["gpu_nn_gflops"] is not None):
        cfg = " ".join(x for x in (r["gpu_nn_config"], f"({r['gpu_nn_variant']})" if r["gpu_nn_variant"] else None) if x) or "—"
        L.append(f"| {r['kernel']} | {'×'.join(map(str, r['shape']))} | {f(r['gpu_nn_gflops'], '{:.1f}')} | {cfg} | "
                 f"{f(r['torch_gflops'], '{:.1f}')} | {f(None if r['gpu_nn_over_torch'] is None else 100 * r['gpu_nn_over_torch'], '{:.1f} %')} | "
                 f"{f(r['cpu_gflops'], '{:.1f}')} |")

    alone = [r for r in k["rows"] if r["gpu_nn_gflops"] is None and r["torch_gflops"] is not None]
    if alone:
        L += ["", "PyTorch alone (shapes gpu-nn's kernel report does not time), GFLOP/s: "
              + ", ".join(f"{r['kernel']} {'×'.join(map(str, r['shape']))} {r['torch_gflops']:.1f}" for r in alone) + "."]

    t = s["train"]
    L += ["", f"## Training seed001 (`{t['command'] or 'gpu-nn train'}`)", ""]
    L.append(f"Wall time {f(t['wall_s'], '{:.1f}')} s (start, data, every epoch, evaluations and files)"
             + (f". Step: {t['problem']}" if t["problem"] else "") + ".")
    L += ["", "| epoch | seconds | samples/s | train loss | test accuracy |", "|---|---|---|---|---|"]
    for e in t["epochs"]:
        L.append(f"| {e['epoch']} | {f(e['seconds'], '{:.2f}')} | {f(e['samples_per_sec'])} | {f(e['train_loss'], '{:.4f}')} | "
                 f"{f(None if e['test_acc'] is None else 100 * e['test_acc'], '{:.2f} %')} |")
    return "\n".join(L) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    work, outdir = sys.argv[1:]
    meta = dict(l.split("=", 1) for l in (read(work, "meta.txt") or "").splitlines() if "=" in l)
    steps = steps_of(work)
    torch = load_json(read(work, "torch.out"))
    smi = [r for r in csv.reader(io.StringIO(read(work, "nvidia-smi.csv") or ""))][1:]
    summary = dict(
        meta=meta,
        wall_s=float(meta["wall_s"]) if "wall_s" in meta else sum(st["seconds"] for st in steps.values()),
        manifest=" ".join((read(work, "MANIFEST") or "").split()),
        gpu="; ".join(", ".join(c.strip() for c in r) for r in smi) or None,
        python=(read(work, "python.txt") or "").strip() or None,
        torch_device=(torch or {}).get("device"),
        steps=list(steps.values()),
        problems={n: why_not(work, steps, n) for n in ("adapters", "parity", "kernel-parity", "bench", "kernels", "kernels-fallback", "torch", "train")},
        adapters=[l.strip() for l in (read(work, "adapters.out") or "").splitlines() if l.strip()],
        parity=parity_of(work, steps),
        kernel_parity=kernel_parity_of(work, steps),
        bench=bench_of(work, steps, torch),
        kernels=kernels_of(work, steps, torch),
        train=train_of(work, steps),
    )
    os.makedirs(outdir, exist_ok=True)
    for name, text in (("summary.json", json.dumps(summary, indent=2) + "\n"), ("summary.md", markdown(summary))):
        with open(os.path.join(outdir, name + ".part"), "w") as fh:
            fh.write(text)
        os.replace(os.path.join(outdir, name + ".part"), os.path.join(outdir, name))


if __name__ == "__main__":
    main()
