"""bench.py — mlpc's speed on the seed's model, next to PyTorch's and the
machine's sgemm roofline (docs/performance.md says what and why).

    python3 bench/bench.py [--rounds R] [--epochs E] [--study N] [--only-study]
                           [--ttr N] [--only-ttr]

Run from the repository root after `make build data` (`make bench` does
all of it). Each round trains the model once per configuration for E
epochs: mlpc with the gcc backend (strict, then fma arithmetic, the
default), mlpc with the tcc backend (strict), and PyTorch; the
configurations take turns
so that a busy machine slows them alike. A configuration's figure is the
median over all its epochs of the seconds the training took (evaluation
excluded). Also measured: the single-core sgemm rate (OpenBLAS), the time
to compile the model with each backend, and each run's peak resident
memory. Then the whole homework study, models/seed_study.json (30 runs of
10 epochs), as wall-clock time on two worker processes: mlpc with a fresh
database and a fresh gcc cache (compilation included), again with the
cache warm, and the same 30 runs in PyTorch (bench/torch_study.py), N
times each (median). Then the time to result: the wall time of `make
run`'s command and of the homework study (on data/mnist and on
data/fashion-mnist), each with the default tiered backend, tcc alone and
gcc alone, with gcc's objects not cached and cached (--ttr N times each,
median). Prints a Markdown report and writes it, with the raw figures as
JSON, to out/bench/.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MODEL = "models/bn_relu.json"
LAYERS = "models/bn_relu_layers.json"  # the same network as a layer list
DATA = "fashion-mnist"
HIDDEN, INPUT, OUTPUT, BATCH, SAMPLES = [128], 784, 10, 32, 60000
OUT = "out/bench"
BLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"
SGEMM_SIZES = ["1024", "2048"]
STUDY = "models/seed_study.json"


def one_thread_env():
    """The environment for every timed process: one thread, and OpenBLAS
    choosing its kernels for this CPU (OPENBLAS_CORETYPE unset)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    env.pop("OPENBLAS_CORETYPE", None)
    return env


def run_rss(argv, cwd=None, env=None):
    """Runs argv; returns (stdout, stderr, peak RSS in MB) using wait4."""
    p = subprocess.Popen(argv, cwd=cwd, env=env or one_thread_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        sys.exit(f"bench: {' '.join(argv)} failed ({p.returncode}):\n{err}")
    return out, err, usage.ru_maxrss / 1024


def arith_flag(fma):
    """The flag of an arithmetic, given even for the default (fma)."""
    return "--fma" if fma else "--strict"


def mlpc_argv(backend, epochs, fma, model=MODEL):
    """The command line of one timed mlpc run."""
    argv = ["build/mlpc", model, "--run", "--json", "--data", DATA, "--epochs",
            str(epochs), "--backend", backend]
    return argv + [arith_flag(fma)]


def epochs_of(out):
    """train_seconds of each epoch line of a JSON Lines output."""
    return [json.loads(line)["train_seconds"] for line in out.splitlines()
            if line.startswith("{\"epoch\"")]


def compile_once(backend, fma):
    """mlpc's own report of the time to compile the model in a fresh
    directory (so with gcc, no cached object), then again there."""
    d = tempfile.mkdtemp(prefix="mlpc-bench-")
    env = dict(one_thread_env(), MLPC_DATA=os.path.abspath("data"))
    argv = [os.path.abspath("build/mlpc"), os.path.abspath(MODEL), "--run", "--epochs", "1",
            "--max-batches", "1", "--data", DATA, "--backend", backend]
    try:
        times = []
        for _ in range(2):
            out, _, _ = run_rss(argv + [arith_flag(fma)], cwd=d, env=env)
            times.append(float(re.search(r"in ([0-9.]+) s", out).group(1)))
        return times
    finally:
        shutil.rmtree(d)


def compile_seconds(backend, fma=False):
    """The medians of three compile_once: [first, cached]."""
    runs = [compile_once(backend, fma) for _ in range(3)]
    return [statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)]


