"""torch_study.py — models/seed_study.json in PyTorch: its 10 experiments ×
3 seeds = 30 runs, each trained and evaluated as mlpc does, on two
processes. The base (models/seed_base.json): 784-128-10, tanh, no norm,
every parameter ~ N(0, 1), SGD lr 0.01, batch 32, 10 epochs; each
experiment changes one of init (kaiming_normal: W ~ N(0, 2/fan_in), biases
0, γ 1, β 0), activation (relu), norm (BatchNorm1d, LayerNorm, placed
linear → norm → activation) or optimizer (RMSprop lr 0.01, Adam lr 0.01).
The data is loaded once as tensors (pixels / 255) before the workers
fork; every worker runs one thread, shuffles every epoch and evaluates on
the whole test set after every epoch. Unlike mlpc, every row is trained:
the base's runs, shared by four rows, are trained four times.

    python3 bench/torch_study.py DATA_DIR [JOBS] [EPOCHS]

Prints one JSON line per run, then one with the wall-clock seconds from
the first run's start to the last one's end.
"""
import gzip
import json
import multiprocessing
import os
import sys
import time

import torch

EXPERIMENTS = [("init", "normal"), ("init", "kaiming_normal"),
               ("activation", "tanh"), ("activation", "relu"),
               ("norm", "none"), ("norm", "batchnorm"), ("norm", "layernorm"),
               ("optimizer", "sgd"), ("optimizer", "rmsprop"), ("optimizer", "adam")]
SEEDS = [0, 1, 2]
DATA = {}


def idx(path, offset):
    """The bytes of an IDX file (raw or .gz) after its header."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()[offset:]
    with gzip.open(path + ".gz", "rb") as f:
        return f.read()[offset:]


def load(data, name):
    """A set's images (n, 784) as floats / 255 and its labels."""
    x = torch.frombuffer(bytearray(idx(os.path.join(data, name + "-images-idx3-ubyte"), 16)),
                         dtype=torch.uint8).view(-1, 784).float() / 255
    y = torch.frombuffer(bytearray(idx(os.path.join(data, name + "-labels-idx1-ubyte"), 8)),
                         dtype=torch.uint8).long()
    return x, y


def model_of(cfg):
    """The experiment's network, initialised as mlpc initialises it."""
    act = torch.nn.ReLU() if cfg["activation"] == "relu" else torch.nn.Tanh()
    layers = [torch.nn.Linear(784, 128)]
    if cfg["norm"] == "batchnorm":
        layers.append(torch.nn.BatchNorm1d(128))
    elif cfg["norm"] == "layernorm":
        layers.append(torch.nn.LayerNorm(128))
    layers += [act, torch.nn.Linear(128, 10)]
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Linear) and cfg["init"] == "kaiming_normal":
                torch.nn.init.kaiming_normal_(m.weight)
                torch.nn.init.zeros_(m.bias)
            elif cfg["init"] == "normal":
                for p in m.parameters():
                    torch.nn.init.normal_(p, 0.0, 1.0)
    return model


def optimizer_of(cfg, params):
    """The experiment's optimizer, lr 0.01 as in the study."""
    kind = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
            "adam": torch.optim.Adam}[cfg["optimizer"]]
    return kind(params, lr=0.01)


def run(task):
    """Trains one (experiment, seed) for the epochs; returns its figures."""
    (key, value), seed, epochs = task
    torch.set_num_threads(1)
    cfg = {"init": "normal", "activation": "tanh", "norm": "none", "optimizer": "sgd"}
    cfg[key] = value
    start = time.perf_counter()
    torch.manual_seed(seed)
    model, loss_fn = model_of(cfg), torch.nn.CrossEntropyLoss()
    opt = optimizer_of(cfg, model.parameters())
    x, y, tx, ty = DATA["train"] + DATA["test"]
    n, batch = x.shape[0], 32
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n)
        for b in range(0, n, batch):
            i = perm[b:b + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[i]), y[i])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(tx)
            test_loss = loss_fn(out, ty).item()
            acc = (out.argmax(1) == ty).float().mean().item() * 100
    return {"experiment": f"{key}={value}", "seed": seed, "test_loss": test_loss,
            "test_acc": acc, "seconds": time.perf_counter() - start}


def main():
    data = sys.argv[1]
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    torch.set_num_threads(1)
    DATA["train"], DATA["test"] = load(data, "train"), load(data, "t10k")
    tasks = [(e, s, epochs) for e in EXPERIMENTS for s in SEEDS]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for r in pool.imap_unordered(run, tasks):
            print(json.dumps(r), flush=True)
    print(json.dumps({"runs": len(tasks), "jobs": jobs, "epochs": epochs,
                      "wall_seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
