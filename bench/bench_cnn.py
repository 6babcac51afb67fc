"""bench_cnn.py — mlpc's speed on the reference CNN (models/cnn.json), next
to PyTorch's and the machine's sgemm roofline (docs/performance.md,
"Convolutions").

    python3 bench/bench_cnn.py [--rounds R] [--epochs E] [--accuracy-epochs A]

Run from the repository root after `make build data` (`make bench` runs
it after bench.py). Each round trains the CNN on Fashion-MNIST for E
epochs with mlpc's gcc backend (fma, the default) and with PyTorch, in
turn, and one epoch with the tcc backend (limited to a fifth of the
batches: its seconds are scaled to the epoch); a configuration's figure
is the median seconds per training epoch (evaluation excluded). Then one
run of A epochs each of mlpc and PyTorch gives the test accuracies to
compare. Peak resident memory of every run is recorded. Prints a Markdown
report and writes it, with the raw figures, to out/bench/cnn.*.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BLAS, OUT, SGEMM_SIZES, machine, run_rss  # noqa: E402

MODEL = "models/cnn.json"
DATA = "fashion-mnist"
SAMPLES, BATCH = 60000, 32
# (in channels, out channels, kernel, output height·width, needs an input gradient)
CONVS = [(1, 16, 9, 28 * 28, False), (16, 32, 9, 14 * 14, True)]
LINEAR = (32 * 7 * 7, 10)


def flops():
    """The dense FLOP of one training epoch: every convolution's forward,
    weight gradient and (but the first's) input gradient, 2 per multiply-
    add, and the linear layer's three products. Norms, pooling,
    activations, the loss and the update are not counted."""
    fwd = bwd = 0
    for c, o, k, p, dx in CONVS:
        macs = SAMPLES * c * o * k * p
        fwd += 2 * macs
        bwd += 2 * macs * (2 if dx else 1)
    i, o = LINEAR
    fwd += 2 * SAMPLES * i * o
    bwd += 4 * SAMPLES * i * o
    return {"forward": fwd, "backward": bwd}


def mlpc(backend, epochs, extra=()):
    """The command line of one timed mlpc run."""
    return ["build/mlpc", MODEL, "--run", "--json", "--data", DATA, "--epochs", str(epochs),
            "--backend", backend, *extra]


def lines(out):
    """The per-epoch JSON objects of a run's output."""
    return [json.loads(l) for l in out.splitlines() if l.startswith("{\"epoch\"")]


def sgemm():
    """The single-core sgemm rate, GFLOP/s (bench/sgemm.c on OpenBLAS)."""
    subprocess.run(["gcc", "-O2", "bench/sgemm.c", "-o", f"{OUT}/sgemm", "-ldl"], check=True)
    out, _, _ = run_rss([f"{OUT}/sgemm", BLAS] + SGEMM_SIZES)
    return max(float(r) for r in json.loads(out)["rates"].values())


def measure(a):
    """The rounds, then the accuracy runs."""
    res = {"machine": machine(), "flops": flops(), "sgemm": sgemm(), "rounds": a.rounds,
           "epochs_per_run": a.epochs, "epochs": {}, "rss": {}}
    tcc_batches = SAMPLES // BATCH // 5
    configs = {"gcc": mlpc("gcc", a.epochs),
               "tcc": mlpc("tcc", 1, ["--max-batches", str(tcc_batches)]),
               "pytorch": ["/usr/bin/python3", "bench/torch_cnn.py", f"data/{DATA}",
                           str(a.epochs), "0"]}
    run_rss(mlpc("gcc", 1, ["--max-batches", "1"]))  # compile into the cache first
    for key in configs:
        res["epochs"][key], res["rss"][key] = [], []
    for r in range(a.rounds):
        for key, argv in configs.items():
            out, _, rss = run_rss(argv)
            scale = (SAMPLES / BATCH) / tcc_batches if key == "tcc" else 1
            res["epochs"][key] += [e["train_seconds"] * scale for e in lines(out)]
            res["rss"][key].append(rss)
        print(f"bench_cnn: round {r + 1} of {a.rounds} done", file=sys.stderr)
    out, _, rss = run_rss(mlpc("gcc", a.accuracy_epochs))
    res["acc_mlpc"] = [100 * e["test_acc"] for e in lines(out)]
    res["rss"]["gcc"].append(rss)
    out, _, _ = run_rss(configs["pytorch"][:3] + [str(a.accuracy_epochs), "0"])
    res["acc_torch"] = [e["test_acc"] for e in lines(out)]
    return res


def table(res):
    """The report, in Markdown."""
    med = {k: statistics.median(v) for k, v in res["epochs"].items()}
    gflop = sum(res["flops"].values()) / 1e9
    roof = gflop / res["sgemm"]
    am, at = res["acc_mlpc"][-1], res["acc_torch"][-1]
    rows = [("mlpc, gcc backend (fma)", "gcc"), ("mlpc, tcc backend (fma)", "tcc"),
            ("PyTorch, OpenBLAS, 1 thread", "pytorch")]
    out = [
        f"Model: {MODEL} on data/{DATA}: 1x28x28, conv 16 → BN2d → ReLU → maxpool 2 → "
        "conv 32 → BN2d → ReLU → maxpool 2 → linear 10, kaiming_normal, SGD lr 0.01 "
        "momentum 0.9, batch 32, float32, 60,000 training images shuffled every epoch.",
        f"Machine: {res['machine']}.",
        f"Method: {res['rounds']} rounds, gcc and PyTorch {res['epochs_per_run']} epochs "
        "each, tcc one fifth of an epoch (scaled); seconds per training epoch, median.",
        f"Roofline: {gflop:.1f} GFLOP of dense arithmetic per epoch (forward "
        f"{res['flops']['forward'] / 1e9:.1f}, backward {res['flops']['backward'] / 1e9:.1f})"
        f" at sgemm's {res['sgemm']:.0f} GFLOP/s: {roof:.2f} s.",
        "",
        "| configuration | s/epoch | × PyTorch | × roofline | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for name, key in rows:
        out.append(f"| {name} | {med[key]:.2f} | {med[key] / med['pytorch']:.3f} | "
                   f"{med[key] / roof:.2f} | {max(res['rss'][key]):.0f} MB |")
    ne = len(res["acc_mlpc"])
    if ne >= 5:
        gap = abs(res["acc_mlpc"][4] - res["acc_torch"][4])
        acc = f"accuracy within 0.5 points after 5 epochs ({gap:.2f})"
    else:
        acc = "accuracy after 5 epochs not measured (--accuracy-epochs 5)"
    out += ["", f"Test accuracy after {ne} epoch{'s' if ne > 1 else ''}: mlpc {am:.2f}%, "
            f"PyTorch {at:.2f}% (difference {am - at:+.2f} points).", "",
            f"Targets: gcc ≤ 0.25× PyTorch ({med['gcc'] / med['pytorch']:.3f}×), gcc ≤ 2× "
            f"roofline ({med['gcc'] / roof:.2f}×), tcc ≤ 3× gcc ({med['tcc'] / med['gcc']:.2f}×),"
            f" peak memory < 150 MB ({max(max(res['rss']['gcc']), max(res['rss']['tcc'])):.0f}"
            f" MB), {acc}."]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--accuracy-epochs", type=int, default=5)
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    res = measure(a)
    report = table(res)
    print(report, end="")
    with open(f"{OUT}/cnn.md", "w") as f:
        f.write(report)
    with open(f"{OUT}/cnn.json", "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
