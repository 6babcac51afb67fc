"""mlpc.py — mlpc from Python, for notebooks (docs/python.md).

    import mlpc
    r = mlpc.run("models/bn_relu.json", epochs=3, backend="tcc")
    r.epochs          # one row per epoch: epoch, train_loss, test_loss, ...
    r.summary         # the summary: final figures, diverged, seconds
    s = mlpc.study("models/seed_study.json", jobs=2)   # the summary table
    db = mlpc.load_db("out/mlpc.sqlite")                # every table

It runs the mlpc binary and reads what it writes: `--json` for a run,
summary.csv for a study, the SQLite database. The standard library only;
tables are pandas DataFrames when pandas can be imported, else lists of
dicts. The binary is $MLPC_BIN, else `mlpc` on PATH, else build/mlpc
beside this file's directory.

Flags are keyword arguments, named as on the command line with dashes
as underscores: `max_batches=5` is `--max-batches 5`; True gives a flag
alone (`no_shuffle=True`), False or None leaves it out. A model is a
path or a dict (written to a temporary file; paths in it, such as
"data", are read from the current directory, as mlpc reads them).

mlpc's errors raise MlpcError, carrying its message and exit status. A
run that diverges is a result, not an error: its summary says
"diverged": true.
"""
import contextlib
import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile

try:
    import pandas
except ImportError:
    pandas = None

__all__ = ["MlpcError", "Run", "run", "study", "load_db"]


class MlpcError(Exception):
    """mlpc failed: message (its error lines), status (its exit status),
    stderr (all it wrote there)."""

    def __init__(self, message, status, stderr=""):
        super().__init__(f"{message} (exit status {status})")
        self.message, self.status, self.stderr = message, status, stderr


class Run:
    """One trained model: epochs (a table, one row per epoch), summary
    (a dict), log (what mlpc wrote to stderr: its header and notes)."""

    def __init__(self, epochs, summary, log):
        self.epochs, self.summary, self.log = epochs, summary, log

    def __repr__(self):
        return f"Run(epochs={len(self.epochs)}, summary={self.summary!r})"


def binary():
    """The path of the mlpc binary to run."""
    env = os.environ.get("MLPC_BIN")
    if env:
        return env
    found = shutil.which("mlpc")
    if found:
        return found
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "build", "mlpc")


def flag_args(flags):
    """The command line of keyword flags, in their order."""
    args = []
    for key, value in flags.items():
        if value is None or value is False:
            continue
        args.append("--" + key.replace("_", "-"))
        if value is not True:
            args.append(str(value))
    return args


def table(rows):
    """rows (a list of dicts) as a DataFrame when pandas is there."""
    return pandas.DataFrame(rows) if pandas is not None else rows


def errors(stderr):
    """mlpc's error lines, or the end of stderr when it printed none."""
    lines = [l for l in stderr.splitlines() if l.startswith("mlpc: error")]
    return "\n".join(lines) if lines else "\n".join(stderr.splitlines()[-5:])


def call(args):
    """Runs mlpc with args; (stdout, stderr, exit status)."""
    try:
        p = subprocess.run([binary()] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
    except OSError as e:
        raise MlpcError(f"cannot run {binary()}: {e.strerror}", 127) from None
    return p.stdout, p.stderr, p.returncode


def with_model_file(model, fn):
    """fn(path) for model, a path or a dict written to a temporary file."""
    if not isinstance(model, dict):
        return fn(os.fspath(model))
    name = model.get("name", "model") if isinstance(model.get("name"), str) else "model"
    with tempfile.TemporaryDirectory(prefix="mlpc-") as d:
        path = os.path.join(d, re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".json")
        with open(path, "w") as f:
            json.dump(model, f, indent=1)
        return fn(path)


def run(model, **flags):
    """Compiles and trains model (a path or a dict); a Run."""
    def go(path):
        out, err, status = call([path, "--run", "--json"] + flag_args(flags))
        objs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        summary = next((o for o in objs if o.get("summary")), None)
        if status != 0 and not (summary and summary.get("diverged")):
            raise MlpcError(errors(err), status, err)
        if summary is None:
            raise MlpcError("mlpc printed no summary", status, err)
        return Run(table([o for o in objs if "epoch" in o and not o.get("summary")]),
                   summary, err)
    return with_model_file(model, go)


def number(text):
    """A CSV field as an int, a float, None (empty) or the text."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_csv(path):
    """A CSV file of mlpc's as a table, its numbers as numbers."""
    if pandas is not None:
        return pandas.read_csv(path)
    with open(path, newline="") as f:
        return [{k: number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def study(path, **flags):
    """Runs the study at path (what is missing from its database) and
    returns its summary table (summary.csv: one row per experiment)."""
    out, err, status = call([os.fspath(path), "--run"] + flag_args(flags))
    if status != 0:
        raise MlpcError(errors(err), status, err)
    m = re.search(r"^report: (.*)/report\.md \(", out, re.M)
    if not m:
        raise MlpcError("mlpc did not say where it wrote the report", status, err)
    return read_csv(os.path.join(m.group(1), "summary.csv"))


def load_db(path):
    """Every table of a results database, by name."""
    if not os.path.isfile(path):
        raise MlpcError(f"{path}: no such database", 2)
    uri = "file:" + os.path.abspath(path) + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        names = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        tables = {}
        for name in names:
            cur = db.execute(f'SELECT * FROM "{name}"')
            cols = [c[0] for c in cur.description]
            tables[name] = table([dict(zip(cols, row)) for row in cur])
    return tables
