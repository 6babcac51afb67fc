#!/usr/bin/python3
"""gen.py — the reference suite's golden files, written by PyTorch.

Run by hand, never in CI, with Debian's python3-torch (1.13) on an x86-64
machine with AVX2 (see docs/semantics.md):

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 tests/reference/gen.py   # rewrite the goldens
    /usr/bin/python3 tests/reference/gen.py --check-mlpc build/mlpc

It writes, under tests/reference/:

    data/NAME/             small IDX data sets (the MNIST cut and generated ones;
                           images of several channels as 4-d IDX files, magic
                           0x00000804, dims n, C, H, W, under the usual names)
    cases.json             every case: its model file, its batches and PyTorch's
                           loss after each step and test losses (the MLPs, then
                           the convolutional networks, cnn_*: "input": [C, H, W]
                           and the data reshaped to (n, C, H, W))
    cases/NAME.init.safetensors   the initial weights (torch.manual_seed(seed),
                                  the module's construction, the init function)
    cases/NAME.final.safetensors  the parameters and buffers after the steps
    torch_rng.safetensors  raw uniform_ and normal_ draws (tests/test_init.c)

tests/test_reference.c replays each case through mlpc and compares.
--check-mlpc runs the mlpc binary on every fifth MLP case on generated
data and on every convolutional case: it loads PyTorch's initial weights
(--load-weights), trains 4 batches in file order, saves (--save-weights),
and the saved file is loaded into the PyTorch module with
load_state_dict(strict=True) and compared with PyTorch's own 4 steps (the
cases of the training recipes, whose training that plain loop is not, are
left out).
"""
import gzip
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REL = os.path.relpath(HERE, ROOT)  # tests/reference
STEPS = 24

# ---- IDX ----


def read_idx(path):
    """The raw bytes of an IDX file (gzip or not) and its dimensions."""
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            data = open(p, "rb").read()
            if p.endswith(".gz"):
                data = gzip.decompress(data)
            ndim = data[3]
            dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
            return data[4 + 4 * ndim:], dims
    raise FileNotFoundError(path)


def write_idx(path, payload, dims):
    """An IDX file of unsigned bytes: magic 0x0000080N, dims, payload."""
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x800 + len(dims)))
        f.write(struct.pack(">" + "I" * len(dims), *dims))
        f.write(bytes(payload))


def images(ndim):
    """The image file's name after its dimensions: images-idx3-ubyte (n,
    rows, cols) or images-idx4-ubyte (n, C, H, W)."""
    return "images-idx%d-ubyte" % ndim


def write_set(name, xtr, ytr, xte, yte, image):
    """Writes the four files of a data set under data/NAME; image is
    (rows, cols), a 3-d IDX file, or (C, H, W), a 4-d one."""
    d = os.path.join(HERE, "data", name)
    os.makedirs(d, exist_ok=True)
    write_idx(os.path.join(d, "train-" + images(1 + len(image))), xtr, (len(ytr),) + tuple(image))
    write_idx(os.path.join(d, "train-labels-idx1-ubyte"), ytr, (len(ytr),))
    write_idx(os.path.join(d, "t10k-" + images(1 + len(image))), xte, (len(yte),) + tuple(image))
    write_idx(os.path.join(d, "t10k-labels-idx1-ubyte"), yte, (len(yte),))


def mnist_cut(ntrain=256, ntest=64):
    """The first samples of data/mnist (scripts/data.sh), in file order."""
    src = os.environ.get("MLPC_DATA", os.path.join(ROOT, "data")) + "/mnist"
    xtr, _ = read_idx(src + "/train-images-idx3-ubyte")
    ytr, _ = read_idx(src + "/train-labels-idx1-ubyte")
    xte, _ = read_idx(src + "/t10k-images-idx3-ubyte")
    yte, _ = read_idx(src + "/t10k-labels-idx1-ubyte")
    write_set("mnist", xtr[:ntrain * 784], ytr[:ntrain], xte[:ntest * 784], yte[:ntest], (28, 28))


def blobs(name, image, classes, ntrain, ntest, seed):
    """A generated set of images of shape image ((rows, cols) or (C, H,
    W)): each class a random prototype image, each sample its class's
    prototype plus noise, a third of the pixels 0 (as in MNIST)."""
    g = torch.Generator().manual_seed(seed)
    feats = math.prod(image)
    proto = torch.rand(classes, feats, generator=g) * 255
    n = ntrain + ntest
    y = torch.randint(0, classes, (n,), generator=g)
    x = proto[y] + torch.randn(n, feats, generator=g) * 60
    x = x.clamp(0, 255).round()
    x[torch.rand(n, feats, generator=g) < 0.33] = 0
    x = x.to(torch.uint8).flatten().tolist()
    y = y.to(torch.uint8).tolist()
    write_set(name, x[:ntrain * feats], y[:ntrain], x[ntrain * feats:], y[ntrain:], image)


def load_set(name, prefix, shape):
    """Pixels as bytes in a uint8 tensor, (n, features) for a flat input
    of shape features, (n, C, H, W) for an input [C, H, W] (a 3-d file
    has C = 1); labels (n)."""
    d = os.path.join(HERE, "data", name)
    four = os.path.exists(os.path.join(d, prefix + "-" + images(4)))
    x, dims = read_idx(os.path.join(d, prefix + "-" + images(4 if four else 3)))
    y, _ = read_idx(os.path.join(d, prefix + "-labels-idx1-ubyte"))
    image = tuple(dims[1:]) if len(dims) == 4 else (1,) + tuple(dims[1:])
    flat = not isinstance(shape, list)
    want = (shape,) if flat else tuple(shape)
    if ((math.prod(image),) if flat else image) != want:
        sys.exit("gen.py: data/%s holds images of %s, the model's input is %s" % (
            name, image, shape))
    x = torch.frombuffer(bytearray(x), dtype=torch.uint8).reshape((dims[0],) + want)
    return x, torch.frombuffer(bytearray(y), dtype=torch.uint8).long()


# ---- safetensors, with nothing but json and struct ----

ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
ST_TORCH = {v: k for k, v in ST_DTYPES.items()}


def save_safetensors(path, tensors):
    """tensors: name → tensor, written in order, 8-byte aligned data."""
    header, blobs_, off = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs_.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs_))


