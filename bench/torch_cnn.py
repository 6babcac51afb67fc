"""torch_cnn.py — the reference CNN (models/cnn.json) in PyTorch, timed as
the benchmark times mlpc: conv2d(16, 3, padding 1) → BatchNorm2d → ReLU →
MaxPool2d(2) → conv2d(32, 3, padding 1) → BatchNorm2d → ReLU →
MaxPool2d(2) → Flatten → Linear(10), kaiming_normal_ weights and zero
biases, SGD lr 0.01 momentum 0.9, batch 32, float32, one thread, the
training set preloaded as tensors (pixels / 255) and shuffled every epoch.

    python3 bench/torch_cnn.py DATA_DIR EPOCHS SEED

Prints one JSON line per epoch: its training loss, the seconds its training
took, and the test accuracy after it (evaluated outside the timing); then
one line describing the setup.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_mlp import idx  # noqa: E402


def images(data, prefix):
    """(n, 1, 28, 28) pixels / 255 and (n) labels of one set."""
    x = torch.frombuffer(bytearray(idx(os.path.join(data, prefix + "-images-idx3-ubyte"), 16)),
                         dtype=torch.uint8).view(-1, 1, 28, 28).float() / 255
    y = torch.frombuffer(bytearray(idx(os.path.join(data, prefix + "-labels-idx1-ubyte"), 8)),
                         dtype=torch.uint8).long()
    return x, y


def model():
    """The reference CNN with its init."""
    nn = torch.nn
    m = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32),
                      nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    for layer in (m[0], m[4], m[9]):
        nn.init.kaiming_normal_(layer.weight)
        nn.init.zeros_(layer.bias)
    return m


def accuracy(m, x, y):
    """Test accuracy in percent, evaluation mode."""
    m.eval()
    with torch.no_grad():
        correct = sum((m(x[b:b + 1000]).argmax(1) == y[b:b + 1000]).sum().item()
                      for b in range(0, len(y), 1000))
    m.train()
    return 100.0 * correct / len(y)


def main():
    data, epochs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x, y = images(data, "train")
    xt, yt = images(data, "t10k")
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    n, batch = x.shape[0], 32
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        perm = torch.randperm(n)
        total, steps = 0.0, 0
        for b in range(0, n, batch):
            i = perm[b:b + batch]
            opt.zero_grad()
            loss = loss_fn(m(x[i]), y[i])
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        seconds = time.perf_counter() - start
        print(json.dumps({"epoch": epoch, "train_loss": total / steps,
                          "train_seconds": seconds, "test_acc": accuracy(m, xt, yt)}),
              flush=True)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "mkldnn": torch.backends.mkldnn.is_available()}), flush=True)


if __name__ == "__main__":
    main()
