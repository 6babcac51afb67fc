"""test_python.py — python/mlpc.py against the mlpc binary it runs.

Run by ctest from the source directory (MLPC_BIN names the binary):
a run's epochs and summary are the very numbers of `mlpc --json`; a
model as a dict trains as its file does; flags reach the command line;
bad input raises MlpcError with mlpc's message and exit status 2; a
diverged run is returned, not raised; a study returns summary.csv's
table; load_db reads every table of the database. Without pandas the
tables are lists of dicts; with it, DataFrames of the same values.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import mlpc  # noqa: E402

MODEL = {"name": "py_small", "hidden": [16], "norm": "batchnorm", "activation": "relu",
         "init": "kaiming_normal", "optimizer": {"type": "sgd", "lr": 0.05},
         "batch_size": 32, "epochs": 2, "seed": 3, "data": "mnist"}
FAST = {"backend": "tcc", "max_batches": 6}


def figures(objs):
    """JSON objects without their timings, which differ from run to run."""
    return [{k: v for k, v in o.items() if "seconds" not in k} for o in objs]


def rows(t):
    """A table as a list of dicts, whichever form it has."""
    return t.to_dict("records") if mlpc.pandas is not None else t


def cli_json(path, *args):
    """The JSON lines `mlpc PATH --run --json ARGS` prints."""
    out = subprocess.run([mlpc.binary(), path, "--run", "--json", *args], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         universal_newlines=True).stdout
    return [json.loads(l) for l in out.splitlines()]


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="test_python-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, obj):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            json.dump(obj, f)
        return path


class RunTest(Base):
    def test_dict_and_file_give_the_cli_numbers(self):
        path = self.write("py_small.json", MODEL)
        want = cli_json(path, "--backend", "tcc", "--max-batches", "6")
        for model in (MODEL, path):
            r = mlpc.run(model, **FAST)
            self.assertEqual(figures(rows(r.epochs)), figures(o for o in want if "epoch" in o))
            self.assertEqual(figures([r.summary]), figures(want[-1:]))
            self.assertIn("py_small", r.log)

    def test_flags_reach_the_command_line(self):
        self.assertEqual(mlpc.flag_args({"max_batches": 5, "no_shuffle": True, "fma": False,
                                         "seed": None, "lr": 0.5}),
                         ["--max-batches", "5", "--no-shuffle", "--lr", "0.5"])
        r = mlpc.run(MODEL, epochs=1, no_shuffle=True, **FAST)
        self.assertEqual(len(rows(r.epochs)), 1)
        self.assertEqual(r.summary["epochs"], 1)

    def test_bad_input_raises_with_message_and_status(self):
        bad = dict(MODEL, hidden=[16, -3])
        with self.assertRaises(mlpc.MlpcError) as e:
            mlpc.run(bad, **FAST)
        self.assertEqual(e.exception.status, 2)
        self.assertIn("hidden[1]", e.exception.message)
        with self.assertRaises(mlpc.MlpcError) as e:
            mlpc.run(MODEL, epochs="many", **FAST)
        self.assertEqual(e.exception.status, 2)
        self.assertIn("--epochs", e.exception.message)
        with self.assertRaises(mlpc.MlpcError) as e:
            mlpc.run(os.path.join(self.dir, "absent.json"))
        self.assertEqual(e.exception.status, 2)

    def test_a_diverged_run_is_a_result(self):
        wild = dict(MODEL, norm="none", init="normal", optimizer={"type": "sgd", "lr": 1e30})
        r = mlpc.run(wild, **FAST)
        self.assertTrue(r.summary["diverged"])

    def test_a_missing_binary_raises(self):
        old = os.environ.get("MLPC_BIN")
        os.environ["MLPC_BIN"] = os.path.join(self.dir, "no-mlpc")
        try:
            with self.assertRaises(mlpc.MlpcError) as e:
                mlpc.run(MODEL)
            self.assertEqual(e.exception.status, 127)
        finally:
            os.environ["MLPC_BIN"] = old


class StudyTest(Base):
    def test_study_summary_and_database(self):
        s = self.write("py_study.json", {"name": "py_study", "base": MODEL,
                                         "vary": {"activation": ["tanh", "relu"]},
                                         "seeds": [0, 1]})
        db, out = os.path.join(self.dir, "r.sqlite"), os.path.join(self.dir, "out")
        t = rows(mlpc.study(s, db=db, out=out, jobs=1, epochs=1, **FAST))
        self.assertEqual([r["experiment"] for r in t], ["activation=tanh", "activation=relu"])
        self.assertEqual([r["seeds"] for r in t], [2, 2])
        tables = mlpc.load_db(db)
        runs = rows(tables["runs"])
        self.assertEqual(len(runs), 4)
        # the summary's mean is the mean of the database's figures
        by_id = {r["id"]: r for r in runs}
        links = [l for l in rows(tables["study_runs"]) if l["experiment"] == "activation=tanh"]
        mean = sum(by_id[l["run_id"]]["test_loss"] for l in links) / len(links)
        self.assertAlmostEqual(t[0]["test_loss_mean"], mean, places=12)
        with self.assertRaises(mlpc.MlpcError) as e:
            mlpc.study(s, db=db, out=out, jobs=0)
        self.assertEqual(e.exception.status, 2)
        with self.assertRaises(mlpc.MlpcError):
            mlpc.load_db(os.path.join(self.dir, "none.sqlite"))


if __name__ == "__main__":
    unittest.main()