def load_safetensors(path):
    """name → tensor, by torch.frombuffer on the parsed header."""
    buf = bytearray(open(path, "rb").read())
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        dt = ST_TORCH[e["dtype"]]
        data = buf[8 + n + b:8 + n + end]
        t = torch.frombuffer(data, dtype=dt) if data else torch.empty(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out


# ---- the model ----


def activation(a):
    """The model file's activation as a function."""
    kind = a if isinstance(a, str) else a["type"]
    if kind == "leaky_relu":
        slope = 0.01 if isinstance(a, str) else a.get("slope", 0.01)
        return lambda x: F.leaky_relu(x, slope)
    if kind == "elu":
        alpha = 1.0 if isinstance(a, str) else a.get("alpha", 1.0)
        return lambda x: F.elu(x, alpha)
    return {"tanh": torch.tanh, "relu": F.relu, "sigmoid": torch.sigmoid,
            "silu": F.silu, "gelu": F.gelu}[kind]


class MLP(nn.Module):
    """fc1 → norm1 → act → fc2 → ... → fcL. The Linear layers are built
    first, in order, then the norms (so model.parameters() lists them in
    that order), as the homework's MLP does for its one hidden layer."""

    def __init__(self, m):
        super().__init__()
        widths = [m.get("input", 784)] + m.get("hidden", [128]) + [m.get("output", 10)]
        self.nhidden = len(widths) - 2
        for k in range(len(widths) - 1):
            setattr(self, "fc%d" % (k + 1), nn.Linear(widths[k], widths[k + 1]))
        norm = m.get("norm", "none")
        kind = norm if isinstance(norm, str) else norm["type"]
        self.has_norm = kind != "none"
        for k in range(self.nhidden):
            h = widths[k + 1]
            eps = 1e-5 if isinstance(norm, str) else norm.get("eps", 1e-5)
            if kind == "batchnorm":
                mom = 0.1 if isinstance(norm, str) else norm.get("momentum", 0.1)
                setattr(self, "norm%d" % (k + 1), nn.BatchNorm1d(h, eps=eps, momentum=mom))
            elif kind == "layernorm":
                setattr(self, "norm%d" % (k + 1), nn.LayerNorm(h, eps=eps))
        self.act = activation(m.get("activation", "relu"))

    def forward(self, x):
        for k in range(1, self.nhidden + 1):
            x = getattr(self, "fc%d" % k)(x)
            if self.has_norm:
                x = getattr(self, "norm%d" % k)(x)
            x = self.act(x)
        return getattr(self, "fc%d" % (self.nhidden + 1))(x)

    def linears(self):
        return [getattr(self, "fc%d" % k) for k in range(1, self.nhidden + 2)]


# ---- layer lists: nn.Sequential, and mlpc's dropout masks ----

M64 = (1 << 64) - 1
STEP = [0]  # steps taken before the current one: the masks' step


def mix64(z):
    """SplitMix64's output function (rt/kernels.h's mm_mix64)."""
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


def keep(seed, step, layer, n, p):
    """mlpc's dropout mask of layer at step (drop_key, drop_forward): element
    i is kept when the i-th SplitMix64 draw from the key, as 53 bits in
    [0, 1), is >= p."""
    key = mix64(mix64(mix64(seed) ^ step) ^ layer)
    return [(mix64((key + (i + 1) * 0x9e3779b97f4a7c15) & M64) >> 11) * 2.0 ** -53 >= p
            for i in range(n)]


class MaskDropout(nn.Module):
    """nn.Dropout's arithmetic (noise = bernoulli_(1 - p); noise.div_(1 - p);
    input * noise) with mlpc's masks in place of PyTorch's draws, so that
    the comparison is exact."""

    def __init__(self, p, index, seed):
        super().__init__()
        self.p, self.index, self.seed = p, index, seed

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        m = keep(self.seed, STEP[0], self.index, x.numel(), self.p)
        noise = torch.tensor(m, dtype=x.dtype).reshape(x.shape)
        noise.div_(1 - self.p)
        return x * noise


def pair(v):
    """A size given as n or [a, b], as a pair."""
    return tuple(v) if isinstance(v, list) else (v, v)


class SlowConv(torch.autograd.Function):
    """F.conv2d's forward and backward (aten's convolution and
    convolution_backward, what autograd calls) with oneDNN switched off
    for them alone: PyTorch's own im2col and BLAS. oneDNN's float32 sums
    are less accurate (the reference CNN's float32 run moves 2 to 5e-5
    from its float64 run with it, 4 to 7e-6 without), and the goldens
    should be PyTorch's most accurate result. Other layers keep oneDNN
    where PyTorch takes it (float32 gelu), as the older cases had it."""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding):
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, None if b is None else list(b.shape))
        with torch.backends.mkldnn.flags(enabled=False):
            return torch.ops.aten.convolution(x, w, b, stride, padding, (1, 1), False, (0, 0), 1)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        stride, padding, bshape = ctx.conf
        with torch.backends.mkldnn.flags(enabled=False):
            dx, dw, db = torch.ops.aten.convolution_backward(
                dy, x, w, bshape, stride, padding, (1, 1), False, (0, 0), 1,
                list(ctx.needs_input_grad[:3]))
        return dx, dw, db, None, None


class Conv2d(nn.Conv2d):
    """nn.Conv2d (its names, construction and init) through SlowConv."""

    def forward(self, x):
        return SlowConv.apply(x, self.weight, self.bias, self.stride, self.padding)


def conv_module(spec, shape):
    """conv2d: nn.Conv2d, and its output (C, H, W)."""
    k, st = pair(spec["kernel_size"]), pair(spec.get("stride", 1))
    pad = pair(spec.get("padding", 0))
    mod = Conv2d(shape[0], spec["out_channels"], k, stride=st, padding=pad,
                 bias=spec.get("bias", True))
    return mod, (spec["out_channels"],) + tuple((shape[1 + d] + 2 * pad[d] - k[d]) // st[d] + 1
                                                for d in range(2))


def pool_module(spec, shape):
    """maxpool2d or avgpool2d (floor mode, no padding), and its output."""
    k = pair(spec["kernel_size"])
    st = pair(spec.get("stride", spec["kernel_size"]))
    mod = (nn.MaxPool2d if spec["type"] == "maxpool2d" else nn.AvgPool2d)(k, stride=st)
    return mod, (shape[0],) + tuple((shape[1 + d] - k[d]) // st[d] + 1 for d in range(2))


def flat_module(spec, shape):
    """A layer of flat features: linear, batchnorm, layernorm."""
    kind, width = spec["type"], shape[0]
    if kind == "linear":
        return nn.Linear(width, spec["out"], bias=spec.get("bias", True)), (spec["out"],)
    if kind == "batchnorm":
        return nn.BatchNorm1d(width, eps=spec.get("eps", 1e-5),
                              momentum=spec.get("momentum", 0.1)), shape
    return nn.LayerNorm(width, eps=spec.get("eps", 1e-5)), shape


IMAGE_LAYERS = ("conv2d", "maxpool2d", "avgpool2d", "batchnorm2d", "flatten")
FLAT_LAYERS = ("linear", "batchnorm", "layernorm")


def layer_module(spec, shape, index, seed):
    """One entry of "layers" as a module, and the shape of a sample after
    it: (features) or (C, H, W)."""
    spec = {"type": spec} if isinstance(spec, str) else spec
    kind = spec["type"]
    image = len(shape) == 3
    if kind in IMAGE_LAYERS and not image or kind in FLAT_LAYERS and image:
        sys.exit("gen.py: layer %d (%s) on a sample of shape %s" % (index, kind, shape))
    if kind == "conv2d":
        mod, shape = conv_module(spec, shape)
    elif kind in ("maxpool2d", "avgpool2d"):
        mod, shape = pool_module(spec, shape)
    elif kind == "batchnorm2d":
        mod = nn.BatchNorm2d(shape[0], eps=spec.get("eps", 1e-5),
                             momentum=spec.get("momentum", 0.1))
    elif kind == "flatten":
        mod, shape = nn.Flatten(), (math.prod(shape),)
    elif kind in FLAT_LAYERS:
        mod, shape = flat_module(spec, shape)
    elif kind == "dropout":
        mod = MaskDropout(spec.get("p", 0.5), index, seed)
    else:
        f = activation(spec)
        mod = type("Act", (nn.Module,), {"forward": lambda self, x: f(x)})()
    if min(shape) < 1:
        sys.exit("gen.py: layer %d (%s) leaves a sample of shape %s" % (index, kind, shape))
    return mod, shape


def sequential(m):
    """nn.Sequential of the model's layers, built in order."""
    mods, inp = [], m.get("input", 784)
    shape = tuple(inp) if isinstance(inp, list) else (inp,)
    for i, spec in enumerate(m["layers"]):
        mod, shape = layer_module(spec, shape, i, m.get("seed", 0))
        mods.append(mod)
    if shape != (m.get("output", 10),):
        sys.exit("gen.py: %s's layers end in %s, not its %d classes" % (
            m["name"], shape, m.get("output", 10)))
    return nn.Sequential(*mods)


def init_sequential(model, m):
    """Each layer in order: a linear or conv2d layer by its own init (or
    the model's), torch.nn.init's fans for a convolution's weight
    (C_in·kh·kw, C_out·kh·kw); a norm's γ and β N(0, 1) under the model's
    "normal"."""
    scheme = m.get("init", "torch_default")
    for spec, mod in zip(m["layers"], model):
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            s = spec.get("init", scheme) if isinstance(spec, dict) else scheme
            if s == "normal":
                for p in mod.parameters():
                    nn.init.normal_(p.data, mean=0, std=1)
            elif s in ("kaiming_normal", "xavier_normal"):
                (nn.init.kaiming_normal_ if s == "kaiming_normal" else nn.init.xavier_normal_)(
                    mod.weight)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)) and \
                scheme == "normal":
            for p in mod.parameters():
                nn.init.normal_(p.data, mean=0, std=1)