def dense_flops():
    """The dense FLOP count of one training epoch: every matrix product
    (forward, weight gradient, input gradient but the first layer's),
    every bias add and bias gradient, and SGD's two per parameter and
    step. Norms, activations and the loss are not counted."""
    sizes = [INPUT] + HIDDEN + [OUTPUT]
    fwd = bwd = params = 0
    for k in range(len(sizes) - 1):
        i, o = sizes[k], sizes[k + 1]
        fwd += 2 * SAMPLES * i * o + SAMPLES * o
        bwd += 2 * SAMPLES * i * o * (1 if k == 0 else 2) + SAMPLES * o
        params += i * o + o
    params += 2 * sum(HIDDEN)  # BatchNorm's gamma and beta
    steps = -(-SAMPLES // BATCH)
    return {"forward": fwd, "backward": bwd, "update": 2 * params * steps}


def machine():
    """A one-line description of the machine and the tools."""
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        info = f.read()
    m = re.search(r"model name\s*:\s*(.*)", info)
    fam = re.search(r"cpu family\s*:\s*(\d+)", info)
    mod = re.search(r"\nmodel\s*:\s*(\d+)", info)
    cpu = f"{m.group(1) if m else '?'} (family {fam.group(1) if fam else '?'}, model " \
          f"{mod.group(1) if mod else '?'})"
    flags = re.search(r"flags\s*:\s*(.*)", info).group(1).split()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    with open("/proc/meminfo") as f:
        mem = int(re.search(r"MemTotal:\s*(\d+)", f.read()).group(1)) / 2**20
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True,
                         text=True).stdout.strip()
    tcc = subprocess.run(["tcc", "-v"], capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {simd}, {os.cpu_count()} cores, {mem:.0f} GB; Linux "
            f"{platform.release()}; gcc {gcc}; {tcc.split('(')[0].strip()}")


def study_mlpc(d, db):
    """Runs the study with mlpc in directory d (whose out/cache holds the
    gcc objects) into a new database, in the default arithmetic (fma);
    returns the wall-clock seconds, the runs and the distinct runs mlpc
    counts."""
    env = dict(one_thread_env(), MLPC_DATA=os.path.abspath("data"))
    argv = [os.path.abspath("build/mlpc"), os.path.abspath(STUDY), "--run", "--data", DATA,
            "--jobs", "2", "--db", os.path.join(d, db), "--out", os.path.join(d, "report")]
    start = time.perf_counter()
    out, err, _ = run_rss(argv, cwd=d, env=env)
    wall = time.perf_counter() - start
    m = re.search(r"= (\d+) runs, (\d+) distinct, (\d+) compiled", out + err)
    return wall, int(m.group(1)), int(m.group(2)), int(m.group(3))


def wall(argv, d, env):
    """The wall-clock seconds of argv run in directory d."""
    start = time.perf_counter()
    run_rss(argv, cwd=d, env=env)
    return time.perf_counter() - start


def ttr_argv(what, backend, d):
    """The command of one time-to-result case: make run's, or the homework
    study on a data set (a fresh database in d each time)."""
    cmd = [os.path.abspath("build/mlpc")]
    if what == "run":
        return cmd + [os.path.abspath(MODEL), "--run", "--backend", backend]
    db = os.path.join(d, f"{len(os.listdir(d))}.sqlite")
    return cmd + [os.path.abspath(STUDY), "--run", "--data", what, "--jobs", "2", "--db", db,
                  "--out", os.path.join(d, "report"), "--backend", backend]


def ttr_once(what):
    """One round of a case: for each backend, the wall time in a fresh
    directory (gcc's objects not cached), then again with them cached
    (a gcc run in between caches them: a tiered run that ends before gcc
    stops it, and keeps no object)."""
    env = dict(os.environ, MLPC_DATA=os.path.abspath("data"))  # make run's environment
    times = {}
    for backend in ("tiered", "tcc", "gcc"):
        d = tempfile.mkdtemp(prefix="mlpc-ttr-")
        try:
            times[backend + " cold"] = wall(ttr_argv(what, backend, d), d, env)
            if backend != "tcc":
                run_rss(ttr_argv(what, "gcc", d), cwd=d, env=env)
                times[backend + " cached"] = wall(ttr_argv(what, backend, d), d, env)
        finally:
            shutil.rmtree(d)
    return times


