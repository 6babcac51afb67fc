"""gcc_cost.py — where gcc's time goes on a model's unit, and what cheaper
ways of compiling it cost in speed (docs/performance.md, "Where gcc's
time goes").

    python3 bench/gcc_cost.py [--model M] [--rounds R] [--epochs E] [--no-epochs]

Run from the repository root after `make build data`. Takes the unit the
gcc backend compiles for the model (from a --backend gcc run in a
temporary directory), then times gcc on it in several ways, R rounds
taken in turns, each figure the least CPU time (user + system, gcc and
its children) of its rounds:

  whole        the backend's command, into a shared object
  syntax       -fsyntax-only: reading the unit
  headers      -fsyntax-only of <math.h> and <immintrin.h> alone
  asm          -S: everything but the assembler and the linker
  own          the model's code with every kernel a prototype (as tcc's
               unit has them), the headers still included
  small        the small kernels inlined, the dense products prototypes
  O2, O2dyn    -O2, and -O2 -fvect-cost-model=dynamic
  noinline     the kernels static inline without always_inline
  pch          the headers from a precompiled header (its build timed
               apart, its size given)

Then, unless --no-epochs, the epoch's training seconds on
data/fashion-mnist (median over E epochs, R rounds in turns) with the
backend's flags, -O2, and -O2 -fvect-cost-model=dynamic. Prints a
Markdown table.
"""
import argparse
import glob
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

FLAGS = ["-std=c11", "-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno",
         "-fno-trapping-math", "-fPIC"]
DENSE = ["mm_xw", "mm_dw", "mm_dw_sgd", "mm_dx"]
MLPC = os.path.abspath("build/mlpc")


def unit_of(model, d):
    """The unit the gcc backend compiles for model, built once in d."""
    env = dict(os.environ, MLPC_DATA=os.path.abspath("data"))
    subprocess.run([MLPC, os.path.abspath(model), "--run", "--backend", "gcc", "--epochs", "1"],
                   cwd=d, env=env, check=True, capture_output=True)
    (src,) = glob.glob(os.path.join(d, "out/cache/*.c"))
    with open(src) as f:
        return f.read()


def prototypes(src, names):
    """src with the named kernels' definitions turned into prototypes."""
    for name in names:
        m = re.search(r"^MLPC_KERNEL (\w+) " + name + r"\(", src, re.M)
        body = src.index("{", m.end())
        depth, i = 0, body
        while True:
            depth += {"{": 1, "}": -1}.get(src[i], 0)
            i += 1
            if depth == 0:
                break
        src = src[:m.start()] + src[m.start() + len("MLPC_KERNEL "):body].rstrip() + ";" + \
            src[i:]
    return src


