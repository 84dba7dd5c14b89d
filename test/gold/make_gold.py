#!/usr/bin/python3
"""Generate PyTorch gold data for Gradient Lens.

Run from the repo root:
    /usr/bin/python3 test/gold/make_gold.py

Writes test/fixtures/ops.json and test/fixtures/models/<name>.json.
Everything is computed in float64 with fixed seeds (per-case seed = crc32(name)),
so the output is deterministic for a given torch build.
See test/gold/README.md for the format.
"""
import base64
import json
import math
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models as M  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(REPO, "test", "fixtures")


# ============================================================== encoding
def enc(t):
    """Tensor -> {"shape", "dtype", "data"} (float64 as base64 LE bytes; int/bool as flat lists)."""
    t = t.detach().cpu()
    shape = list(t.shape)
    if t.dtype == torch.bool:
        return {"shape": shape, "dtype": "bool", "data": [int(v) for v in t.reshape(-1).tolist()]}
    if t.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        return {"shape": shape, "dtype": "int64", "data": [int(v) for v in t.reshape(-1).tolist()]}
    arr = np.ascontiguousarray(t.to(torch.float64).numpy(), dtype="<f8")
    return {"shape": shape, "dtype": "float64", "data": base64.b64encode(arr.tobytes()).decode()}