def time_to_result(res, repeats):
    """The time-to-result cases, repeats rounds each; medians."""
    ttr = {}
    for what in ("run", "mnist", "fashion-mnist"):
        rounds = [ttr_once(what) for _ in range(repeats)]
        ttr[what] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(f"bench: time to result, {what}: done", file=sys.stderr)
    res["ttr"] = ttr


def ttr_table(res):
    """The time to result, in Markdown, with the targets' ratios."""
    t = res["ttr"]
    names = {"run": f"`build/mlpc {MODEL} --run` (make run: data/mnist, 10 epochs)",
             "mnist": f"`build/mlpc {STUDY} --run --jobs 2`, data/mnist",
             "fashion-mnist": f"the same study, data/fashion-mnist"}
    lines = ["Time to result: wall seconds of the whole command in a fresh directory, "
             "gcc's objects not cached (cold) and cached, median of "
             f"{res['ttr_rounds']}; tiered is the default.", "",
             "| command | tiered, cold | tiered, cached | tcc | gcc, cold | gcc, cached | "
             "tiered cold / cached |", "|---|---|---|---|---|---|---|"]
    for what, name in names.items():
        r = t[what]
        lines.append(f"| {name} | {r['tiered cold']:.2f} | {r['tiered cached']:.2f} | "
                     f"{r['tcc cold']:.2f} | {r['gcc cold']:.2f} | {r['gcc cached']:.2f} | "
                     f"{r['tiered cold'] / r['tiered cached']:.2f} |")
    ratio = {w: t[w]["tiered cold"] / t[w]["tiered cached"] for w in t}
    lines += ["", f"Targets, tiered cold / cached: make run's model ≤ 1.5 "
              f"({ratio['run']:.2f}), the study on data/mnist ≤ 1.5 ({ratio['mnist']:.2f}), "
              f"on data/fashion-mnist ≤ 1.15 ({ratio['fashion-mnist']:.2f})."]
    return "\n".join(lines) + "\n"


def study_torch():
    """Runs the study's 30 runs in PyTorch on two processes; returns the
    wall-clock seconds of the whole process and of its runs alone."""
    argv = ["/usr/bin/python3", "bench/torch_study.py", f"data/{DATA}", "2", "10"]
    start = time.perf_counter()
    out, _, _ = run_rss(argv)
    wall = time.perf_counter() - start
    return wall, json.loads(out.splitlines()[-1])["wall_seconds"]


def study(res, repeats):
    """Times the homework study repeats times: mlpc with a cold cache, mlpc
    with a warm one (each with a fresh database), and PyTorch."""
    st = {"cold": [], "warm": [], "pytorch": [], "pytorch_runs": []}
    for r in range(repeats):
        d = tempfile.mkdtemp(prefix="mlpc-study-")
        try:
            wall, runs, distinct, models = study_mlpc(d, "cold.sqlite")
            st["cold"].append(wall)
            st["warm"].append(study_mlpc(d, "warm.sqlite")[0])
        finally:
            shutil.rmtree(d)
        wall, inner = study_torch()
        st["pytorch"].append(wall)
        st["pytorch_runs"].append(inner)
        st.update(runs=runs, distinct=distinct, models=models)
        print(f"bench: study {r + 1} of {repeats} done", file=sys.stderr)
    res["study"] = st


def study_table(res):
    """The study's part of the report, in Markdown."""
    st = res["study"]
    cold, warm = statistics.median(st["cold"]), statistics.median(st["warm"])
    torch = statistics.median(st["pytorch"])
    n = len(st["cold"])
    return "\n".join([
        f"Study: {STUDY} on data/{DATA} (10 experiments × 3 seeds = {st['runs']} runs of 10 "
        "epochs, 60,000 training images, evaluation on the 10,000 test images after every "
        "epoch), wall-clock seconds of the whole command on 2 worker processes, one thread "
        f"each, median of {n}. mlpc runs {st['distinct']} distinct runs: the base "
        "experiment's 3 runs are shared by the 4 rows that contain it; PyTorch trains all "
        f"{st['runs']}. mlpc runs in its default arithmetic, fma, and starts from an empty "
        "database each time; tiered, its runs start on tcc's code while gcc builds the "
        f"{st['models']} models' objects beside them, or find them cached.",
        "",
        "| configuration | runs trained | wall | × PyTorch | wall per run trained | × PyTorch |",
        "|---|---|---|---|---|---|",
        f"| mlpc (tiered, the default), gcc's objects not cached | {st['distinct']} | "
        f"{cold:.1f} s | {cold / torch:.2f} | {cold / st['distinct']:.2f} s | "
        f"{cold / st['distinct'] / (torch / st['runs']):.2f} |",
        f"| mlpc (tiered, the default), gcc's objects cached | {st['distinct']} | {warm:.1f} s | "
        f"{warm / torch:.2f} | {warm / st['distinct']:.2f} s | "
        f"{warm / st['distinct'] / (torch / st['runs']):.2f} |",
        f"| PyTorch {res['torch']}, 2 processes | {st['runs']} | {torch:.1f} s (runs alone "
        f"{statistics.median(st['pytorch_runs']):.1f} s) | 1.00 | "
        f"{torch / st['runs']:.2f} s | 1.00 |",
        "",
        f"Target: the study under 60 s wall on both cores ({cold:.1f} s cold, "
        f"{warm:.1f} s warm).",
    ]) + "\n"