def cpu(argv, cwd):
    """The CPU seconds of argv and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def cases(src, d):
    """name -> (argv, description); writes the files they compile into d."""
    def put(name, text):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        return name
    put("unit.c", src)
    put("own.c", "#include <immintrin.h>\n#define MLPC_KERNEL_PROTOTYPES\n" + src)
    put("small.c", prototypes(src, DENSE))
    put("headers.c", "#include <math.h>\n#include <immintrin.h>\n")
    put("pch.h", "#include <math.h>\n#include <immintrin.h>\n")
    so = ["-shared", "-o", "x.so", "-lm"]
    return {
        "whole": (["gcc"] + FLAGS + ["unit.c"] + so, "the whole unit, into a shared object"),
        "syntax": (["gcc"] + FLAGS + ["-fsyntax-only", "unit.c"], "parsing it all "
                   "(`-fsyntax-only`)"),
        "headers": (["gcc"] + FLAGS + ["-fsyntax-only", "headers.c"], "of which `<math.h>` "
                    "and `<immintrin.h>` alone"),
        "asm": (["gcc"] + FLAGS + ["-S", "-o", "x.s", "unit.c"], "all but the assembler and "
                "linker (`-S`)"),
        "own": (["gcc"] + FLAGS + ["own.c"] + so, "the model's own code, every kernel a "
                "prototype, headers included"),
        "small": (["gcc"] + FLAGS + ["small.c"] + so, "the small kernels inlined, the dense "
                  "products (" + ", ".join(DENSE) + ") not"),
        "O2": (["gcc"] + FLAGS + ["-O2", "unit.c"] + so, "`-O2`"),
        "O2dyn": (["gcc"] + FLAGS + ["-O2", "-fvect-cost-model=dynamic", "unit.c"] + so,
                  "`-O2 -fvect-cost-model=dynamic`"),
        "noinline": (["gcc"] + FLAGS + ["-DMLPC_KERNEL=static inline", "unit.c"] + so,
                     "kernels `static inline`, not `always_inline`"),
        "pch": (["gcc"] + FLAGS + ["-I", "pch", "-include", "pch.h", "unit.c"] + so,
                "with a precompiled header of both headers"),
        "pch_build": (["gcc"] + FLAGS + ["-x", "c-header", "pch.h", "-o", "pch/pch.h.gch"],
                      "building that precompiled header"),
    }


def compile_times(src, rounds):
    """The least CPU seconds of each case over rounds taken in turns."""
    d = tempfile.mkdtemp(prefix="mlpc-gcc-")
    try:
        os.mkdir(os.path.join(d, "pch"))
        cs = cases(src, d)
        best = {k: float("inf") for k in cs}
        for r in range(rounds):
            for k in cs:
                best[k] = min(best[k], cpu(cs[k][0], d))
            print(f"gcc_cost: compile round {r + 1}/{rounds}", file=sys.stderr)
        size = os.path.getsize(os.path.join(d, "pch/pch.h.gch"))
        return {k: (best[k], cs[k][1]) for k in cs}, size
    finally:
        shutil.rmtree(d)


def epoch_seconds(model, extra, epochs, d):
    """The training seconds of each epoch on fashion-mnist, gcc's object
    built with the extra flags (cached in d beforehand)."""
    env = dict(os.environ, MLPC_DATA=os.path.abspath("data"), MLPC_GCC_EXTRA_FLAGS=extra)
    out = subprocess.run([MLPC, os.path.abspath(model), "--run", "--json", "--backend", "gcc",
                          "--data", "fashion-mnist", "--epochs", str(epochs)], cwd=d, env=env,
                         check=True, capture_output=True, text=True).stdout
    return [float(x) for x in re.findall(r'"train_seconds": ([0-9.]+)', out)]


def epoch_times(model, rounds, epochs):
    """Median epoch seconds per set of flags, rounds in turns."""
    flags = {"-O3 (the backend's)": "", "-O2": "-O2",
             "-O2 -fvect-cost-model=dynamic": "-O2 -fvect-cost-model=dynamic"}
    d = tempfile.mkdtemp(prefix="mlpc-gcc-")
    try:
        secs = {k: [] for k in flags}
        for k, extra in flags.items():  # builds the objects, untimed
            epoch_seconds(model, extra, 1, d)
        for r in range(rounds):
            for k, extra in flags.items():
                secs[k] += epoch_seconds(model, extra, epochs, d)
            print(f"gcc_cost: epoch round {r + 1}/{rounds}", file=sys.stderr)
        return {k: (statistics.median(v), min(v)) for k, v in secs.items()}
    finally:
        shutil.rmtree(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/bn_relu.json")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--no-epochs", action="store_true")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="mlpc-gcc-")
    try:
        src = unit_of(a.model, d)
    finally:
        shutil.rmtree(d)
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    print(f"{a.model}: a unit of {src.count(chr(10))} lines; {gcc.splitlines()[0]}; "
          f"CPU seconds, least of {a.rounds}\n")
    times, size = compile_times(src, a.rounds)
    print("| case | what gcc does | CPU s |\n|---|---|---|")
    for k, (t, what) in times.items():
        print(f"| {k} | {what} | {t:.2f} |")
    print(f"\nThe precompiled header: {size / 1e6:.1f} MB.")
    if not a.no_epochs:
        print(f"\nTraining seconds of an epoch on data/fashion-mnist (median and least of "
              f"{a.rounds} × {a.epochs} epochs):\n\n| flags | median | least |\n|---|---|---|")
        for k, (med, least) in epoch_times(a.model, a.rounds, a.epochs).items():
            print(f"| {k} | {med:.3f} | {least:.3f} |")


if __name__ == "__main__":
    main()
