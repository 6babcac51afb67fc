#!/usr/bin/python3
"""gen.py — the data files tests/test_data.c reads, written by NumPy.

Run by hand with Debian's python3-numpy (1.24); the tests read the files
committed beside this script and need no Python:

    /usr/bin/python3 tests/arrays/gen.py

It writes, under tests/arrays/:

    blobs_npy/    a tabular data set, not images: 3 classes of 4 features
                  (Gaussian blobs), 300 train and 100 test samples, x
                  float64 (N, 4), y int64 (N,)
    blobs_csv/    the same samples as CSV: train.csv with a header line,
                  test.csv without, each value as repr() writes it
    c3_8x8_npy/   tests/reference/data/c3_8x8 (IDX, 3 x 8 x 8 images) as
                  arrays: x uint8 (N, 3, 8, 8), y uint8 (N,)
    npy/CASE_x.npy, npy/CASE_y.npy
                  one array per case, 5 samples; x[i, j] (j counted over a
                  sample's elements in C order) is ((i * 37 + j * 5 + 1) % 251)
                  / 8 for floats (exact in float32), the same without / 8 for
                  uint8; y[i] = i % 10
"""
import os
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
N = 5


def path(*names):
    p = os.path.join(HERE, *names)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def values(shape, dtype):
    """x of the given shape, element j of sample i as the docstring says."""
    n = int(np.prod(shape[1:]))
    i = np.arange(shape[0]).reshape(-1, 1)
    j = np.arange(n).reshape(1, -1)
    v = (i * 37 + j * 5 + 1) % 251
    if np.dtype(dtype).kind == 'f':
        v = v / 8.0
    return v.astype(dtype).reshape(shape)


def labels(dtype, n=N):
    return (np.arange(n) % 10).astype(dtype)


def save(case, x=None, y=None, version=None):
    """CASE_x.npy and CASE_y.npy (5 labels of int64 unless given)."""
    y = labels('<i8') if y is None else y
    for name, a in (('x', x), ('y', y)):
        if a is None:
            continue
        with open(path('npy', '%s_%s.npy' % (case, name)), 'wb') as f:
            if version is None:
                np.save(f, a, allow_pickle=name == 'x' and a.dtype == object)
            else:
                np.lib.format.write_array(f, a, version=version)


def valid_cases():
    save('u1', values((N, 3, 4), 'u1'), labels('u1'))
    save('u1flat', values((N, 12), 'u1'))
    save('nchw', values((N, 3, 5, 4), 'u1'))
    save('f4', values((N, 12), '<f4'))
    save('f8', values((N, 12), '<f8'))
    save('f4be', values((N, 3, 4), '>f4'))
    save('f8be', values((N, 12), '>f8'))
    save('v2', values((N, 12), '<f4'), labels('<i4'), version=(2, 0))
    for t in ('i1', '<i2', '>i2', '<i4', '>i4', '<i8', '>i8', 'u1', '<u2', '>u4', '<u8',
              '>u8'):
        save('y' + t.replace('<', 'le').replace('>', 'be'), values((N, 12), 'u1'), labels(t))


def refused_cases():
    x = values((N, 12), '<f4')
    save('fortran', np.asfortranarray(values((N, 3, 4), '<f4')))
    save('f2', values((N, 12), '<f2'))
    save('bool', values((N, 12), 'u1') > 100)
    save('i8x', values((N, 12), '<i8'))
    save('c8', values((N, 12), '<f4').astype('<c8'))
    save('struct', np.zeros(N, dtype=[('a', '<f4'), ('b', '<i4')]))
    save('object', np.array([1.5, 'a', None, 2, 3], dtype=object))
    save('flat1', values((N, 12), '<f4')[:, 0].copy())
    save('five', values((N, 1, 2, 3, 2), 'u1'))
    save('scalar', np.array(3.5, '<f8'))
    save('empty', np.zeros((0, 12), '<f4'))
    save('yf8', x, labels('<f8'))
    save('y2d', x, labels('<i8').reshape(N, 1))
    save('yfew', x, labels('<i8', N - 1))
    y = labels('<i8')
    y[3] = 10
    save('ybig', x, y)
    y[3] = -1
    save('yneg', x, y)
    y = labels('<u8')
    y[2] = 2**64 - 1
    save('yhuge', x, y)
    for case, value in (('nan', np.nan), ('inf', np.inf), ('ninf', -np.inf)):
        x = values((N, 12), '<f4')
        x[1, 7] = value
        save(case, x)
    x = values((N, 12), '<f8')
    x[2, 3] = 1e300
    save('f8big', x)


def blobs():
    """Three Gaussian blobs in 4 dimensions, 300 + 100 samples."""
    rng = np.random.default_rng(7)
    centers = np.array([[0, 0, 0, 0], [3, 3, 0, 1], [0, 3, 3, -2]], float)
    sets = {}
    for name, n in (('train', 300), ('test', 100)):
        y = rng.integers(0, 3, n)
        x = centers[y] + rng.normal(0, 1, (n, 4))
        sets[name] = (x, y.astype('<i8'))
        np.save(path('blobs_npy', name + '_x.npy'), x)
        np.save(path('blobs_npy', name + '_y.npy'), sets[name][1])
        with open(path('blobs_csv', name + '.csv'), 'w') as f:
            if name == 'train':
                f.write('label,a,b,c,d\n')
            for xi, yi in zip(x, y):
                f.write('%d,%s\n' % (yi, ','.join(repr(float(v)) for v in xi)))


def idx(name):
    with open(name, 'rb') as f:
        b = f.read()
    nd = b[3]
    dims = np.frombuffer(b[4:4 + 4 * nd], '>u4')
    return np.frombuffer(b[4 + 4 * nd:], 'u1').reshape(dims)


def c3_8x8():
    src = os.path.join(HERE, '..', 'reference', 'data', 'c3_8x8')
    for mine, theirs in (('train', 'train'), ('test', 't10k')):
        np.save(path('c3_8x8_npy', mine + '_x.npy'),
                idx(os.path.join(src, theirs + '-images-idx4-ubyte')))
        np.save(path('c3_8x8_npy', mine + '_y.npy'),
                idx(os.path.join(src, theirs + '-labels-idx1-ubyte')))


if __name__ == '__main__':
    valid_cases()
    refused_cases()
    blobs()
    c3_8x8()