def init_model(model, scheme):
    """The init function applied after construction (docs/semantics.md)."""
    if scheme == "normal":  # the homework's init_std_normal
        for p in model.parameters():
            nn.init.normal_(p.data, mean=0, std=1)
    elif scheme in ("kaiming_normal", "xavier_normal"):
        for fc in model.linears():
            if scheme == "kaiming_normal":
                nn.init.kaiming_normal_(fc.weight)
            else:
                nn.init.xavier_normal_(fc.weight)
            nn.init.zeros_(fc.bias)


def build(m):
    """torch.manual_seed(seed), construction, init: what "rng": "torch" does."""
    torch.set_default_dtype(torch.float64 if m.get("dtype") == "float64" else torch.float32)
    torch.manual_seed(m.get("seed", 0))
    if "layers" in m:
        model = sequential(m)
        init_sequential(model, m)
        return model
    model = MLP(m)
    init_model(model, m.get("init", "torch_default"))
    return model


def has_batchnorm(m):
    """Whether the model has a BatchNorm1d: a one-sample batch is skipped.
    (BatchNorm2d trains on one sample, over its H·W positions, as PyTorch
    does.)"""
    if "layers" in m:
        return any((l if isinstance(l, str) else l["type"]) == "batchnorm" for l in m["layers"])
    norm = m.get("norm", "none")
    return (norm if isinstance(norm, str) else norm["type"]) == "batchnorm"


def optimizer(model, o):
    """The model file's optimizer, with mlpc's defaults (lr 0.01)."""
    o = {"type": o} if isinstance(o, str) else dict(o)
    kind = o.pop("type")
    o.setdefault("lr", 0.01)
    if kind == "adamw":
        o.setdefault("weight_decay", 0.01)
    cls = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
           "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    if "betas" in o:
        o["betas"] = tuple(o["betas"])
    return cls(model.parameters(), foreach=False, **o)


def state(model):
    """Parameters and buffers under their PyTorch names."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---- training recipes: the lr schedule, clipping, label smoothing ----

LRS = torch.optim.lr_scheduler


def schedulers(opt, m, steps):
    """The model's "schedule" as PyTorch's schedulers, built as
    rt/sched.c says: those stepped after each training step, and those
    stepped after each epoch. steps: the run's training steps."""
    s = m.get("schedule", "none")
    s = {"type": s} if isinstance(s, str) else dict(s)
    kind, warm = s.pop("type"), s.pop("warmup", 0)
    first = [LRS.LinearLR(opt, start_factor=1 / warm, total_iters=warm)] if warm else []
    if kind == "onecycle":
        s.setdefault("total_steps", steps - warm)
        cycle = LRS.OneCycleLR(opt, **s)
        return [LRS.SequentialLR(opt, first + [cycle], milestones=[warm])] if warm else [cycle], []
    if kind == "step":
        return first, [LRS.StepLR(opt, s["step_size"], s.get("gamma", 0.1))]
    if kind == "cosine":
        return first, [LRS.CosineAnnealingLR(opt, s["T_max"], s.get("eta_min", 0))]
    return first, []


def epoch_ends(steps):
    """Whether each step is the last of its epoch: the next one starts at 0."""
    return [i + 1 == len(steps) or steps[i + 1][0] == 0 for i in range(len(steps))]


def momentum_of(opt):
    """The momentum the optimizer uses now: SGD's and RMSprop's, Adam's beta1."""
    g = opt.param_groups[0]
    return g["betas"][0] if "betas" in g else g["momentum"]


def train(model, m, xtr, ytr, steps, on_epoch=None):
    """The case's steps in order, with the model's optimizer, schedule,
    clip_grad_norm_ and label smoothing: each step's loss, and the lr and
    momentum it used. on_epoch(losses of the epoch) after each epoch may
    end the training by returning True."""
    dt = torch.get_default_dtype()
    opt = optimizer(model, m.get("optimizer", "sgd"))
    per_step, per_epoch = schedulers(opt, m, len(steps))
    smooth, clip = m.get("label_smoothing", 0.0), m.get("clip_grad_norm")
    losses, lrs, moms = [], [], []
    for s, ((start, n), last) in enumerate(zip(steps, epoch_ends(steps))):
        STEP[0] = s
        x = xtr[start:start + n].to(dt) / 255
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(momentum_of(opt))
        opt.zero_grad()
        loss = F.cross_entropy(model(x), ytr[start:start + n], label_smoothing=smooth)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
        for sch in per_step + (per_epoch if last else []):
            sch.step()
        if last and on_epoch and on_epoch(losses[epoch_start(steps, s):]):
            break
    return losses, lrs, moms


def epoch_start(steps, s):
    """The index of the first step of step s's epoch."""
    while s > 0 and steps[s][0] != 0:
        s -= 1
    return s


# ---- the validation split (rt/split.c) and early stopping ----


def rng_seed(seed, stream):
    """mlpc's generator (rt/rng.c): xoshiro256** seeded by splitmix64."""
    x, s = (seed ^ (stream * 0xd1342543de82ef95)) & M64, []
    for _ in range(4):
        x = (x + 0x9e3779b97f4a7c15) & M64
        z = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M64
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
        s.append(z ^ (z >> 31))
    return s


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


def rng_next(s):
    """The next 64 bits, advancing the state s in place."""
    out = (rotl((s[1] * 5) & M64, 7) * 9) & M64
    t = (s[1] << 17) & M64
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 45)
    return out


def rng_below(s, n):
    """An integer in [0, n), rejecting the short tail (rt_rng_below)."""
    limit = (1 << 64) % n
    while True:
        x = rng_next(s)
        if x >= limit:
            return x % n


