#!/usr/bin/env python3
"""gpu-nn's CPU training against PyTorch's and NumPy's own training loops, and its step against
the GEMM rate of torch.matmul and NumPy at the step's own shapes, side by side in one run:

    python3 scripts/compare_cpu.py --data ../shared/datasets/mnist [--epochs 5] [--threads T]
        [--networks seed001,seed000-mnist,wide] [--gpu-nn target/release/gpu-nn] [--json | --json-out F] [-v]

The networks are `gpu-nn bench`'s default set: seed001 (784-128-64-10 relu/relu/softmax,
cross-entropy, Adam 1e-3, batch 64), seed000-mnist (784-30-10 sigmoid/sigmoid, half squared
error, batch mean, SGD 3.0, batch 20) and wide (784-1024-1024-10 relu/relu/softmax,
cross-entropy, Adam 1e-3, batch 256). Per network, one contender after the other (so that all
see the same machine state):

1. gpu-nn bench --cpu-only --json --threads T on that network: ms per step (the T-thread row)
   and the roofline (each product of a step timed alone in gpu-nn's own GEMM).
2. gpu-nn train as a user runs it (--preset seed001, --preset seed000-mnist, the wide network
   through flags; --backend cpu --threads T --epochs N --out TMP --quiet). An epoch's training
   time is train_samples / samples_per_sec of its metrics.csv row (training only); its wall
   `seconds` (with the evaluation and the run directory's writes) is shown beside it.
3. NumPy's own loop in a child Python process whose environment lacks OPENBLAS_CORETYPE and
   OPENBLAS_L2_SIZE (a user's would not have them; the output says what they were) and whose
   BLAS is named (threadpoolctl); then PyTorch's own loop in a child with torch.set_num_threads(T).
   Both: same network, batch, optimiser and initial scale as gpu-nn train, the training set in
   memory as one f32 array, a fresh permutation every epoch with batches in its order (the last
   partial batch included), f32 throughout, timed per epoch (training only, no evaluation).
   Each child then times the roofline's products alone in np.matmul / torch.matmul at the same
   shapes, transposed operands as .T views where gpu-nn reads them transposed, into a
   preallocated output, T threads, median of --product-repeats after a warm-up.

Reported: the median of epochs 2..N per contender, gpu-nn / best peer (the best peer's epoch
time over gpu-nn's: > 1 is gpu-nn faster), gpu-nn's epoch split into its steps (ms_per_step ×
ceil(train_samples / batch)) and everything around them (epoch training time − steps), and
per network the share of gpu-nn's step spent in its products, their GFLOP/s, the same products'
GFLOP/s in torch.matmul and in NumPy, and the step's GFLOP/s as a percentage of torch.matmul's
(issue 26's targets: train epochs ≥ 2× the best peer for seed001 and seed000-mnist, ≥ 1.25× for
wide; every step at ≥ 75 % of torch.matmul's rate). --verbose adds every epoch and product;
--json prints everything as one JSON document instead. --mode steps keeps the older comparison:
steps timed as gpu-nn bench times itself (a warm-up run of --steps steps, then the median of
--repeats runs) in all three, as samples/s. Without an importable torch, its columns stay empty
(one line says so) unless --require-torch.
"""
import argparse, csv, datetime, gzip, importlib.util, json, math, os, platform, shlex, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_cpu_peers import DATA_FILES, NETWORKS, idx_path  # noqa: E402

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare_cpu_peers.py")
TARGET_RATIO = {"seed001": 2.0, "seed000-mnist": 2.0, "wide 784-1024-1024-10": 1.25}
TARGET_ROOFLINE = 0.75
UNSET_FOR_NUMPY = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ALIASES = {"wide": "wide 784-1024-1024-10"}


class Failure(Exception):
    """One line for the user, then exit 1."""


def log(msg):
    print(f"compare_cpu: {msg}", file=sys.stderr, flush=True)


def median_after_first(values):
    return statistics.median(values[1:] if len(values) > 1 else values)


def run_cmd(cmd, what, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or p.stdout.strip().splitlines() or ["(no output)"])[-1]
        raise Failure(f"{what} failed (exit {p.returncode}): {last}")
    return p.stdout