def seed_for(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


# ============================================================== input generators
def randn(*shape):
    return torch.randn(shape)


def uniform(lo, hi, *shape):
    return torch.rand(shape) * (hi - lo) + lo


def positive(*shape):
    """Values in [0.5, 2] (log/sqrt/pow bases)."""
    return uniform(0.5, 2.0, *shape)


def nonzero(*shape, margin=0.1):
    """randn pushed away from 0: |x| >= margin (for abs/relu/leaky_relu kinks)."""
    x = torch.randn(shape)
    return x + torch.sign(x) * margin


def denom(*shape):
    """Random sign, magnitude in [0.5, 2] (division denominators)."""
    s = torch.where(torch.rand(shape) < 0.5, -1.0, 1.0)
    return s * uniform(0.5, 2.0, *shape)


def tiefree(*shape):
    """Distinct values with gaps >= ~0.08 (max reductions / max-pool without ties)."""
    n = int(np.prod(shape)) if len(shape) else 1
    v = (torch.randperm(n).to(torch.float64) - n / 2.0) * 0.1 + uniform(0.0, 0.02, n)
    return v.reshape(shape)


def randint(lo, hi, *shape):
    return torch.randint(lo, hi, shape, dtype=torch.int64)


# ============================================================== op cases
CASES = []
NAMES = set()


def add_case(name, op, attrs, inputs, fn, extra_fn=None, check=True):
    """inputs: list of (tensor, grad_flag) built AFTER seeding (pass a lambda)."""
    assert name not in NAMES, name
    NAMES.add(name)
    torch.manual_seed(seed_for(name))
    spec = inputs()  # list of (tensor, grad)
    leaves = []
    for t, g in spec:
        t = t.detach().clone()
        if g:
            t.requires_grad_(True)
        leaves.append(t)
    outs = fn(*leaves)
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    ups = [torch.randn(o.shape) for o in outs]
    total = sum((o * u).sum() for o, u in zip(outs, ups))
    gidx = [i for i, (_, g) in enumerate(spec) if g]
    gs = torch.autograd.grad(total, [leaves[i] for i in gidx], allow_unused=True)
    grads = [None] * len(spec)
    for i, g in zip(gidx, gs):
        grads[i] = torch.zeros_like(leaves[i]) if g is None else g
    case = {
        "name": name,
        "op": op,
        "attrs": attrs,
        "inputs": [dict(enc(t), grad=bool(g)) for t, (_, g) in zip(leaves, spec)],
        "outputs": [enc(o) for o in outs],
        "upstream": [enc(u) for u in ups],
        "grads": [None if g is None else enc(g) for g in grads],
    }
    if extra_fn is not None:
        case["extra"] = {k: enc(v) for k, v in extra_fn().items()}
    for o in outs:
        assert torch.isfinite(o).all(), name
    if check and gidx:
        # finite-difference check: catches inputs sitting on kinks / ties
        base = [t.detach().clone() for t in leaves]

        def f_of(*gin):
            args = list(t.clone() for t in base)
            for i, v in zip(gidx, gin):
                args[i] = v
            o = fn(*args)
            return o if isinstance(o, (tuple, list)) else (o,)

        gin = [base[i].clone().requires_grad_(True) for i in gidx]
        ok = torch.autograd.gradcheck(f_of, gin, eps=1e-6, atol=1e-5, rtol=1e-4,
                                      raise_exception=False)
        assert ok, "gradcheck failed for " + name
    CASES.append(case)


def build_ops():
    # ---------------------------------------------------------- binary arithmetic
    bin_fns = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
    }
    bin_shapes = [
        ("same", [2, 3, 4], [2, 3, 4]),
        ("bcast", [2, 3, 4], [3, 1]),
        ("bcast_rank", [4], [2, 3, 4]),
        ("scalar", [], [2, 3]),
    ]
    for op, fn in bin_fns.items():
        for tag, sa, sb in bin_shapes:
            gb = denom if op == "div" else randn
            add_case(f"{op}_{tag}", op, {},
                     lambda sa=sa, sb=sb, gb=gb: [(randn(*sa), True), (gb(*sb), True)], fn)

    # ---------------------------------------------------------- unary
    unary = {
        "neg": (torch.neg, randn),
        "exp": (torch.exp, randn),
        "log": (torch.log, positive),
        "sqrt": (torch.sqrt, positive),
        "abs": (torch.abs, nonzero),
        "tanh": (torch.tanh, randn),
        "sigmoid": (torch.sigmoid, randn),
        "relu": (torch.relu, nonzero),
        "erf": (torch.erf, randn),
        "sin": (torch.sin, lambda *s: uniform(-6, 6, *s)),
        "cos": (torch.cos, lambda *s: uniform(-6, 6, *s)),
        "tan": (torch.tan, lambda *s: uniform(-1.3, 1.3, *s)),
        "asin": (torch.asin, lambda *s: uniform(-0.9, 0.9, *s)),
        "acos": (torch.acos, lambda *s: uniform(-0.9, 0.9, *s)),
        "atan": (torch.atan, lambda *s: uniform(-4, 4, *s)),
    }
    for op, (fn, gen) in unary.items():
        add_case(op, op, {}, lambda gen=gen: [(gen(2, 3, 4), True)], fn)

    # ---------------------------------------------------------- grid_sample (ONNX GridSample)
    # Coordinates up to 1.1 reach outside the input. Bicubic with border padding stays inside: there ONNX
    # clamps an outside coordinate before taking its taps and PyTorch clamps each tap (the importer follows
    # ONNX, engine/ops/resize.ts gridSample).
    grid_cases = [
        ("grid_sample_bilinear_zeros", "bilinear", "zeros", False, [2, 2, 4, 5], [2, 3, 2, 2], 1.1),
        ("grid_sample_bilinear_reflection_aligned", "bilinear", "reflection", True, [1, 2, 4, 5], [1, 3, 3, 2], 1.1),
        ("grid_sample_bicubic_border", "bicubic", "border", False, [1, 2, 4, 5], [1, 2, 3, 2], 1.0),
        ("grid_sample_bicubic_zeros", "bicubic", "zeros", True, [1, 2, 4, 5], [1, 2, 3, 2], 1.1),
        ("grid_sample_nearest_zeros", "nearest", "zeros", False, [1, 2, 4, 5], [1, 2, 3, 2], 1.1),
        ("grid_sample_trilinear_border", "bilinear", "border", False, [1, 2, 3, 4, 5], [1, 2, 2, 2, 3], 1.1),
    ]
    for name, mode, padding, align, xs, gs, reach in grid_cases:
        add_case(name, "grid_sample", {"mode": mode, "padding_mode": padding, "align_corners": align},
                 lambda xs=xs, gs=gs, mode=mode, reach=reach: [(randn(*xs), True), (uniform(-reach, reach, *gs), mode != "nearest")],
                 lambda x, g, mode=mode, padding=padding, align=align: F.grid_sample(x, g, mode=mode, padding_mode=padding, align_corners=align))

    # ---------------------------------------------------------- pow
    add_case("pow_scalar", "pow", {"exponent": 3.0},
             lambda: [(randn(2, 3, 4), True)], lambda x: torch.pow(x, 3.0))
    add_case("pow_scalar_frac", "pow", {"exponent": 0.5},
             lambda: [(positive(2, 3, 4), True)], lambda x: torch.pow(x, 0.5))
    add_case("pow_tensor", "pow", {},
             lambda: [(positive(2, 3), True), (randn(3), True)], lambda a, b: torch.pow(a, b))

    # ---------------------------------------------------------- activations
    add_case("leaky_relu", "leaky_relu", {"negative_slope": 0.1},
             lambda: [(nonzero(2, 3, 4), True)], lambda x: F.leaky_relu(x, 0.1))
    add_case("gelu", "gelu", {"approximate": "none"},
             lambda: [(randn(2, 3, 4), True)], lambda x: F.gelu(x, approximate="none"))
    add_case("gelu_tanh", "gelu", {"approximate": "tanh"},
             lambda: [(randn(2, 3, 4), True)], lambda x: F.gelu(x, approximate="tanh"))

    # ---------------------------------------------------------- matmul
    mm = [
        ("matmul_2d_2d", [3, 4], [4, 5]),
        ("matmul_1d_2d", [4], [4, 5]),
        ("matmul_2d_1d", [3, 4], [4]),
        ("matmul_1d_1d", [4], [4]),
        ("matmul_4d_2d", [2, 3, 4, 5], [5, 6]),
        ("matmul_bcast_4d", [2, 1, 3, 4], [1, 5, 4, 2]),
        ("matmul_1d_3d", [5], [2, 5, 3]),
    ]
    for name, sa, sb in mm:
        add_case(name, "matmul", {},
                 lambda sa=sa, sb=sb: [(randn(*sa), True), (randn(*sb), True)], torch.matmul)

    # ---------------------------------------------------------- gemm
    def gemm(alpha, beta, ta, tb):
        def f(a, b, c):
            a2 = a.t() if ta else a
            b2 = b.t() if tb else b
            return alpha * (a2 @ b2) + beta * c
        return f

    add_case("gemm_basic", "gemm", {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0},
             lambda: [(randn(3, 4), True), (randn(4, 5), True), (randn(5), True)],
             gemm(1.0, 1.0, 0, 0))
    add_case("gemm_transB", "gemm", {"alpha": 0.5, "beta": 2.0, "transA": 0, "transB": 1},
             lambda: [(randn(3, 4), True), (randn(5, 4), True), (randn(3, 5), True)],
             gemm(0.5, 2.0, 0, 1))
    add_case("gemm_transA", "gemm", {"alpha": 1.0, "beta": 1.0, "transA": 1, "transB": 0},
             lambda: [(randn(4, 3), True), (randn(4, 5), True), (randn(1, 5), True)],
             gemm(1.0, 1.0, 1, 0))

    # ---------------------------------------------------------- shape ops
    add_case("transpose", "transpose", {"dim0": 0, "dim1": 2},
             lambda: [(randn(2, 3, 4), True)], lambda x: x.transpose(0, 2))
    add_case("transpose_neg", "transpose", {"dim0": -1, "dim1": 1},
             lambda: [(randn(2, 3, 4), True)], lambda x: x.transpose(-1, 1))
    for name, perm in [("permute", [0, 2, 3, 1]), ("permute_2", [3, 1, 0, 2])]:
        add_case(name, "permute", {"perm": perm},
                 lambda: [(randn(2, 3, 2, 4), True)], lambda x, perm=perm: x.permute(*perm))
    add_case("reshape", "reshape", {"shape": [6, 4]},
             lambda: [(randn(2, 3, 4), True)], lambda x: x.reshape(6, 4))
    add_case("reshape_infer", "reshape", {"shape": [4, -1]},
             lambda: [(randn(2, 3, 4), True)], lambda x: x.reshape(4, -1))

    def squeeze_dims(dims):
        def f(x):
            if dims is None:
                return x.squeeze()
            nd = x.dim()
            for d in sorted({d % nd for d in dims}, reverse=True):
                x = x.squeeze(d)
            return x
        return f

    for name, dims in [("squeeze", [1]), ("squeeze_multi", [1, -1]), ("squeeze_all", None)]:
        add_case(name, "squeeze", {"dims": dims},
                 lambda: [(randn(2, 1, 3, 1), True)], squeeze_dims(dims))
    add_case("unsqueeze", "unsqueeze", {"dim": 1},
             lambda: [(randn(2, 3), True)], lambda x: x.unsqueeze(1))
    add_case("unsqueeze_neg", "unsqueeze", {"dim": -1},
             lambda: [(randn(2, 3), True)], lambda x: x.unsqueeze(-1))

    def onnx_slice(starts, ends, axes, steps):
        def f(x):
            sl = [slice(None)] * x.dim()
            for s, e, a, st in zip(starts, ends, axes, steps):
                assert st > 0
                sl[a % x.dim()] = slice(s, e, st)  # python slicing == ONNX clamping for step>0
            return x[tuple(sl)]
        return f

    slices = [
        ("slice_simple", [4, 6], [1], [3], [0], [1]),
        ("slice_negative", [4, 6], [-4], [-1], [1], [1]),
        ("slice_step2", [3, 5, 6], [0, 1], [5, 6], [1, 2], [2, 2]),
        ("slice_clamp", [4, 6], [1, 2], [1000, 1000], [0, 1], [1, 1]),
    ]
    for name, shp, st, en, ax, sp in slices:
        add_case(name, "slice", {"starts": st, "ends": en, "axes": ax, "steps": sp},
                 lambda shp=shp: [(randn(*shp), True)], onnx_slice(st, en, ax, sp))

    concats = [
        ("concat_axis0", 0, [[1, 3], [2, 3], [3, 3]]),
        ("concat_axis1", 1, [[2, 3], [2, 1], [2, 2]]),
        ("concat_axis_neg1", -1, [[2, 3, 1], [2, 3, 2], [2, 3, 3]]),
    ]
    for name, axis, shapes in concats:
        add_case(name, "concat", {"axis": axis},
                 lambda shapes=shapes: [(randn(*s), True) for s in shapes],
                 lambda *xs, axis=axis: torch.cat(xs, dim=axis))

    add_case("split_axis1", "split", {"sizes": [2, 3, 2], "axis": 1},
             lambda: [(randn(2, 7), True)], lambda x: torch.split(x, [2, 3, 2], dim=1))
    add_case("split_axis_neg1", "split", {"sizes": [1, 3], "axis": -1},
             lambda: [(randn(2, 3, 4), True)], lambda x: torch.split(x, [1, 3], dim=-1))

    def gather(axis):
        def f(data, idx):
            ax = axis % data.dim()
            out = torch.index_select(data, ax, idx.reshape(-1))
            shape = list(data.shape[:ax]) + list(idx.shape) + list(data.shape[ax + 1:])
            return out.reshape(shape)
        return f

    add_case("gather_embedding", "gather", {"axis": 0},
             lambda: [(randn(10, 4), True),
                      (torch.tensor([[1, 3, 1], [7, 3, 0]], dtype=torch.int64), False)],
             gather(0))
    add_case("gather_axis1", "gather", {"axis": 1},
             lambda: [(randn(3, 5, 2), True),
                      (torch.tensor([4, 0, 2, 0], dtype=torch.int64), False)],
             gather(1))

    def gather_nd(batch_dims):
        # ONNX GatherND through PyTorch advanced indexing: each row of idx's last axis indexes
        # data's dims batch_dims.. (the first batch_dims dims are shared by data and idx).
        def f(data, idx):
            if batch_dims == 0:
                return data[tuple(idx[..., j] for j in range(idx.shape[-1]))]
            b = torch.arange(data.shape[0]).reshape([-1] + [1] * (idx.dim() - 2)).expand(idx.shape[:-1])
            return data[(b,) + tuple(idx[..., j] for j in range(idx.shape[-1]))]
        return f

    # Repeated and negative tuples: the VJP must accumulate and wrap.
    add_case("gather_nd_pairs", "gather_nd", {"batch_dims": 0},
             lambda: [(randn(3, 4, 2), True),
                      (torch.tensor([[[0, 1], [2, 3]], [[0, 1], [-1, 0]]], dtype=torch.int64), False)],
             gather_nd(0))
    add_case("gather_nd_full", "gather_nd", {"batch_dims": 0},
             lambda: [(randn(2, 3), True), (torch.tensor([[1, 2], [0, 0], [1, 2]], dtype=torch.int64), False)],
             gather_nd(0))
    add_case("gather_nd_batch1", "gather_nd", {"batch_dims": 1},
             lambda: [(randn(2, 4, 3), True), (torch.tensor([[[3], [1]], [[0], [0]]], dtype=torch.int64), False)],
             gather_nd(1))

    add_case("where_bcast", "where", {},
             lambda: [(torch.tensor([[1, 0, 1], [0, 0, 1]], dtype=torch.bool), False),
                      (randn(2, 3), True), (randn(3), True)],
             torch.where)
    add_case("where_bcast_scalar", "where", {},
             lambda: [(torch.tensor([[1], [0]], dtype=torch.bool), False),
                      (randn(2, 3), True), (randn(), True)],
             torch.where)

    add_case("expand_3d", "expand", {"shape": [2, 3, 4]},
             lambda: [(randn(3, 1), True)], lambda x: x.expand(2, 3, 4))
    add_case("expand_2d", "expand", {"shape": [3, 4]},
             lambda: [(randn(1, 4), True)], lambda x: x.expand(3, 4))

    # ---------------------------------------------------------- softmax family
    for op, fn in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
        add_case(f"{op}_axis_neg1", op, {"axis": -1},
                 lambda: [(randn(2, 3, 4), True)], lambda x, fn=fn: fn(x, dim=-1))
        add_case(f"{op}_axis1", op, {"axis": 1},
                 lambda: [(randn(2, 3, 4), True)], lambda x, fn=fn: fn(x, dim=1))

    # ---------------------------------------------------------- normalisation
    add_case("layer_norm_last", "layer_norm", {"normalized_shape": [8], "eps": 1e-5},
             lambda: [(randn(2, 3, 8), True), (randn(8), True), (randn(8), True)],
             lambda x, w, b: F.layer_norm(x, [8], w, b, 1e-5))
    add_case("layer_norm_2d", "layer_norm", {"normalized_shape": [3, 4], "eps": 1e-5},
             lambda: [(randn(2, 3, 4), True), (randn(3, 4), True), (randn(3, 4), True)],
             lambda x, w, b: F.layer_norm(x, [3, 4], w, b, 1e-5))

    def rms_norm(x, w, eps=1e-6):
        return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w

    add_case("rms_norm", "rms_norm", {"eps": 1e-6},
             lambda: [(randn(2, 3, 8), True), (randn(8), True)], rms_norm)

    def bn_case(name, xshape, training):
        C = xshape[1]
        state = {}

        def inputs():
            return [(randn(*xshape), True), (randn(C), True), (randn(C), True),
                    (randn(C), False), (positive(C), False)]

        def fn(x, w, b, rm, rv):
            rm2, rv2 = rm.clone(), rv.clone()
            y = F.batch_norm(x, rm2, rv2, w, b, training=training, momentum=0.1, eps=1e-5)
            state["running_mean"], state["running_var"] = rm2, rv2
            return y

        # extra_fn runs right after the recorded call (before gradcheck re-calls fn)
        add_case(name, "batch_norm", {"training": training, "momentum": 0.1, "eps": 1e-5},
                 inputs, fn, extra_fn=lambda: dict(state))

    bn_case("batch_norm_train_4d", [4, 3, 5, 5], True)
    bn_case("batch_norm_train_2d", [6, 3], True)
    bn_case("batch_norm_eval_4d", [4, 3, 5, 5], False)

    # ---------------------------------------------------------- conv2d
    def conv_case(name, xs, ws, bias, stride, padding, dilation, groups):
        attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}

        def inputs():
            ins = [(randn(*xs), True), (randn(*ws), True)]
            if bias:
                ins.append((randn(ws[0]), True))
            return ins

        def fn(x, w, b=None):
            return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation,
                            groups=groups)

        add_case(name, "conv2d", attrs, inputs, fn)

    conv_case("conv2d_pad1", [2, 3, 6, 6], [4, 3, 3, 3], True, [1, 1], [1, 1], [1, 1], 1)
    conv_case("conv2d_stride2", [1, 2, 7, 7], [3, 2, 3, 3], True, [2, 2], [0, 0], [1, 1], 1)
    conv_case("conv2d_stride2_dil2_pad12", [1, 2, 7, 7], [3, 2, 3, 3], True,
              [2, 2], [1, 2], [2, 2], 1)
    conv_case("conv2d_groups2_nobias", [1, 4, 5, 5], [6, 2, 3, 3], False,
              [1, 1], [0, 0], [1, 1], 2)
    conv_case("conv2d_depthwise", [1, 4, 5, 5], [4, 1, 3, 3], True, [1, 1], [1, 1], [1, 1], 4)
    conv_case("conv2d_1x1", [2, 3, 4, 4], [5, 3, 1, 1], True, [1, 1], [0, 0], [1, 1], 1)

    # ---------------------------------------------------------- pooling
    add_case("max_pool2d_2x2", "max_pool2d",
             {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1]},
             lambda: [(tiefree(2, 2, 4, 4), True)],
             lambda x: F.max_pool2d(x, 2, 2, 0))
    add_case("max_pool2d_3x3_s2_p1", "max_pool2d",
             {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1]},
             lambda: [(tiefree(1, 2, 5, 5), True)],
             lambda x: F.max_pool2d(x, 3, 2, 1))
    add_case("avg_pool2d_2x2", "avg_pool2d",
             {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "count_include_pad": True},
             lambda: [(randn(2, 2, 4, 4), True)],
             lambda x: F.avg_pool2d(x, 2, 2, 0))
    for tag, cip in [("excl", False), ("incl", True)]:
        add_case(f"avg_pool2d_3x3_p1_{tag}", "avg_pool2d",
                 {"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "count_include_pad": cip},
                 lambda: [(randn(1, 2, 5, 5), True)],
                 lambda x, cip=cip: F.avg_pool2d(x, 3, 1, 1, count_include_pad=cip))
    add_case("global_avg_pool", "global_avg_pool", {},
             lambda: [(randn(2, 3, 4, 5), True)], lambda x: F.adaptive_avg_pool2d(x, 1))

    # ---------------------------------------------------------- reductions
    red = {
        "sum": (lambda x, d, k: torch.sum(x, dim=d, keepdim=k), randn),
        "mean": (lambda x, d, k: torch.mean(x, dim=d, keepdim=k), randn),
        "max": (lambda x, d, k: torch.amax(x, dim=d, keepdim=k), tiefree),
    }
    for op, (rf, gen) in red.items():
        for tag, axes, kd in [("all", None, False), ("axis1", [1], False),
                              ("axes02_keepdims", [0, 2], True)]:
            def fn(x, rf=rf, axes=axes, kd=kd):
                d = tuple(range(x.dim())) if axes is None else tuple(axes)
                return rf(x, d, kd)
            add_case(f"{op}_{tag}", op, {"axes": axes, "keepdims": kd},
                     lambda gen=gen: [(gen(2, 3, 4), True)], fn)

    # ---------------------------------------------------------- losses
    def ce(ignore_index=-100, reduction="mean", label_smoothing=0.0):
        attrs = {"ignore_index": ignore_index, "reduction": reduction,
                 "label_smoothing": label_smoothing}

        def fn(logits, t):
            return F.cross_entropy(logits, t, ignore_index=ignore_index, reduction=reduction,
                                   label_smoothing=label_smoothing)
        return attrs, fn

    for name, kw, ins in [
        ("cross_entropy_mean", {}, lambda: [(randn(4, 5), True), (randint(0, 5, 4), False)]),
        ("cross_entropy_sum", {"reduction": "sum"},
         lambda: [(randn(4, 5), True), (randint(0, 5, 4), False)]),
        ("cross_entropy_none", {"reduction": "none"},
         lambda: [(randn(4, 5), True), (randint(0, 5, 4), False)]),
        ("cross_entropy_ignore_index", {"ignore_index": 2},
         lambda: [(randn(5, 5), True), (torch.tensor([2, 1, 2, 4, 0]), False)]),
        ("cross_entropy_label_smoothing", {"label_smoothing": 0.1},
         lambda: [(randn(4, 5), True), (randint(0, 5, 4), False)]),
        ("cross_entropy_nd", {},
         lambda: [(randn(2, 5, 3), True), (randint(0, 5, 2, 3), False)]),
    ]:
        attrs, fn = ce(**kw)
        add_case(name, "cross_entropy", attrs, ins, fn)

    for red_ in ["mean", "sum", "none"]:
        add_case(f"mse_loss_{red_}", "mse_loss", {"reduction": red_},
                 lambda: [(randn(3, 4), True), (randn(3, 4), True)],
                 lambda a, b, r=red_: F.mse_loss(a, b, reduction=r))


# ============================================================== models
def model_record(name, model, config, inputs, forward_loss, trainable=None, extras_fn=None,
                 buffers_before=None):
    params = {k: enc(v) for k, v in model.named_parameters()}
    if trainable is None:
        trainable = [k for k, v in model.named_parameters() if v.requires_grad]
    buffers_before = buffers_before or {}
    model.zero_grad(set_to_none=True)
    outputs, loss = forward_loss()
    loss.backward()
    pmap = dict(model.named_parameters())
    grads = {}
    for k in trainable:
        g = pmap[k].grad
        grads[k] = enc(torch.zeros_like(pmap[k]) if g is None else g)
    buffers_after = {k: enc(v) for k, v in model.named_buffers()
                     if k in buffers_before}
    rec = {
        "name": name,
        "torch": torch.__version__,
        "config": config,
        "params": params,
        "trainable": trainable,
        "buffers": buffers_before,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "outputs": {k: enc(v) for k, v in outputs.items()},
        "loss": float(loss.item()),
        "grads": grads,
        "buffers_after": buffers_after,
        "extras": extras_fn() if extras_fn else {},
    }
    return rec, pmap


def persistent_buffers(model):
    sd = model.state_dict()
    return {k: enc(v) for k, v in model.named_buffers() if k in sd}


def build_models():
    recs = {}

    # ---- 1. mlp_sigmoid
    torch.manual_seed(seed_for("mlp_sigmoid"))
    m = M.MLPSigmoid()
    x = randn(8, 16)
    t = randint(0, 10, 8)

    def fl():
        logits = m(x)
        return {"logits": logits}, F.cross_entropy(logits, t)
    recs["mlp_sigmoid"], _ = model_record(
        "mlp_sigmoid", m,
        {"d_in": 16, "d_hidden": 32, "d_out": 10, "n_layers": 10, "activation": "sigmoid",
         "loss": "cross_entropy"},
        {"x": x, "targets": t}, fl)

    # ---- 2. mlp_residual
    torch.manual_seed(seed_for("mlp_residual"))
    m2 = M.MLPResidual()
    x2 = randn(8, 16)
    t2 = randint(0, 10, 8)

    def fl2():
        logits = m2(x2)
        return {"logits": logits}, F.cross_entropy(logits, t2)
    recs["mlp_residual"], _ = model_record(
        "mlp_residual", m2,
        {"d_in": 16, "d_model": 32, "d_out": 10, "n_blocks": 8, "ln_eps": 1e-5,
         "block": "x + relu(fc(ln(x)))", "fc_init": "kaiming_normal_(relu), bias 0",
         "loss": "cross_entropy"},
        {"x": x2, "targets": t2}, fl2)

    # ---- 3. cnn
    torch.manual_seed(seed_for("cnn"))
    m3 = M.CNN()
    m3.train()
    x3 = randn(4, 3, 8, 8)
    t3 = randint(0, 10, 4)
    bufs3 = persistent_buffers(m3)

    def fl3():
        logits = m3(x3)
        return {"logits": logits}, F.cross_entropy(logits, t3)
    recs["cnn"], _ = model_record(
        "cnn", m3,
        {"in_channels": 3, "c1": 8, "c2": 16, "n_classes": 10, "kernel": 3, "padding": 1,
         "pool": "max_pool2d(2)", "mode": "train", "bn_momentum": 0.1, "bn_eps": 1e-5,
         "loss": "cross_entropy"},
        {"x": x3, "targets": t3}, fl3, buffers_before=bufs3)

    # ---- 4. gpt
    cfg = {"vocab_size": 16, "block_size": 8, "n_embd": 32, "n_head": 4, "n_layer": 2}
    torch.manual_seed(seed_for("gpt"))
    m4 = M.GPT(**cfg)
    with torch.no_grad():
        for blk in m4.blocks:
            for p in (blk.attn.q_proj, blk.attn.k_proj, blk.attn.v_proj):
                p.bias.normal_(0.0, 0.1)
    idx = randint(0, 16, 2, 8)
    t4 = randint(0, 16, 2, 8)
    for blk in m4.blocks:
        blk.attn.record = True

    def fl4():
        logits = m4(idx)
        return {"logits": logits}, F.cross_entropy(logits.view(-1, 16), t4.view(-1))

    def extras4():
        ex = {}
        for l, blk in enumerate(m4.blocks):
            a = blk.attn
            ex[f"attn.{l}.P"] = enc(a.P)
            ex[f"attn.{l}.dP"] = enc(a.P.grad)
            ex[f"attn.{l}.dS"] = enc(a.S.grad)
        return ex
    recs["gpt"], pm4 = model_record(
        "gpt", m4,
        dict(cfg, ln_eps=1e-5, mlp_hidden=128, gelu="none", attn_bias=True,
             init="normal(0,0.02) Linear/Embedding weights, zero biases, "
                  "then q/k/v biases normal(0,0.1)",
             loss="cross_entropy(logits.view(-1,16), targets.view(-1))"),
        {"idx": idx, "targets": t4}, fl4, extras_fn=extras4)
    for l in range(cfg["n_layer"]):
        g = pm4[f"blocks.{l}.attn.k_proj.bias"].grad
        print(f"  gpt: |d loss / d blocks.{l}.attn.k_proj.bias|max = {g.abs().max().item():.3e}"
              f" (expected ~0; q_proj.bias grad max = "
              f"{pm4[f'blocks.{l}.attn.q_proj.bias'].grad.abs().max().item():.3e})")
    for blk in m4.blocks:
        blk.attn.record = False
        blk.attn.S = blk.attn.P = None

    # ---- 5. lora
    torch.manual_seed(seed_for("lora"))
    m5 = M.LoRAModel()
    x5 = randn(8, 32)
    y5 = randn(8, 10)

    def fl5():
        out = m5(x5)
        return {"logits": out}, F.mse_loss(out, y5)
    recs["lora"], _ = model_record(
        "lora", m5,
        {"d_in": 32, "d_hidden": 32, "d_out": 10, "r": 4, "alpha": 8, "scale": 2.0,
         "lora_init": "randn*0.1 for both A and B", "loss": "mse_loss(mean)"},
        {"x": x5, "target": y5}, fl5)
    assert recs["lora"]["trainable"] == ["l1.lora_A", "l1.lora_B", "l2.lora_A", "l2.lora_B"]
    return recs


# ============================================================== main
def main():
    os.makedirs(os.path.join(FIXTURES, "models"), exist_ok=True)
    build_ops()
    ops = {"torch": torch.__version__, "cases": CASES}
    p = os.path.join(FIXTURES, "ops.json")
    with open(p, "w") as f:
        json.dump(ops, f, separators=(",", ":"))
    print(f"wrote {os.path.relpath(p, REPO)}: {len(CASES)} cases, {os.path.getsize(p)} bytes")

    recs = build_models()
    for name, rec in recs.items():
        p = os.path.join(FIXTURES, "models", f"{name}.json")
        with open(p, "w") as f:
            json.dump(rec, f, separators=(",", ":"))
        print(f"wrote {os.path.relpath(p, REPO)}: loss={rec['loss']:.6f}, "
              f"{len(rec['params'])} params, {len(rec['grads'])} grads, "
              f"{os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main()