def table(res):
    """The report, in Markdown."""
    torch = statistics.median(res["epochs"]["pytorch"])
    gcc = statistics.median(res["epochs"]["gcc fma"])  # the default arithmetic
    gcc_strict = statistics.median(res["epochs"]["gcc strict"])
    roof = res["roofline_seconds"]
    fl = res["flops"]
    rate = res["sgemm"]["best"]
    lines = [
        "Model: models/bn_relu.json on data/fashion-mnist: 784-128-10, BatchNorm, ReLU, "
        "kaiming_normal, SGD lr 0.01, batch 32, float32, 60,000 training images "
        "shuffled every epoch.",
        f"Machine: {res['machine']}.",
        f"Method: {res['rounds']} rounds, each training every configuration in turn for "
        f"{res['epochs_per_run']} epochs; seconds per training epoch (evaluation "
        "excluded), median over all epochs; one thread everywhere; compile times are "
        "medians of 3.",
        f"sgemm: OpenBLAS {res['sgemm']['version']} ({res['sgemm']['core']} kernels), "
        f"1 thread: {', '.join(f'{n}³ {r:.0f}' for n, r in res['sgemm']['rates'].items())} "
        "GFLOP/s.",
        f"Roofline: {sum(fl.values()) / 1e9:.1f} GFLOP of dense arithmetic per epoch "
        f"(forward {fl['forward'] / 1e9:.1f}, backward {fl['backward'] / 1e9:.1f}, update "
        f"{fl['update'] / 1e9:.2f}) at {rate:.0f} GFLOP/s: {roof:.3f} s.",
        "",
        "| configuration | arithmetic | s/epoch | × PyTorch | × roofline | peak RSS | compile |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"gcc strict": ("mlpc, gcc backend", "strict (--strict)"),
             "gcc fma": ("mlpc, gcc backend", "fma (the default)"),
             "tcc strict": ("mlpc, tcc backend", "strict (--strict)"),
             "gcc fma layers": ("mlpc, gcc backend, written as a layer list",
                                "fma (the default)"),
             "pytorch": (f"PyTorch {res['torch']}, OpenBLAS", "PyTorch's")}
    for key, (what, arith) in names.items():
        t = statistics.median(res["epochs"][key])
        comp = res["compile"].get(key)
        ctext = "—" if comp is None else (
            f"{comp[0]:.2f} s, cached " + (f"{comp[1] * 1000:.0f} ms" if comp[1] >= 0.001
                                            else "< 1 ms") if key.startswith("gcc")
            else f"{comp[0] * 1000:.0f} ms")
        lines.append(f"| {what} | {arith} | {t:.3f} | {t / torch:.2f} | {t / roof:.2f} | "
                     f"{max(res['rss'][key]):.0f} MB | {ctext} |")
    tcc = statistics.median(res["epochs"]["tcc strict"])
    layers = statistics.median(res["epochs"]["gcc fma layers"])
    lines += ["", f"The layer list ({LAYERS}) / the shorthand, gcc fma: {layers / gcc:.3f}×.",
              "", f"tcc / gcc (both strict): {tcc / gcc_strict:.2f}×. Targets, gcc in the "
              f"default arithmetic (fma): gcc ≤ 0.2× PyTorch ({gcc / torch:.3f}×), gcc ≤ 2× "
              f"roofline ({gcc / roof:.2f}×), tcc ≤ 3× gcc (both strict: "
              f"{tcc / gcc_strict:.2f}×), peak memory < 100 MB "
              f"({max(max(res['rss'][k]) for k in res['rss'] if k != 'pytorch'):.0f} MB), "
              f"gcc compile < 2 s ({res['compile']['gcc fma'][0]:.2f} s), tcc compile "
              f"< 100 ms ({res['compile']['tcc strict'][0] * 1000:.0f} ms)."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--study", type=int, default=1, help="times to run the study (0: none)")
    ap.add_argument("--only-study", action="store_true", help="time only the study")
    ap.add_argument("--ttr", type=int, default=1, help="rounds of the time to result (0: none)")
    ap.add_argument("--only-ttr", action="store_true", help="time only the time to result")
    a = ap.parse_args()
    if a.only_ttr:
        a.only_study, a.study = True, 0
    os.makedirs(OUT, exist_ok=True)
    res = {"rounds": a.rounds, "epochs_per_run": a.epochs, "machine": machine(),
           "flops": dense_flops()}
    res["torch"] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"],
                                  capture_output=True, text=True).stdout.split("+")[0]
    if not a.only_study:
        epochs(res, a)
    if a.study > 0:
        study(res, a.study)
    if a.ttr > 0:
        res["ttr_rounds"] = a.ttr
        time_to_result(res, a.ttr)
    report = "" if a.only_study else table(res)
    if a.study > 0:
        report += ("\n" if report else f"Machine: {res['machine']}.\n") + study_table(res)
    if a.ttr > 0:
        report += ("\n" if report else f"Machine: {res['machine']}.\n") + ttr_table(res)
    print(report, end="")
    with open(f"{OUT}/results.md", "w") as f:
        f.write(report)
    with open(f"{OUT}/results.json", "w") as f:
        json.dump(res, f, indent=1)


