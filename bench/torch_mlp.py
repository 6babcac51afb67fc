"""torch_mlp.py — the seed's model in PyTorch, timed as the benchmark times
mlpc: 784-128-10, BatchNorm1d, ReLU, kaiming_normal_ weights and zero
biases, SGD lr 0.01, batch 32, float32, one thread, the training set
preloaded as tensors (pixels / 255) and shuffled every epoch.

    python3 bench/torch_mlp.py DATA_DIR EPOCHS SEED

Prints one JSON line per epoch: its training loss and the seconds its
training took (no evaluation), then one line describing the setup.
"""
import gzip
import json
import os
import sys
import time

import torch


def idx(path, offset):
    """The bytes of an IDX file (raw or .gz) after its header."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()[offset:]
    with gzip.open(path + ".gz", "rb") as f:
        return f.read()[offset:]


def main():
    data, epochs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x = torch.frombuffer(bytearray(idx(os.path.join(data, "train-images-idx3-ubyte"), 16)),
                         dtype=torch.uint8).view(-1, 784).float() / 255
    y = torch.frombuffer(bytearray(idx(os.path.join(data, "train-labels-idx1-ubyte"), 8)),
                         dtype=torch.uint8).long()
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.BatchNorm1d(128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 10))
    for layer in (model[0], model[3]):
        torch.nn.init.kaiming_normal_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    n, batch = x.shape[0], 32
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        perm = torch.randperm(n)
        total, steps = 0.0, 0
        for b in range(0, n, batch):
            i = perm[b:b + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[i]), y[i])
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        seconds = time.perf_counter() - start
        print(json.dumps({"epoch": epoch, "train_loss": total / steps,
                          "train_seconds": seconds}), flush=True)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "blas": torch.__config__.show().count("BLAS_INFO=generic") and
                      "generic (libblas.so.3)" or "built in"}))


if __name__ == "__main__":
    main()