def machine():
    model = None
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if model is None and os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return dict(cpu=model or platform.processor() or "unknown", cores=os.cpu_count(),
                load_at_start=[round(v, 2) for v in os.getloadavg()], python=platform.python_version(),
                os=platform.platform())


class OthersCpu:
    """CPU time that processes other than this script and its children used since creation, as a
    share of the machine (all cores) over that wall time: how disturbed the timings were. None
    where /proc/stat is missing."""

    def __init__(self):
        self.start = self._now()

    @staticmethod
    def _now():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = sum(v[:8]) - v[3] - (v[4] if len(v) > 4 else 0)  # less idle and iowait (guest is inside user)
        t = os.times()
        return busy / os.sysconf("SC_CLK_TCK"), t.user + t.system + t.children_user + t.children_system, time.monotonic()

    def share(self):
        end = self._now()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        others = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return max(0.0, others) / ((end[2] - self.start[2]) * (os.cpu_count() or 1))


def peer(lib, job, tmp, threads):
    """Runs one peer job in a child process; returns its result dict."""
    env = dict(os.environ)
    if lib == "numpy":
        for k in UNSET_FOR_NUMPY:
            env.pop(k, None)
        if importlib.util.find_spec("threadpoolctl") is None:
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[k] = str(threads)
    path = os.path.join(tmp, f"job-{lib}.json")
    with open(path, "w") as f:
        json.dump(dict(job, lib=lib, threads=threads), f)
    out = run_cmd([sys.executable, PEERS, path], f"the {lib} child ({job['net'].get('name', '')})", env=env)
    return json.loads(out.strip().splitlines()[-1])


def gpunn_bench(a, net, steps, repeats):
    """gpu-nn bench --cpu-only --json on `net` alone: (the T-thread CPU row, the roofline)."""
    out = run_cmd([a.gpu_nn, "bench", *net["train_args"], "--cpu-only", "--json", "--data", a.data,
                   "--threads", str(a.threads), "--steps", str(steps), "--repeats", str(repeats)],
                  f"gpu-nn bench ({net['name']})")
    case = json.loads(out)[0]
    cpu = [r for r in case["rows"] if r.get("dispatches_per_step") is None and r["backend"].startswith("cpu")]
    want = f"cpu f32 ({a.threads} thread{'' if a.threads == 1 else 's'})"
    row = next((r for r in cpu if r["backend"] == want), cpu[-1])
    return row, case.get("roofline")