def epochs(res, a):
    """The per-epoch part: sgemm, compile times, then the rounds."""
    subprocess.run(["gcc", "-O2", "bench/sgemm.c", "-o", f"{OUT}/sgemm", "-ldl"], check=True)
    out, _, _ = run_rss([f"{OUT}/sgemm", BLAS] + SGEMM_SIZES)
    s = json.loads(out)
    ver = re.search(r"OpenBLAS ([0-9.]+)", s["config"])
    s["version"] = ver.group(1) if ver else "?"
    s["rates"] = {n: float(r) for n, r in s["rates"].items()}
    s["best"] = max(s["rates"].values())
    res["sgemm"] = s
    res["roofline_seconds"] = sum(res["flops"].values()) / 1e9 / s["best"]
    print(f"bench: sgemm {s['best']:.0f} GFLOP/s ({s['core']})", file=sys.stderr)

    res["compile"] = {"gcc strict": compile_seconds("gcc"), "gcc fma": compile_seconds(
        "gcc", True), "tcc strict": compile_seconds("tcc")}
    configs = {"gcc strict": mlpc_argv("gcc", a.epochs, False),
               "gcc fma": mlpc_argv("gcc", a.epochs, True),
               "tcc strict": mlpc_argv("tcc", a.epochs, False),
               "gcc fma layers": mlpc_argv("gcc", a.epochs, True, LAYERS),
               "pytorch": ["/usr/bin/python3", "bench/torch_mlp.py", f"data/{DATA}",
                           str(a.epochs), "42"]}
    res["epochs"] = {k: [] for k in configs}
    res["rss"] = {k: [] for k in configs}
    for key, argv in configs.items():  # compile into out/cache before timing
        if key != "pytorch":
            run_rss(argv[:argv.index("--epochs")] + ["--epochs", "1", "--max-batches", "1"]
                    + argv[argv.index("--backend"):])
    for r in range(a.rounds):
        for key, argv in configs.items():
            out, _, rss = run_rss(argv)
            res["epochs"][key] += epochs_of(out)
            res["rss"][key].append(rss)

        print(f"bench: round {r + 1} of {a.rounds} done", file=sys.stderr)


if __name__ == "__main__":
    main()