def split(y, val, seed, classes):
    """The indices held out for validation, as rt/split.c's header
    says: the class quotas by largest remainder, each class's samples
    shuffled by Fisher-Yates on stream 2 of the seed, its first ones held."""
    n = len(y)
    v = val if isinstance(val, int) else math.ceil(val * n)
    count = [y.count(c) for c in range(classes)]
    quota = [v * count[c] // n for c in range(classes)]
    extra = sorted(range(classes), key=lambda c: (-(v * count[c] % n), c))
    for c in extra[:v - sum(quota)]:
        quota[c] += 1
    s, held = rng_seed(seed, 2), []
    for c in range(classes):
        idx = [i for i in range(n) if y[i] == c]
        for i in range(len(idx) - 1, 0, -1):
            j = rng_below(s, i + 1)
            idx[i], idx[j] = idx[j], idx[i]
        held += idx[:quota[c]]
    return sorted(held)


def evaluate(model, x, y):
    """Eval mode: mean cross-entropy and accuracy (first maximum) over x."""
    model.eval()
    with torch.no_grad():
        z = model(x.to(torch.get_default_dtype()) / 255)
        loss = F.cross_entropy(z, y, reduction="sum").item() / len(y)
        acc = (z.argmax(1) == y).sum().item() / len(y)
    model.train()
    return loss, acc


def run_loop(model, m, xtr, ytr, xte, yte):
    """mlpc's training loop with a validation split, in file order: each
    epoch's figures, the epoch early stopping keeps (0 without), and how
    close its decisions were (the least |val - best| / best; None
    without)."""
    held = split(ytr.tolist(), m["validation"], m.get("seed", 0), m["output"])
    rest = sorted(set(range(len(ytr))) - set(held))
    xv, yv, xt, yt = xtr[held], ytr[held], xtr[rest], ytr[rest]
    b, bn = m.get("batch_size", 32), has_batchnorm(m)
    epoch = [[k, min(b, len(yt) - k)] for k in range(0, len(yt), b) if not (bn and len(yt) - k == 1)]
    patience = (m.get("early_stopping") or {}).get("patience", 0)
    out = {"figures": [], "best": None, "state": None, "waited": 0, "margin": math.inf}

    def on_epoch(losses):
        vl, va = evaluate(model, xv, yv)
        tl, ta = evaluate(model, xte, yte)
        out["figures"].append({"train_loss": sum(losses) / len(losses), "val_loss": vl,
                               "val_acc": va, "test_loss": tl, "test_acc": ta})
        if not patience:
            return False
        best = out["best"]
        if best is not None:
            out["margin"] = min(out["margin"], abs(vl - best[1]) / best[1])
        if best is None or vl < best[1]:
            out["best"], out["state"], out["waited"] = (len(out["figures"]), vl), state(model), 0
        else:
            out["waited"] += 1
        return out["waited"] >= patience

    train(model, m, xt, yt, epoch * m["epochs"], on_epoch)
    if patience:
        model.load_state_dict(out["state"])
    return out["figures"], out["best"][0] if patience else 0, out["margin"] if patience else None


# ---- the cases ----


def batches(ntrain, b, steps, has_bn):
    """Batches in file order, epoch after epoch, the last one of an epoch
    short; a one-sample batch is skipped under batchnorm, as mlpc does."""
    out, start = [], 0
    while len(out) < steps:
        n = min(b, ntrain - start)
        if not (n == 1 and has_bn):
            out.append([start, n])
        start = 0 if start + n >= ntrain else start + n
    return out


def test_loss(model, x, y):
    """Eval mode: mean cross-entropy over the whole test set."""
    model.eval()
    with torch.no_grad():
        z = model(x.to(torch.get_default_dtype()) / 255)
        loss = F.cross_entropy(z, y, reduction="sum").item() / len(y)
    model.train()
    return loss


def run_case(c):
    """Builds, trains for the case's steps and records what PyTorch gives."""
    m = c["model"]
    model = build(m)
    init = state(model)
    xtr, ytr = load_set(c["data"], "train", m["input"])
    xte, yte = load_set(c["data"], "t10k", m["input"])
    c["test_loss_init"] = test_loss(model, xte, yte)
    if "validation" in m:  # the training loop itself, epoch by epoch
        c.pop("nsteps")
        c["epochs_figures"], c["best_epoch"], c["stop_margin"] = run_loop(model, m, xtr, ytr,
                                                                          xte, yte)
    else:
        c["steps"] = batches(len(ytr), m.get("batch_size", 32), c.pop("nsteps", STEPS),
                             has_batchnorm(m))
        losses, lrs, moms = train(model, m, xtr, ytr, c["steps"])
        c["loss"] = losses
        if "schedule" in m:  # the lr and momentum of each step, compared bit for bit
            c["lr"], c["momentum"] = lrs, moms
    c["test_loss"] = test_loss(model, xte, yte)
    save_safetensors(os.path.join(HERE, "cases", c["name"] + ".init.safetensors"), init)
    save_safetensors(os.path.join(HERE, "cases", c["name"] + ".final.safetensors"), state(model))
    return model


def scaled_err(a, b):
    """|a − b| / max(|b|, 0.01), elementwise max: the C test's measure."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return ((a - b).abs() / b.abs().clamp(min=0.01)).max().item() if b.numel() else 0.0


def rerun(c, dtype, nudge):
    """The case again from its initial weights, each multiplied by
    (1 + nudge), in dtype: the final state and the step losses."""
    m = dict(c["model"], dtype=dtype)
    model = build(m)
    init = load_safetensors(os.path.join(HERE, "cases", c["name"] + ".init.safetensors"))
    dt = torch.get_default_dtype()
    model.load_state_dict({k: (v.to(dt) * (1 + nudge)) if v.is_floating_point() else v
                           for k, v in init.items()})
    xtr, ytr = load_set(c["data"], "train", m["input"])
    if "validation" in m:
        xte, yte = load_set(c["data"], "t10k", m["input"])
        losses = series(run_loop(model, m, xtr, ytr, xte, yte)[0])
    else:
        losses = train(model, m, xtr, ytr, c["steps"])[0]
    return state(model), losses


def series(figures):
    """Every figure of every epoch, in one list (the loop cases' losses)."""
    return [f[k] for f in figures for k in sorted(f)]


def spread(c):
    """How far PyTorch itself moves under rounding-sized changes: every
    initial weight nudged by one unit in the last place, and (for float32
    cases) the whole run in float64 instead. A case is kept only if this
    is well below the bound mlpc must meet: otherwise the case measures
    rounding noise, not the computation."""
    f64 = c["model"].get("dtype") == "float64"
    final = load_safetensors(os.path.join(HERE, "cases", c["name"] + ".final.safetensors"))
    runs = [rerun(c, "float64" if f64 else "float32", 2.0 ** (-52 if f64 else -23))]
    if not f64:
        runs.append(rerun(c, "float64", 0))
    errs = []
    for st, losses in runs:
        errs.append(scaled_err(losses, c["loss"] if "loss" in c else series(c["epochs_figures"])))
        errs += [scaled_err(v, final[k]) for k, v in st.items()]
    return max(errs)


# The generated data sets: name → (image shape, classes, train and test
# samples, seed). (rows, cols) is written as a 3-d IDX file, (C, H, W) as
# a 4-d one.
SETS = {
    "small": ((2, 3), 3, 96, 32, 1),
    "wide": ((4, 5), 12, 128, 48, 2),
    "c3_8x8": ((3, 8, 8), 4, 128, 48, 3),
    "c5_7x9": ((5, 7, 9), 6, 96, 32, 4),
    "c1_12x10": ((1, 12, 10), 5, 112, 40, 5),
}


def image_of(data):
    """A data set's image shape as (C, H, W) and its classes."""
    image, classes = ((28, 28), 10) if data == "mnist" else SETS[data][:2]
    return ((1,) + image if len(image) == 2 else image), classes


def case(name, data, steps=STEPS, epochs=None, **model):
    """One case: a model file (in mlpc's format) and a data set, its
    images flat (a number of features) or, for a model of
    convolutions, "input": [C, H, W]; with epochs, that many whole epochs
    (a schedule's epochs are the run's)."""
    image, classes = image_of(data)
    flat = not any((l if isinstance(l, str) else l["type"]) in IMAGE_LAYERS
                   for l in model.get("layers", []))
    m = {"name": name, "input": math.prod(image) if flat else list(image), "output": classes,
         "rng": "torch", "data": REL + "/data/" + data, "epochs": epochs or 1}
    m.update(model)
    if epochs:
        b, ntrain = m.get("batch_size", 32), 256 if data == "mnist" else SETS[data][2]
        steps = epochs * (-(-ntrain // b) - (has_batchnorm(m) and ntrain % b == 1))
    return {"name": name, "data": data, "model": m, "nsteps": steps}


NORMS = ["none", "batchnorm", "layernorm"]
ACTS = ["tanh", "relu", "leaky_relu", "sigmoid", "silu", "gelu", "elu"]
OPTS = ["sgd", "rmsprop", "adam", "adamw"]
INITS = ["normal", "kaiming_normal", "xavier_normal", "torch_default"]


def cases():
    """The suite: every norm × activation pair on small generated data, the
    optimizers, inits and batch sizes rotating through them, in both
    precisions; then optimizer options, shapes and the MNIST cut.

    Every case must be well conditioned (spread() below): PyTorch's own
    result moves by less than a tenth of the bound under rounding-sized
    changes. So batchnorm meets the adaptive optimizers only in float64 and
    with weight decay (or a large eps): the bias of the linear layer before
    a batchnorm has a zero gradient, and Adam and RMSprop turn its rounding
    noise into steps of size lr (docs/semantics.md). Batchnorm trains on
    batches of 7 or more in the grid, where 2 or 3 samples' statistics
    would amplify rounding noise in float32."""
    out = []
    i = 0
    for norm in NORMS:
        for act in ACTS:
            for dtype in ("float32", "float64"):
                opt = "sgd" if norm == "batchnorm" else OPTS[i % 4]
                if opt != "sgd":
                    opt = {"type": opt, "lr": 0.001}
                batch = [7, 3, 32, 2][(i + i // 4) % 4]
                if norm == "batchnorm":  # statistics of 2 or 3 samples: noise
                    batch = [7, 32][i % 2]
                out.append(case("grid_%s_%s_%s" % (norm, act, dtype[5:]), "small",
                                hidden=[5, 4], norm=norm, activation=act, optimizer=opt,
                                init=INITS[(i // 2 + i) % 4], batch_size=batch,
                                dtype=dtype, seed=100 + i))
                i += 1
    opts = [
        ("sgd_momentum", "batchnorm", {"type": "sgd", "lr": 0.003, "momentum": 0.9}),
        ("sgd_nesterov", "layernorm", {"type": "sgd", "lr": 0.05, "momentum": 0.8,
                                       "nesterov": True, "weight_decay": 0.01}),
        ("sgd_dampening", "none", {"type": "sgd", "lr": 0.05, "momentum": 0.5,
                                   "dampening": 0.3}),
        ("rmsprop_centered", "layernorm", {"type": "rmsprop", "lr": 0.001, "centered": True,
                                           "momentum": 0.5, "alpha": 0.9}),
        ("rmsprop_bn_decay", "batchnorm", {"type": "rmsprop", "lr": 0.001,
                                           "weight_decay": 0.05, "eps": 1e-6}),
        ("adam_bn_betas", "batchnorm", {"type": "adam", "lr": 0.001, "betas": [0.8, 0.99],
                                        "eps": 1e-6, "weight_decay": 0.02}),
        ("adamw_bn_eps", "batchnorm", {"type": "adamw", "lr": 0.001, "weight_decay": 0.1,
                                       "eps": 1e-3}),
        ("adamw_none", "none", {"type": "adamw", "lr": 0.003, "weight_decay": 0.1}),
    ]
    for k, (name, norm, o) in enumerate(opts):
        for dtype in ("float64",) if norm == "batchnorm" else ("float32", "float64"):
            out.append(case("opt_%s_%s" % (name, dtype[5:]), "wide", hidden=[37], norm=norm,
                            activation=ACTS[k % 7], optimizer=o,
                            init=["torch_default", "normal"][k % 2] if norm == "batchnorm"
                            else INITS[k % 4], batch_size=7, dtype=dtype, seed=200 + k))
    shapes = [
        ("linear_only", dict(hidden=[], batch_size=3, optimizer="sgd")),
        ("width1_bn", dict(hidden=[1], norm="batchnorm", batch_size=7, optimizer="sgd")),
        ("width1_none", dict(hidden=[1], activation="tanh", batch_size=2, optimizer="adam")),
        ("deep3_bn_mom03", dict(hidden=[37, 5, 8], norm={"type": "batchnorm", "momentum": 0.3},
                                batch_size=32, activation="tanh", optimizer="sgd")),
        ("deep2_bn_cumulative", dict(hidden=[5, 37], norm={"type": "batchnorm", "momentum": None},
                                     batch_size=32, activation="tanh",
                                     optimizer={"type": "sgd", "momentum": 0.5})),
        ("ln_eps", dict(hidden=[37, 37], norm={"type": "layernorm", "eps": 1e-3},
                        activation={"type": "elu", "alpha": 0.5}, batch_size=7)),
        ("leaky_slope", dict(hidden=[5], activation={"type": "leaky_relu", "slope": 0.2},
                             batch_size=2, optimizer="adamw")),
    ]
    for k, (name, kw) in enumerate(shapes):
        for dtype in ("float32", "float64"):
            out.append(case("shape_%s_%s" % (name, dtype[5:]), "wide", init=INITS[k % 4],
                            dtype=dtype, seed=300 + k, **kw))
    out += [
        case("mnist_seed_bn_relu", "mnist", hidden=[128], norm="batchnorm", activation="relu",
             init="kaiming_normal", optimizer="sgd", batch_size=32, seed=42),
        case("mnist_seed_base", "mnist", hidden=[16], activation="tanh", init="normal",
             optimizer="sgd", batch_size=32, seed=42),
        case("mnist_ln_silu_adam_64", "mnist", hidden=[37], norm="layernorm",
             activation="silu", init="kaiming_normal",
             optimizer={"type": "adam", "lr": 0.001}, batch_size=32, dtype="float64", seed=7),
        case("mnist_ln_gelu_rmsprop_64", "mnist", hidden=[16], norm="layernorm",
             activation="gelu", init="xavier_normal", optimizer={"type": "rmsprop", "lr": 0.001},
             batch_size=32, dtype="float64", seed=5),
        case("mnist_bn_rmsprop_64", "mnist", hidden=[16, 5], norm="batchnorm",
             activation="leaky_relu", init="torch_default",
             optimizer={"type": "rmsprop", "lr": 0.001, "weight_decay": 0.01},
             batch_size=7, dtype="float64", seed=3),
        case("mnist_default_adamw_64", "mnist", hidden=[5], activation="sigmoid",
             init="torch_default", optimizer="adamw", batch_size=3, dtype="float64", seed=11),
    ]
    lists = [
        ("mixed_acts", "wide", "adam", [{"type": "linear", "out": 9}, "tanh",
                                         {"type": "linear", "out": 7, "bias": False,
                                          "init": "xavier_normal"}, "gelu",
                                         {"type": "linear", "out": 12}]),
        ("dropout_p0", "wide", "sgd", [{"type": "linear", "out": 16}, "sigmoid",
                                       {"type": "dropout", "p": 0}, {"type": "linear", "out": 12}]),
        ("dropout", "wide", {"type": "adam", "lr": 0.003},
         [{"type": "linear", "out": 16}, "tanh", {"type": "dropout", "p": 0.3},
          {"type": "linear", "out": 8, "init": "kaiming_normal"}, "silu",
          {"type": "dropout", "p": 0.5}, {"type": "linear", "out": 12}]),
        ("bn_after_act", "wide", "sgd", [{"type": "linear", "out": 10}, "elu",
                                         {"type": "batchnorm", "momentum": 0.2},
                                         {"type": "linear", "out": 12, "init": "torch_default"}]),
        ("ln_leaky_nobias", "small", {"type": "rmsprop", "lr": 0.001},
         [{"type": "linear", "out": 11, "bias": False}, {"type": "layernorm", "eps": 1e-3},
          {"type": "leaky_relu", "slope": 0.3}, {"type": "linear", "out": 3,
                                                  "init": "kaiming_normal"}]),
    ]
    for k, (name, data, o, layers) in enumerate(lists):
        for dtype in ("float32", "float64"):
            if dtype == "float32" and name == "bn_after_act":
                continue  # BatchNorm's statistics of 7 samples amplify float32 noise
            out.append(case("list_%s_%s" % (name, dtype[5:]), data, layers=layers, optimizer=o,
                            init=INITS[k % 4], batch_size=7, dtype=dtype, seed=400 + k))
    out.append(case("mnist_list_dropout_64", "mnist", layers=[
        {"type": "linear", "out": 32}, {"type": "batchnorm"}, "relu", {"type": "dropout", "p": 0.2},
        {"type": "linear", "out": 16, "init": "xavier_normal"}, "tanh",
        {"type": "linear", "out": 10, "bias": False}], init="kaiming_normal",
        optimizer={"type": "sgd", "lr": 0.01, "momentum": 0.9}, batch_size=32,
        dtype="float64", seed=0))
    return out + recipe_cases()


SCHEDULES = [
    # plain SGD, whose weight updates fuse into the gradient: the lr at run time
    ("step", "none", "sgd", 4, {"type": "step", "step_size": 2, "gamma": 0.5}),
    # past T_max, where PyTorch's recursive form takes its other branch
    ("cosine", "layernorm", {"type": "adam", "lr": 0.003}, 5,
     {"type": "cosine", "T_max": 3, "eta_min": 0.0001}),
    ("cosine_warmup", "none", {"type": "sgd", "lr": 0.05, "momentum": 0.9}, 3,
     {"type": "cosine", "T_max": 3, "warmup": 11}),
    ("step_warmup_adamw", "none", {"type": "adamw", "lr": 0.003}, 3,
     {"type": "step", "step_size": 1, "gamma": 0.7, "warmup": 20}),
    ("warmup_only", "layernorm", {"type": "rmsprop", "lr": 0.001}, 2,
     {"type": "none", "warmup": 9}),
    # SGD without momentum: OneCycleLR's cycle_momentum gives it one
    ("onecycle_sgd", "none", "sgd", 3, {"type": "onecycle", "max_lr": 0.1}),
    ("onecycle_adam_linear", "layernorm", "adam", 3,
     {"type": "onecycle", "max_lr": 0.005, "anneal_strategy": "linear", "pct_start": 0.25,
      "total_steps": 70, "base_momentum": 0.8, "max_momentum": 0.9}),
    ("onecycle_warmup_rmsprop", "none", {"type": "rmsprop", "lr": 0.001}, 3,
     {"type": "onecycle", "max_lr": 0.002, "warmup": 7, "div_factor": 10,
      "final_div_factor": 100}),
    ("onecycle_nocycle", "none", {"type": "sgd", "momentum": 0.5}, 2,
     {"type": "onecycle", "max_lr": 0.05, "cycle_momentum": False, "pct_start": 0.4}),
]


def recipe_cases():
    """The training recipes: each schedule over whole epochs (its lr and
    momentum compared bit for bit), gradient clipping and label smoothing,
    in both precisions."""
    out = []
    for k, (name, norm, o, epochs, sched) in enumerate(SCHEDULES):
        for dtype in ("float32", "float64"):
            out.append(case("sched_%s_%s" % (name, dtype[5:]), "wide", epochs=epochs,
                            hidden=[37], norm=norm, activation=ACTS[k % 7], optimizer=o,
                            schedule=sched, init=INITS[k % 4], batch_size=16, dtype=dtype,
                            seed=500 + k))
    for k, (name, norm, o, clip, extra) in enumerate(CLIPS):
        for dtype in ("float64",) if norm == "batchnorm" else ("float32", "float64"):
            out.append(case("clip_%s_%s" % (name, dtype[5:]), "wide", epochs=2, hidden=[37, 9],
                            norm=norm, activation=ACTS[(k + 3) % 7], optimizer=o,
                            clip_grad_norm=clip, init=INITS[(k + 1) % 4], batch_size=11,
                            dtype=dtype, seed=600 + k, **extra))
    for k, (name, norm, o, smooth, extra) in enumerate(SMOOTHING):
        for dtype in ("float32", "float64"):
            out.append(case("smooth_%s_%s" % (name, dtype[5:]), "small", epochs=2, hidden=[11],
                            norm=norm, activation=ACTS[(k + 5) % 7], optimizer=o,
                            label_smoothing=smooth, init=INITS[(k + 2) % 4], batch_size=8,
                            dtype=dtype, seed=700 + k, **extra))
    for name, data, epochs, kw in VALIDATION:
        for dtype in ("float32", "float64"):
            out.append(case("val_%s_%s" % (name, dtype[5:]), data, epochs=epochs, dtype=dtype,
                            **kw))
    return out


VALIDATION = [
    # a count, no early stopping: every epoch's validation figures
    ("count", "wide", 3, dict(hidden=[16], validation=32, batch_size=10, activation="relu",
                              init="normal", seed=800,
                              optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.5})),
    # a fraction, early stopping that stops and keeps an earlier epoch
    ("stop", "small", 30, dict(hidden=[32], validation=0.25, batch_size=8, activation="relu",
                               init="normal", seed=821, early_stopping={"patience": 1},
                               optimizer={"type": "sgd", "lr": 0.5})),
    # early stopping that never stops, and a schedule over the shorter set
    ("patient", "small", 6, dict(hidden=[9], validation=20, batch_size=7, activation="silu",
                                 init="torch_default", seed=801,
                                 early_stopping={"patience": 10},
                                 schedule={"type": "cosine", "T_max": 6},
                                 optimizer={"type": "sgd", "lr": 0.3, "momentum": 0.5})),
]


SMOOTHING = [
    ("sgd", "none", {"type": "sgd", "lr": 0.1}, 0.1, {}),
    ("adam_ln", "layernorm", {"type": "adam", "lr": 0.003}, 0.3, {}),
    # the whole target uniform
    ("one", "none", {"type": "sgd", "lr": 0.05, "momentum": 0.9}, 1.0, {}),
    ("clip_cosine", "layernorm", {"type": "adamw", "lr": 0.002}, 0.05,
     {"clip_grad_norm": 0.25, "schedule": {"type": "cosine", "T_max": 2, "warmup": 5}}),
]


CLIPS = [
    # max_norm below every step's norm: each step clipped
    ("sgd_always", "none", {"type": "sgd", "lr": 0.1}, 0.05, {}),
    # above most: clipped now and then
    ("momentum_sometimes", "layernorm", {"type": "sgd", "lr": 0.05, "momentum": 0.9}, 1.5, {}),
    ("adam_bn", "batchnorm", {"type": "adam", "lr": 0.003, "weight_decay": 0.01}, 0.3, {}),
    ("onecycle_sgd", "none", "sgd", 0.5, {"schedule": {"type": "onecycle", "max_lr": 0.05}}),
]


def conv(out, k, **kw):
    """A conv2d entry of "layers"."""
    return dict(type="conv2d", out_channels=out, kernel_size=k, **kw)


def pool(kind, k, **kw):
    """A maxpool2d or avgpool2d entry of "layers"."""
    return dict(type=kind + "pool2d", kernel_size=k, **kw)


# The reference CNN (docs/semantics.md): two blocks of convolution,
# BatchNorm2d, relu and 2×2 max pooling, then one linear layer.
REFERENCE_CNN = [conv(16, 3, padding=1), {"type": "batchnorm2d"}, "relu", pool("max", 2),
                 conv(32, 3, padding=1), {"type": "batchnorm2d"}, "relu", pool("max", 2),
                 "flatten", {"type": "linear", "out": 10}]

# Convolutional cases: name, data set, layers, the model's other fields,
# and the dtypes it runs in.
CNN = [
    ("mnist_reference", "mnist", REFERENCE_CNN,
     dict(init="kaiming_normal", optimizer={"type": "sgd", "lr": 0.01, "momentum": 0.9},
          batch_size=32, seed=42), ("float64",)),
    # In float32 the reference CNN is ill-conditioned: the bias of a
    # convolution before a BatchNorm2d has a zero gradient (its rounding
    # noise alone moves it), so here without those biases, at a seed
    # without a near-tie of relu or max pooling in its 24 steps.
    ("mnist_reference_nobias", "mnist",
     [dict(l, bias=False) if k in (0, 4) else l for k, l in enumerate(REFERENCE_CNN)],
     dict(init="kaiming_normal", optimizer={"type": "sgd", "lr": 0.01, "momentum": 0.9},
          batch_size=32, seed=0), ("float32",)),
    ("k1_relu", "c3_8x8", [conv(5, 1), "relu", pool("max", 2), "flatten",
                           {"type": "linear", "out": 4}],
     dict(init="xavier_normal", optimizer={"type": "adam", "lr": 0.003}, batch_size=7),
     ("float32", "float64")),
    ("k2_s2_tanh", "c3_8x8", [conv(7, 2, stride=2), "tanh", "flatten",
                              {"type": "linear", "out": 4}],
     dict(init="normal", optimizer={"type": "sgd", "lr": 0.05}, batch_size=2), ("float64",)),
    ("k5_p2_gelu_avg3", "c1_12x10", [conv(3, 5, padding=2), "gelu", pool("avg", 3), "flatten",
                                     {"type": "linear", "out": 5}],
     dict(init="torch_default", optimizer={"type": "rmsprop", "lr": 0.001}, batch_size=7),
     ("float32",)),
    ("k35_silu_max23", "c5_7x9", [conv(3, [3, 5]), "silu", pool("max", [2, 3], stride=[2, 1]),
                                  "flatten", {"type": "linear", "out": 6}],
     dict(init="kaiming_normal", optimizer={"type": "adamw", "lr": 0.003}, batch_size=7),
     ("float32",)),
    ("k53_s12_p21_elu", "c1_12x10", [conv(5, [5, 3], stride=[1, 2], padding=[2, 1]), "elu",
                                     "flatten", {"type": "linear", "out": 5}],
     dict(init="xavier_normal", optimizer={"type": "sgd", "lr": 0.01, "momentum": 0.9,
                                           "nesterov": True}, batch_size=32), ("float64",)),
    ("nobias_bn2d_adam", "c3_8x8", [conv(5, 3, padding=1, bias=False), {"type": "batchnorm2d"},
                                    "relu", pool("max", 3, stride=2), "flatten",
                                    {"type": "linear", "out": 4}],
     dict(init="kaiming_normal", optimizer={"type": "adam", "lr": 0.001}, batch_size=7),
     ("float32",)),
    ("bn2d_mom03_eps", "c5_7x9", [conv(7, 3), {"type": "batchnorm2d", "momentum": 0.3,
                                               "eps": 1e-3},
                                  {"type": "leaky_relu", "slope": 0.2},
                                  pool("avg", 2, stride=3), "flatten",
                                  {"type": "linear", "out": 6}],
     dict(init="torch_default", optimizer={"type": "sgd", "momentum": 0.5}, batch_size=7),
     ("float32",)),
    ("bn2d_cumulative", "c1_12x10", [conv(3, 3), {"type": "batchnorm2d", "momentum": None},
                                     "sigmoid", "flatten", {"type": "linear", "out": 5}],
     dict(init="normal", optimizer={"type": "sgd", "lr": 0.05}, batch_size=32),
     ("float32", "float64")),
    ("bn2d_batch1", "c3_8x8", [conv(3, 3, padding=1), {"type": "batchnorm2d"}, "relu",
                               pool("max", 2), "flatten", {"type": "linear", "out": 4}],
     dict(init="kaiming_normal", optimizer="sgd", batch_size=1), ("float32", "float64")),
    ("dropout", "c5_7x9", [conv(7, 3), "relu", {"type": "dropout", "p": 0.3}, pool("max", 2),
                           "flatten", {"type": "linear", "out": 6}],
     dict(init="xavier_normal", optimizer={"type": "adam", "lr": 0.003}, batch_size=7),
     ("float32", "float64")),
    ("mix_bn1d", "c3_8x8", [conv(5, 3, stride=2), "relu", "flatten",
                            {"type": "linear", "out": 16}, {"type": "batchnorm"}, "tanh",
                            {"type": "dropout", "p": 0.2}, {"type": "linear", "out": 4}],
     dict(init="kaiming_normal", optimizer={"type": "sgd", "momentum": 0.9}, batch_size=32),
     ("float32", "float64")),
    ("deep3", "c1_12x10", [conv(3, 3, padding=1), "relu",
                           conv(5, 3, stride=2, padding=1, init="xavier_normal"), "relu",
                           conv(7, [3, 5], padding=[1, 2]), "tanh", pool("avg", 2), "flatten",
                           {"type": "linear", "out": 5, "init": "torch_default"}],
     dict(init="kaiming_normal", optimizer={"type": "adam", "lr": 0.001}, batch_size=7),
     ("float32", "float64")),
    ("avg_first_centered", "c3_8x8", [pool("avg", [2, 3], stride=[1, 2]), conv(3, 2), "relu",
                                      "flatten", {"type": "linear", "out": 4}],
     dict(init="normal", optimizer={"type": "rmsprop", "lr": 0.001, "centered": True,
                                    "momentum": 0.5}, batch_size=2), ("float64",)),
    ("out1_max_k3s1", "c5_7x9", [conv(1, 1), "relu", pool("max", 3, stride=1), "flatten",
                                 {"type": "linear", "out": 6}],
     dict(init="torch_default", optimizer={"type": "sgd", "lr": 0.05}, batch_size=2),
     ("float32",)),
    ("s2_p2_max_gap", "c1_12x10", [conv(3, 3, stride=2, padding=2), "relu",
                                   pool("max", 2, stride=3), "flatten",
                                   {"type": "linear", "out": 5}],
     dict(init="kaiming_normal", optimizer="adamw", batch_size=7), ("float32", "float64")),
    ("mnist_k5_s2_avg", "mnist", [conv(5, 5, stride=2), "relu", pool("avg", 3), "flatten",
                                  {"type": "linear", "out": 10}],
     dict(init="xavier_normal", optimizer={"type": "adam", "lr": 0.001}, batch_size=7),
     ("float32",)),
    ("bn2d_rmsprop_decay", "c5_7x9", [conv(3, [5, 3], padding=1, bias=False),
                                      {"type": "batchnorm2d", "eps": 1e-3}, "elu",
                                      pool("max", 2), "flatten", {"type": "linear", "out": 6}],
     dict(init="torch_default", optimizer={"type": "rmsprop", "lr": 0.001,
                                           "weight_decay": 0.01}, batch_size=2), ("float64",)),
]


def cnn_cases():
    """The convolutional cases, after the others: "cnn_NAME_32/64"."""
    out = []
    for k, (name, data, layers, kw, dtypes) in enumerate(CNN):
        for dtype in dtypes:
            out.append(case("cnn_%s_%s" % (name, dtype[5:]), data, layers=layers, dtype=dtype,
                            **dict(dict(seed=500 + k), **kw)))
    return out


# The training recipes on convolutional networks: name, data set, layers,
# epochs, the model's other fields. Each in both precisions.
CNN_RECIPES = [
    # onecycle behind a warmup, clipping now and then, and label
    # smoothing, through BatchNorm2d (its convolution without the bias it
    # cannot train)
    ("onecycle_clip_smooth", "c3_8x8", [conv(6, 3, padding=1, bias=False),
                                        {"type": "batchnorm2d"}, "relu", pool("max", 2),
                                        "flatten", {"type": "linear", "out": 4}], 3,
     dict(init="kaiming_normal", optimizer={"type": "sgd", "lr": 0.05, "momentum": 0.9},
          schedule={"type": "onecycle", "max_lr": 0.05, "warmup": 4}, clip_grad_norm=2.0,
          label_smoothing=0.1, batch_size=16, seed=901)),
    # cosine behind a warmup, with Adam, every step clipped
    ("cosine_clip_adam", "c5_7x9", [conv(4, 3), "tanh", pool("avg", 2), "flatten",
                                    {"type": "linear", "out": 6}], 3,
     dict(init="xavier_normal", optimizer={"type": "adam", "lr": 0.003},
          schedule={"type": "cosine", "T_max": 2, "warmup": 6}, clip_grad_norm=0.3,
          batch_size=8)),
    # a validation split of images, early stopping that stops (after
    # epoch 2 in float32, 4 in float64) and keeps the epoch before, under
    # StepLR
    ("val_stop_step", "c1_12x10", [conv(3, 3), "relu", pool("max", 2), "flatten",
                                   {"type": "linear", "out": 5}], 12,
     dict(init="kaiming_normal", optimizer={"type": "sgd", "lr": 0.7},
          schedule={"type": "step", "step_size": 1, "gamma": 0.9}, label_smoothing=0.05,
          validation=0.25, early_stopping={"patience": 1}, batch_size=16, seed=907)),
]


def cnn_recipe_cases():
    """The training recipes on convolutional networks, after the other
    convolutional cases: "cnn_recipe_NAME_32/64"."""
    out = []
    for k, (name, data, layers, epochs, kw) in enumerate(CNN_RECIPES):
        for dtype in ("float32", "float64"):
            out.append(case("cnn_recipe_%s_%s" % (name, dtype[5:]), data, epochs=epochs,
                            layers=layers, dtype=dtype, **dict(dict(seed=900 + k), **kw)))
    return out


# Schedules at their edges, after every other case: name, norm,
# optimizer, epochs, schedule (on "wide", 8 steps an epoch).
SCHEDULE_EDGES = [
    # a warmup longer than the run: LinearLR never reaches the lr
    ("warmup_past_run", "none", {"type": "sgd", "lr": 0.1, "momentum": 0.5}, 2,
     {"type": "step", "step_size": 1, "gamma": 0.5, "warmup": 100}),
    # pct_start x total_steps below 1: no rising phase, OneCycleLR anneals from its start
    ("onecycle_no_rise", "layernorm", "adam", 2,
     {"type": "onecycle", "max_lr": 0.01, "pct_start": 0.05}),
    # a warmup that leaves the cycle one step of the run (total_steps 1)
    ("onecycle_one_step", "none", {"type": "sgd", "lr": 0.05}, 2,
     {"type": "onecycle", "max_lr": 0.1, "warmup": 15}),
    # eta_min above the lr: the cosine rises, over four periods of T_max 1
    ("cosine_rising", "none", "rmsprop", 4, {"type": "cosine", "T_max": 1, "eta_min": 0.003}),
]


def edge_cases():
    """The schedules at their edges, in both precisions: "sched_edge_NAME_32/64"."""
    out = []
    for k, (name, norm, o, epochs, sched) in enumerate(SCHEDULE_EDGES):
        for dtype in ("float32", "float64"):
            out.append(case("sched_edge_%s_%s" % (name, dtype[5:]), "wide", epochs=epochs,
                            hidden=[13], norm=norm, activation=ACTS[(k + 1) % 7], optimizer=o,
                            schedule=sched, init=INITS[(k + 3) % 4], batch_size=16, dtype=dtype,
                            seed=950 + k))
    return out


# ---- raw draws (tests/test_init.c) ----

DRAWS = [("uniform.1", 0, 1.0, 1), ("uniform.37", 0, 0.125, 37), ("normal.1", 1, 1.0, 1),
         ("normal.10", 1, 2.0, 10), ("normal.3", 1, 0.5, 3), ("normal.15", 1, 1.0, 15),
         ("normal.16", 1, 1.0, 16), ("normal.17", 1, 0.3, 17), ("normal.37", 1, 0.05, 37),
         ("normal.1000", 1, 1.0, 1000), ("uniform.100", 0, 0.0357, 100), ("normal.5", 1, 1.0, 5)]


def torch_rng():
    """The draws test_init.c replays: one generator per precision."""
    out = {}
    for prefix, dt in (("f32", torch.float32), ("f64", torch.float64)):
        torch.manual_seed(2024)
        for name, normal, a, n in DRAWS:
            t = torch.empty(n, dtype=dt)
            t.normal_(0, a) if normal else t.uniform_(-a, a)
            out[prefix + "." + name] = t
    save_safetensors(os.path.join(HERE, "torch_rng.safetensors"), out)


# ---- checking the mlpc binary both ways ----


def mlpc_steps(mlpc, c, tmp):
    """mlpc on the case from PyTorch's initial weights, 4 batches in file
    order: the path of the weights it saved."""
    m = dict(c["model"], data=os.path.join(HERE, "data", c["data"]))
    mf, out = os.path.join(tmp, "m.json"), os.path.join(tmp, "out.safetensors")
    json.dump(m, open(mf, "w"))
    init = os.path.join(HERE, "cases", c["name"] + ".init.safetensors")
    r = subprocess.run([mlpc, mf, "--run", "--no-shuffle", "--epochs", "1",
                        "--max-batches", "4", "--backend", "tcc",
                        "--load-weights", init, "--save-weights", out],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("mlpc failed: " + r.stderr.strip())
    return out


def torch_steps(c):
    """PyTorch on the same 4 batches from the same weights."""
    m = c["model"]
    ref = build(m)
    ref.load_state_dict(load_safetensors(
        os.path.join(HERE, "cases", c["name"] + ".init.safetensors")), strict=True)
    xtr, ytr = load_set(c["data"], "train", m["input"])
    opt = optimizer(ref, m.get("optimizer", "sgd"))
    b = m.get("batch_size", 32)
    for s in range(min(4, (len(ytr) + b - 1) // b)):
        STEP[0] = s
        x = xtr[s * b:(s + 1) * b].to(torch.get_default_dtype()) / 255
        opt.zero_grad()
        F.cross_entropy(ref(x), ytr[s * b:(s + 1) * b]).backward()
        opt.step()
    return ref


def check_mlpc(mlpc, suite):
    """PyTorch's weights into mlpc, mlpc's weights back into PyTorch
    (load_state_dict, strict); exits 1 if any case failed."""
    worst, failed = 0.0, []
    for c in suite:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                model = build(c["model"])
                model.load_state_dict(load_safetensors(mlpc_steps(mlpc, c, tmp)), strict=True)
            diff = max(((model.state_dict()[k].double() - v.double()).abs().max().item()
                        for k, v in torch_steps(c).state_dict().items()), default=0)
        except RuntimeError as e:  # mlpc's exit, or load_state_dict's refusal
            print("%-34s FAILED: %s" % (c["name"], str(e).strip()))
            failed.append(c["name"])
            continue
        worst = max(worst, diff)
        print("%-34s loaded into PyTorch, max |diff| after 4 steps %.3g" % (c["name"], diff))
    print("worst %.3g; %d of %d cases failed" % (worst, len(failed), len(suite)))
    if failed:
        sys.exit(1)


def main():
    os.makedirs(os.path.join(HERE, "cases"), exist_ok=True)
    if len(sys.argv) == 3 and sys.argv[1] == "--check-mlpc":
        suite = json.load(open(os.path.join(HERE, "cases.json")))["cases"]
        recipes = {"schedule", "clip_grad_norm", "label_smoothing", "validation"}
        plain = [c for c in suite if not recipes & set(c["model"])]
        cnn = [c for c in plain if c["name"].startswith("cnn_")]
        check_mlpc(sys.argv[2], [c for c in plain if c["data"] != "mnist" and c not in cnn][::5]
                   + cnn)
        return
    mnist_cut()
    for name, (image, classes, ntrain, ntest, seed) in SETS.items():
        blobs(name, image, classes, ntrain, ntest, seed)
    torch_rng()
    suite = cases() + cnn_cases() + cnn_recipe_cases() + edge_cases()
    bad = []
    for c in suite:
        run_case(c)
        c["torch_spread"] = spread(c)
        bound = 1e-10 if c["model"].get("dtype") == "float64" else 1e-4
        if (c.get("stop_margin") or math.inf) < bound * 10:  # early stopping could choose else
            c["torch_spread"] = math.inf
        loss = c["loss"] if "loss" in c else [f["val_loss"] for f in c["epochs_figures"]]
        print("%-34s %3d %s, %s %.4f → %.4f, test %.4f → %.4f, spread %.1e%s" % (
            c["name"], len(loss), "steps" if "loss" in c else "epochs",
            "loss" if "loss" in c else "val", loss[0], loss[-1], c["test_loss_init"],
            c["test_loss"], c["torch_spread"], "  ILL-CONDITIONED" if
            c["torch_spread"] > bound / 10 else ""))
        if c["torch_spread"] > bound / 10:
            bad.append(c["name"])
    if bad:
        sys.exit("gen.py: ill-conditioned, change them: " + ", ".join(bad))
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": suite}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