def gpunn_train(a, net, n_train, tmp):
    """gpu-nn train as a user runs it; per epoch its training seconds and its wall seconds."""
    out = os.path.join(tmp, "run-" + net["name"].split()[0])
    run_cmd([a.gpu_nn, "train", *net["train_args"], "--backend", "cpu", "--threads", str(a.threads),
             "--epochs", str(a.epochs), "--data", a.data, "--out", out, "--quiet"],
            f"gpu-nn train ({net['name']})")
    with open(os.path.join(out, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    shutil.rmtree(out, ignore_errors=True)
    train = [n_train / float(r["samples_per_sec"]) for r in rows]
    wall = [float(r["seconds"]) for r in rows]
    return dict(train_epoch_s=median_after_first(train), wall_epoch_s=median_after_first(wall),
                train_epochs_s=train, wall_epochs_s=wall)


def roofline_summary(roof, torch_products, numpy_products):
    """Per network: share of gpu-nn's step in its products, GFLOP/s of gpu-nn's products and step,
    the same products' GFLOP/s in torch.matmul and NumPy (summed time), the step's % of torch's."""
    if not roof:
        return None
    flops = sum(2 * p["macs"] for p in roof["products"])
    s = dict(products_share=roof["products_share"], gpu_nn_products_gflops=roof["products_gflops"],
             gpu_nn_step_gflops=roof["step_gflops"], gpu_nn_products_ms=roof["products_ms"],
             gpu_nn_step_ms=roof["step_ms"], threads=roof.get("threads"))
    for name, prods in (("torch", torch_products), ("numpy", numpy_products)):
        if prods:
            ms = sum(p["ms"] for p in prods)
            s[f"{name}_products_ms"] = ms
            s[f"{name}_products_gflops"] = flops / (ms * 1e6)
    if s.get("torch_products_gflops"):
        s["step_over_torch"] = roof["step_gflops"] / s["torch_products_gflops"]
        s["products_over_torch"] = roof["products_gflops"] / s["torch_products_gflops"]
    if s.get("numpy_products_gflops"):
        s["step_over_numpy"] = roof["step_gflops"] / s["numpy_products_gflops"]
    return s


def pick_networks(spec):
    if not spec:
        return list(NETWORKS)
    names = []
    for part in spec.split(","):
        part = ALIASES.get(part.strip(), part.strip())
        if part not in NETWORKS:
            raise Failure(f"unknown network '{part}'; choose from seed001, seed000-mnist, wide")
        names.append(part)
    return names


def run(a):
    if not (os.path.isfile(a.gpu_nn) and os.access(a.gpu_nn, os.X_OK)):
        raise Failure(f"no gpu-nn binary at {a.gpu_nn} (build it with `cargo build --release`, or pass --gpu-nn PATH)")
    missing = [n for n in DATA_FILES if idx_path(a.data, n) is None]
    if missing:
        raise Failure(f"no MNIST in {a.data}: missing {', '.join(missing)} (.gz or not); pass --data DIR")
    names = pick_networks(a.networks)
    labels = idx_path(a.data, "train-labels-idx1-ubyte")
    with (gzip.open(labels) if labels.endswith(".gz") else open(labels, "rb")) as f:
        n_train = int.from_bytes(f.read(8)[4:8], "big")

    report = dict(started=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  command=" ".join(shlex.quote(x) for x in [os.path.basename(sys.executable), *sys.argv]),
                  mode=a.mode, machine=machine(), threads=a.threads, epochs=a.epochs, train_samples=n_train,
                  gpu_nn=dict(binary=a.gpu_nn, version=run_cmd([a.gpu_nn, "--version"], "gpu-nn --version").strip(),
                              modified=datetime.datetime.fromtimestamp(os.path.getmtime(a.gpu_nn), datetime.timezone.utc)
                              .strftime("%Y-%m-%d %H:%M:%S UTC")),
                  unset_for_numpy={k: os.environ.get(k) for k in UNSET_FOR_NUMPY}, networks=[])
    whole_run = OthersCpu()
    tmp = tempfile.mkdtemp(prefix="compare_cpu-")
    try:
        # A copy of the binary: a rebuild during the run cannot mix two builds into one report.
        a.gpu_nn = shutil.copy2(a.gpu_nn, os.path.join(tmp, "gpu-nn"))
        probe = dict(net=dict(name="probe"), mode="none")
        report["numpy"] = peer("numpy", probe, tmp, a.threads)
        t = peer("torch", probe, tmp, a.threads)
        if "error" in t:
            if a.require_torch:
                raise Failure(f"PyTorch is not importable ({t['error']}) and --require-torch was given")
            report["torch"] = None
            report["torch_missing"] = t["error"]
            log(f"PyTorch is not importable ({t['error']}): its columns stay empty")
        else:
            report["torch"] = t
        libs = ["numpy"] + (["torch"] if report["torch"] else [])

        for name in names:
            net = dict(NETWORKS[name], name=name)
            entry = dict(network=name, batch=net["batch"], layers=net["layers"])
            others = OthersCpu()
            log(f"{name}: gpu-nn bench")
            row, roof = gpunn_bench(a, net, a.steps, a.repeats)
            products = roof["products"] if (roof and not a.no_roofline) else []
            entry["gpu_nn_bench"] = dict(backend=row["backend"], ms_per_step=row["ms_per_step"],
                                         samples_per_sec=row["samples_per_sec"], gflops=row.get("gflops"))
            entry["gpu_nn_roofline"] = roof
            if a.mode == "epochs":
                log(f"{name}: gpu-nn train, {a.epochs} epochs")
                g = gpunn_train(a, net, n_train, tmp)
                steps_per_epoch = math.ceil(n_train / net["batch"])
                steps_s = row["ms_per_step"] * steps_per_epoch / 1e3
                g.update(ms_per_step=row["ms_per_step"], steps_per_epoch=steps_per_epoch, steps_s=steps_s,
                         around_s=g["train_epoch_s"] - steps_s,
                         around_share=(g["train_epoch_s"] - steps_s) / g["train_epoch_s"])
                entry["gpu_nn"] = g
            else:
                entry["gpu_nn"] = dict(samples_per_sec=row["samples_per_sec"])
            job = dict(net=net, data=a.data, mode=a.mode, epochs=a.epochs, steps=a.steps, repeats=a.repeats,
                       products=products, product_repeats=a.product_repeats, seed=1)
            for lib in libs:
                log(f"{name}: {'NumPy' if lib == 'numpy' else 'PyTorch'} "
                    f"{'%d epochs' % a.epochs if a.mode == 'epochs' else 'steps'}{' and products' if products else ''}")
                r = peer(lib, job, tmp, a.threads)
                if a.mode == "epochs":
                    entry[lib] = dict(epoch_s=median_after_first(r["epoch_s"]), epochs_s=r["epoch_s"],
                                      epoch_loss=r["epoch_loss"])
                else:
                    entry[lib] = dict(samples_per_sec=r["samples_per_sec"])
                entry[f"{lib}_products"] = r.get("products")
            if a.mode == "epochs":
                peers = {lib: entry[lib]["epoch_s"] for lib in libs}
                best = min(peers, key=peers.get)
                entry.update(best_peer=best, over_best_peer=peers[best] / entry["gpu_nn"]["train_epoch_s"],
                             target_over_best_peer=TARGET_RATIO.get(name))
            else:
                for lib in libs:
                    entry[f"over_{lib}"] = entry["gpu_nn"]["samples_per_sec"] / entry[lib]["samples_per_sec"]
            entry["roofline"] = roofline_summary(roof if products else None, entry.get("torch_products"),
                                                 entry.get("numpy_products"))
            entry["others_cpu_share"] = others.share()
            report["networks"].append(entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["machine"]["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report["machine"]["others_cpu_share"] = whole_run.share()
    return report


PEER_LABEL = {"numpy": "NumPy", "torch": "PyTorch"}


def describe_blas(info):
    parts = []
    for i in info:
        if "note" in i:
            parts.append(i["note"])
        elif i.get("user_api") == "blas":
            parts.append(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture') or i.get('corename') or '?'}"
                         f" kernels, {i.get('threading_layer', '?')}, {i.get('num_threads')} threads)")
    return "; ".join(parts) or "no BLAS found"


def print_report(r, verbose):
    m = r["machine"]
    print(f"$ {r['command']}")
    print(f"machine: {m['cpu']}, {m['cores']} cores; run at {r['started']}; load average at start {m['load_at_start'][0]}, "
          f"at end {m['load_at_end'][0]}; Python {m['python']}; {m['os']}")
    print(f"gpu-nn: {r['gpu_nn']['version']} ({r['gpu_nn']['binary']}, built {r['gpu_nn']['modified']}), "
          f"--backend cpu --threads {r['threads']}")
    unset = ", ".join(f"{k}={v}" for k, v in r["unset_for_numpy"].items() if v is not None)
    print(f"NumPy {r['numpy']['version']}: {describe_blas(r['numpy']['blas'])}; "
          + (f"run with {unset} unset (they are set here and slow a current OpenBLAS)" if unset
             else "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE were not set"))
    if r["torch"]:
        print(f"PyTorch {r['torch']['version']}: torch.set_num_threads({r['torch']['num_threads']}), BLAS {r['torch']['blas']}")
    else:
        print(f"PyTorch: not importable ({r['torch_missing']}); its columns are empty")
    nets = r["networks"]
    f = lambda v, fmt: (fmt % v) if v is not None else "–"
    shares = [m.get("others_cpu_share")] + [e.get("others_cpu_share") for e in nets]
    if shares[0] is not None:
        busy = max(v for v in shares if v is not None) > 0.05
        print(f"other processes' CPU use during the run (share of all {m['cores']} cores): {shares[0]:.1%}; "
              + ", ".join(f"{e['network'].split()[0]} " + ("–" if e.get("others_cpu_share") is None
                                                             else f"{e['others_cpu_share']:.1%}") for e in nets)
              + (" — the machine was busy: rerun when it is quiet" if busy else ""))

    if r["mode"] == "epochs":
        span = "epochs 2..%d" % r["epochs"] if r["epochs"] > 1 else "epoch 1 (only one run)"
        print()
        print(f"Training epoch, {r['train_samples']} samples, seconds (median of {span}; training only, "
              f"evaluation excluded; 'wall' is gpu-nn's whole epoch with evaluation and writes):")
        print(f"{'network':<23} {'gpu-nn train':>12} {'(wall)':>8} {'PyTorch':>9} {'NumPy':>9} "
              f"{'gpu-nn / best peer':>20} {'target':>7}")
        for e in nets:
            g = e["gpu_nn"]
            ratio = f"{e['over_best_peer']:.2f}× ({PEER_LABEL[e['best_peer']]})"
            tgt = e.get("target_over_best_peer")
            met = "" if tgt is None else f"≥{tgt:g}× {'met' if e['over_best_peer'] >= tgt else 'not'}"
            print(f"{e['network']:<23} {g['train_epoch_s']:>12.3f} {g['wall_epoch_s']:>8.3f} "
                  f"{f(e.get('torch', {}).get('epoch_s'), '%.3f'):>9} {f(e['numpy']['epoch_s'], '%.3f'):>9} "
                  f"{ratio:>20} {met:>7}")
        print()
        print("gpu-nn's epoch split: its steps (bench ms/step × steps per epoch) and everything around them:")
        print(f"{'network':<23} {'ms/step':>8} {'steps':>6} {'steps s':>8} {'epoch s':>8} {'around ms':>10} {'around':>7}")
        for e in nets:
            g = e["gpu_nn"]
            print(f"{e['network']:<23} {g['ms_per_step']:>8.4f} {g['steps_per_epoch']:>6} {g['steps_s']:>8.3f} "
                  f"{g['train_epoch_s']:>8.3f} {g['around_s'] * 1e3:>10.1f} {g['around_share'] * 100:>6.1f}%")
        if verbose:
            print()
            print("every epoch, seconds:")
            for e in nets:
                print(f"  {e['network']}: gpu-nn train {', '.join('%.3f' % v for v in e['gpu_nn']['train_epochs_s'])}"
                      f" (wall {', '.join('%.3f' % v for v in e['gpu_nn']['wall_epochs_s'])})")
                for lib in ("torch", "numpy"):
                    if e.get(lib):
                        print(f"  {e['network']}: {PEER_LABEL[lib]} {', '.join('%.3f' % v for v in e[lib]['epochs_s'])}"
                              f" (mean loss {', '.join('%.4f' % v for v in e[lib]['epoch_loss'])})")
    else:
        print()
        print(f"samples/s (seconds per {r['train_samples']}-sample epoch); {r['threads']} threads each; "
              f"steps timed as gpu-nn bench times itself (one warm-up run, median of the timed runs)")
        print(f"{'network':<23} {'gpu-nn cpu':>18} {'PyTorch':>18} {'NumPy':>18} {'/PyTorch':>9} {'/NumPy':>7}")
        cell = lambda sps: f"{sps:9.0f} ({r['train_samples'] / sps:5.2f})" if sps else "–"
        for e in nets:
            t = e.get("torch", {}).get("samples_per_sec")
            print(f"{e['network']:<23} {cell(e['gpu_nn']['samples_per_sec']):>18} {cell(t):>18} "
                  f"{cell(e['numpy']['samples_per_sec']):>18} {f(e.get('over_torch'), '%.2f'):>9} {e['over_numpy']:7.2f}")

    roofs = [e for e in nets if e.get("roofline")]
    if roofs:
        print()
        print(f"Roofline: the products of a step timed alone (gpu-nn's GEMM in gpu-nn bench; torch.matmul and NumPy's @ "
              f"at the same shapes and transposes, {r['threads']} threads); GFLOP/s (of the products' summed time, and of "
              f"gpu-nn's whole step); "
              f"target: step ≥ {TARGET_ROOFLINE:.0%} of torch.matmul's rate")
        print(f"{'':<23} {'products':>9} {'gpu-nn':>8} {'gpu-nn':>8} {'torch':>8} {'NumPy @':>8} "
              f"{'step / torch.matmul':>20} {'step /':>8}")
        print(f"{'network':<23} {'% of step':>9} {'products':>8} {'step':>8} {'matmul':>8} {'':>8} {'':>20} "
              f"{'NumPy @':>8}")
        for e in roofs:
            s = e["roofline"]
            so = s.get("step_over_torch")
            pct = "–" if so is None else f"{so * 100:.0f}% ({'met' if so >= TARGET_ROOFLINE else 'not'})"
            print(f"{e['network']:<23} {s['products_share'] * 100:>8.1f}% {s['gpu_nn_products_gflops']:>8.1f} "
                  f"{s['gpu_nn_step_gflops']:>8.1f} {f(s.get('torch_products_gflops'), '%.1f'):>8} "
                  f"{f(s.get('numpy_products_gflops'), '%.1f'):>8} {pct:>20} "
                  f"{f(s.get('step_over_numpy') and s['step_over_numpy'] * 100, '%.0f%%'):>8}")
        if verbose:
            for e in roofs:
                print()
                print(f"{e['network']}: per product, ms (GFLOP/s); A·B with N = read row-major, T = a transposed view")
                print(f"  {'product':<40} {'m×k×n':>15} {'A B':>4} {'gpu-nn':>16} {'torch.matmul':>16} {'NumPy @':>16}")
                tp, npp = e.get("torch_products") or [], e.get("numpy_products") or []
                for i, p in enumerate(e["gpu_nn_roofline"]["products"]):
                    ta = "N" if p["a_strides"][1] == 1 else "T"
                    tb = "N" if p["b_strides"][1] == 1 else "T"
                    cellp = lambda q: f"{q['ms']:.4f} ({q['gflops']:.1f})" if q else "–"
                    print(f"  {p['product']:<40} {'%d×%d×%d' % (p['m'], p['k'], p['n']):>15} {ta + tb:>4} "
                          f"{cellp(p):>16} {cellp(tp[i] if i < len(tp) else None):>16} "
                          f"{cellp(npp[i] if i < len(npp) else None):>16}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--data", default=os.environ.get("GPU_NN_DATA") or "../shared/datasets/mnist",
                    help="MNIST's IDX files (default $GPU_NN_DATA, else ../shared/datasets/mnist)")
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target")
    ap.add_argument("--gpu-nn", default=os.environ.get("GPU_NN_BIN") or os.path.join(target, "release", "gpu-nn"),
                    help="the binary (default $GPU_NN_BIN, else target/release/gpu-nn)")
    ap.add_argument("--mode", choices=["epochs", "steps"], default="epochs",
                    help="epochs: training epochs as users run them (default); steps: timed steps as gpu-nn bench")
    ap.add_argument("--epochs", type=int, default=5, help="epochs per contender; the median of 2..N is reported")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of every contender (default: every core)")
    ap.add_argument("--networks", help="comma-separated: seed001, seed000-mnist, wide (default: all three)")
    ap.add_argument("--steps", type=int, default=100, help="gpu-nn bench's --steps (and --mode steps' peers')")
    ap.add_argument("--repeats", type=int, default=3, help="gpu-nn bench's --repeats (and --mode steps' peers')")
    ap.add_argument("--product-repeats", type=int, default=7, help="timed repeats per product in torch/NumPy")
    ap.add_argument("--no-roofline", action="store_true", help="skip timing the products in torch and NumPy")
    ap.add_argument("--require-torch", action="store_true", help="fail if PyTorch is not importable")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    ap.add_argument("--verbose", "-v", action="store_true", help="also every epoch and every product")
    ap.add_argument("--json-out", metavar="FILE", help="also write the JSON document to FILE (beside the tables)")
    a = ap.parse_args()
    if a.epochs < 1 or a.threads < 1 or a.steps < 1 or a.repeats < 1 or a.product_repeats < 1:
        ap.error("--epochs, --threads, --steps, --repeats and --product-repeats must be at least 1")
    a.gpu_nn = os.path.normpath(a.gpu_nn)
    try:
        report = run(a)
    except Failure as e:
        print(f"compare_cpu: {e}", file=sys.stderr)
        return 1
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(report, f, indent=2)
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, a.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
