#!/usr/bin/python3
"""torch_ref.py — PyTorch's figures for the blobs model on float data.

Run by hand with Debian's python3-torch (1.13), after gen.py; the tests
read what it writes and need no Python:

    /usr/bin/python3 tests/arrays/torch_ref.py

For tests/arrays/blobs.json (4-16-3, ReLU, SGD lr 0.05, batches of 16)
on tests/arrays/blobs_npy, in float32 and in float64, it writes under
tests/arrays/blobs_torch/:

    init.f32.safetensors, init.f64.safetensors
                  the initial weights (torch.manual_seed(0), nn.Linear's own)
    ref.json      {"f32": {"train_loss": ..., "test_loss": ..., "test_acc": ...},
                   "f64": {...}}: the mean loss of 4 SGD steps on the first
                  64 training samples in file order, then the loss and
                  accuracy in eval mode on the first 64 test samples, as
                  `mlpc --no-shuffle --max-batches 4 --epochs 1` computes them
"""
import json
import os
import struct
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'blobs_torch')


def write_st(path, tensors, dtype):
    """A safetensors file of the tensors, in F32 or F64."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().numpy().astype('<f4' if dtype == 'F32' else '<f8').tobytes()
        header[name] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def figures(dtype, tag):
    """Trains 4 steps and evaluates 4 batches, as mlpc does."""
    load = lambda n: torch.from_numpy(np.load(os.path.join(HERE, 'blobs_npy', n)))
    xtr, ytr = load('train_x.npy').to(dtype), load('train_y.npy')
    xte, yte = load('test_x.npy').to(dtype), load('test_y.npy')
    torch.manual_seed(0)
    fc1, fc2 = torch.nn.Linear(4, 16).to(dtype), torch.nn.Linear(16, 3).to(dtype)
    net = torch.nn.Sequential(fc1, torch.nn.ReLU(), fc2)
    params = {'fc1.weight': fc1.weight, 'fc1.bias': fc1.bias, 'fc2.weight': fc2.weight,
              'fc2.bias': fc2.bias}
    write_st(os.path.join(OUT, 'init.%s.safetensors' % tag), params, tag.upper())
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    losses = []
    for b in range(4):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xtr[16 * b:16 * b + 16]),
                                                 ytr[16 * b:16 * b + 16])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        z = net(xte[:64])
        test_loss = torch.nn.functional.cross_entropy(z, yte[:64]).item()
        acc = (z.argmax(1) == yte[:64]).double().mean().item()
    return {'train_loss': float(np.mean(losses)), 'test_loss': test_loss, 'test_acc': acc}


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    ref = {'f32': figures(torch.float32, 'f32'), 'f64': figures(torch.float64, 'f64')}
    with open(os.path.join(OUT, 'ref.json'), 'w') as f:
        json.dump(ref, f, indent=1)
        f.write('\n')
