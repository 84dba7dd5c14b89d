"""Gradient Lens training recorder: per-step, per-module statistics from a PyTorch training loop.

Writes the JSON schema ``gradient-lens/training@1`` (docs/training-schema.md) and, as the job runs, the
append-only stream ``gradient-lens/training-stream@1`` (docs/training-stream.md), which the VS Code
extension imports ("Gradient Lens: Import Training Statistics...") or follows live ("Gradient Lens:
Attach to Training Job...") and draws on the model's source. Single file, needs only torch (>= 1.13,
2.x) and the standard library: copy it next to your script.

    from gradlens_recorder import GradLensRecorder

    recorder = GradLensRecorder(model, source=__file__, optimizer=optimizer, stream="runs/run.gradlens.jsonl")
    for x, y in loader:
        loss = loss_fn(model(x), y)          # forward hooks take activation statistics
        optimizer.zero_grad()
        loss.backward()
        recorder.after_backward(loss)        # BEFORE clipping and optimizer.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recorder.after_step()                # update ratios; writes the step to the stream
    recorder.save("run.gradlens.json")
    recorder.close()

Distributed jobs (torchrun): DDP (the wrapper or its ``.module``), FSDP2 (``fully_shard``, DTensor
parameters) and FSDP (v1). Create the recorder on every rank and call every method on every rank: the
statistics of sharded gradients, parameters and of each rank's part of the batch are combined with one
``all_reduce`` per recorded step; only rank 0 writes.

Demo: /usr/bin/python3 python/gradlens_recorder.py --demo examples/vanishing_mlp.py --steps 20 --out run.json
"""
import argparse
import importlib.util
import inspect
import json
import math
import os
import sys
import time
import warnings

import torch

SCHEMA = "gradient-lens/training@1"
STREAM_SCHEMA = "gradient-lens/training-stream@1"
SERIES = ("gradNorm", "paramNorm", "updateRatio", "actMean", "actStd", "zeroFraction")
__all__ = ["GradLensRecorder", "SCHEMA", "STREAM_SCHEMA"]


def _first_tensor(value):
    """The first tensor of a module output (tensor, tuple/list, dict, or an object with tensors)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            t = _first_tensor(v)
            if t is not None:
                return t
    elif isinstance(value, dict):
        for v in value.values():
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _is_float(t):
    return t is not None and t.is_floating_point() and t.numel() > 0


def _local(t):
    """This rank's part of a DTensor (FSDP2, tensor parallel); a plain tensor as is."""
    return t.to_local() if t is not None and hasattr(t, "to_local") and hasattr(t, "placements") else t


def _as_float(x):
    """Python float (or None) from a number or a 0-d tensor."""
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return float(x.detach().float().item())
    return float(x)


def _json_number(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def _encode(obj):
    """Non-finite floats become the strings "NaN", "Infinity", "-Infinity" (JSON has no such numbers)."""
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return _json_number(obj)
    return obj


def _dumps(obj):
    return json.dumps(_encode(obj), allow_nan=False, separators=(",", ":"))


def _finite(v):
    return v is not None and math.isfinite(v)


def _norms(tensors):
    """L2 norms of detached tensors as 0-d tensors, in float32 at least (half/bfloat16 overflow); one
    fused kernel per device and dtype where torch has ``_foreach_norm``."""
    out = [None] * len(tensors)
    groups = {}
    for i, t in enumerate(tensors):
        t = t.detach()
        if t.dtype in (torch.float16, torch.bfloat16) or not hasattr(torch, "_foreach_norm") or t.numel() == 0:
            out[i] = torch.linalg.vector_norm(t, dtype=torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None)
        else:
            groups.setdefault((t.device, t.dtype), []).append((i, t))
    for items in groups.values():
        for (i, _), n in zip(items, torch._foreach_norm([t for _, t in items])):
            out[i] = n
    return out


def _moments(o):
    """(mean, population variance, nonzeros, count) of a tensor as 0-d tensors, without a sync. Two passes
    (the mean, then the sum of squared deviations): no cancellation where E[x^2] - mean^2 would cancel, and
    on CPU several times faster than torch.var_mean's Welford reduction (3x on 2M floats, 8x on 0.5M)."""
    if o.dtype in (torch.float16, torch.bfloat16):
        o = o.float()
    n = o.numel()
    if n == 0:
        nan = torch.tensor(float("nan"), device=o.device)
        return nan, nan, torch.count_nonzero(o), 0
    mean = o.sum() / n
    # sum() of squares, not vector_norm(): torch's float32 norm accumulates without cascading (6e-5 relative
    # error on 2M elements, against 2e-7 here).
    var = (o - mean).square_().sum() / n
    return mean, var, torch.count_nonzero(o), n


def _any_non_finite(t):
    """True (a 0-d bool tensor) when some element is NaN or +-Inf: min and max propagate NaN and reach an
    Inf, so one aminmax answers it (20x faster on CPU than isfinite().all(), which writes a bool per element)."""
    if t.numel() == 0:
        return torch.tensor(False, device=t.device)
    if t.dtype in (torch.float16, torch.bfloat16):  # no aminmax for half on CPU in torch 1.13
        return torch.logical_not(torch.isfinite(t).all())
    lo, hi = torch.aminmax(t)
    return torch.logical_not(torch.isfinite(lo) & torch.isfinite(hi))


# ------------------------------------------------------------------------------------- distributed

class _Group:
    """The ranks whose statistics are combined (the default process group, or the one given); without
    torch.distributed initialised, or with one rank, a single process and no collective."""

    def __init__(self, group=None):
        dist = torch.distributed
        ready = dist.is_available() and dist.is_initialized()
        self.group = group
        self.world = dist.get_world_size(group) if ready else 1
        self.rank = dist.get_rank(group) if ready else 0
        self.on = ready and self.world > 1
        self.backend = str(dist.get_backend(group)) if ready else None
        # NCCL reduces CUDA tensors only; gloo (and the rest) CPU tensors.
        self.device = torch.device("cuda", torch.cuda.current_device()) if self.on and self.backend == "nccl" else torch.device("cpu")

    def sum(self, vec):
        torch.distributed.all_reduce(vec, op=torch.distributed.ReduceOp.SUM, group=self.group)

    def min(self, vec):
        torch.distributed.all_reduce(vec, op=torch.distributed.ReduceOp.MIN, group=self.group)


# Wrappers that hold the user's module as one child: their paths are the wrapped module's path, and
# the child's name ('module', '_fsdp_wrapped_module', ...) never appears in a recorded path.
_WRAPPER_CHILD = {
    "DistributedDataParallel": "module",
    "DataParallel": "module",
    "FullyShardedDataParallel": "_fsdp_wrapped_module",
    "CheckpointWrapper": "_checkpoint_wrapped_module",
    "OffloadWrapper": "_checkpoint_wrapped_module",
    "OptimizedModule": "_orig_mod",
}


def _unwrap(m):
    while True:
        attr = next((_WRAPPER_CHILD[c.__name__] for c in type(m).__mro__ if c.__name__ in _WRAPPER_CHILD), None)
        inner = m._modules.get(attr) if attr else None
        if inner is None:
            return m
        m = inner


def _kind(m):
    """The module's class name; FSDP2 swaps the class for a generated FSDP<Name> subclass: the user's class."""
    for c in type(m).__mro__:
        if c.__name__ == "FSDPModule" or (c.__name__.startswith("FSDP") and c.__module__.startswith("torch.distributed.fsdp")):
            continue
        return c.__name__
    return type(m).__name__


def _clean_modules(model):
    """[(path, module)] as ``named_modules()`` of the model without its wrappers (parents before children)."""
    out, seen = [], set()

    def walk(m, path):
        m = _unwrap(m)
        if id(m) in seen:
            return
        seen.add(id(m))
        out.append((path, m))
        for name, child in m._modules.items():
            if child is not None:
                walk(child, f"{path}.{name}" if path else name)

    walk(model, "")
    return out


def _fsdp_handles(model):
    """FSDP (v1) flat parameters: [(FullyShardedDataParallel module, handle)]."""
    out = []
    for m in model.modules():
        if type(m).__name__ != "FullyShardedDataParallel":
            continue
        handle = getattr(m, "_handle", None)
        if handle is None:
            handles = getattr(m, "_handles", None) or []  # torch 2.0
            handle = handles[0] if handles else None
        if handle is not None and getattr(handle, "flat_param", None) is not None:
            out.append((m, handle))
    return out


class _Slot:
    """One trainable parameter as this rank holds it: ``param()`` and ``grad()`` give its local values
    (all of it, a DTensor's local shard, or its slice of an FSDP flat shard); ``weight`` is 1 over the
    number of ranks holding each element, so the sum over ranks of weight x local sum of squares is the
    parameter's squared norm."""

    __slots__ = ("name", "owners", "weight", "param", "grad", "device")

    def __init__(self, name, owner, weight, param, grad):
        self.name, self.owners, self.weight, self.param, self.grad = name, [owner], weight, param, grad
        self.device = param().device


def _dtensor_weight(p, world):
    shards = 1
    for dim, placement in enumerate(p.placements):
        if placement.is_shard():
            shards *= p.device_mesh.size(dim)
        elif not placement.is_replicate():
            raise ValueError(f"a parameter with placement {placement} cannot be measured from its local part")
    return shards / world


def _flat_slot_fns(fp, si, sharded, warn):
    lo, hi = (si.offset_in_shard, si.offset_in_shard + si.numel_in_shard) if si.in_shard else (0, 0)
    data = fp._local_shard if sharded and hasattr(fp, "_local_shard") else fp

    def param():
        return data.detach().reshape(-1)[lo:hi]

    def grad():
        g = fp.grad
        if g is None:
            return None
        if g.numel() != data.numel():  # an unsharded gradient (no_sync accumulation): its slices differ
            warn("an FSDP gradient is not sharded as its parameter after backward (call after_backward after the synchronised backward): not measured")
            return None
        return g.detach().reshape(-1)[lo:hi]

    return param, grad


def _slots(model, modules, group, warn):
    """The trainable parameters as slots, and the parallel strategy seen ('fsdp', 'fsdp2', 'ddp' or None)."""
    path_of = {id(m): p for p, m in modules}
    slots, by_param, skip = [], {}, set()
    strategy = None
    for fsdp, handle in _fsdp_handles(model):
        strategy = "fsdp"
        fp = handle.flat_param
        skip.add(id(fp))
        skip.update(id(p) for p in (getattr(fp, "_params", None) or []))  # use_orig_params views
        sharded = bool(getattr(handle, "uses_sharded_strategy", True))
        shard_ranks = torch.distributed.get_world_size(fsdp.process_group) if sharded else 1
        weight = shard_ranks / group.world
        first = len(slots)
        for info, si in zip(fp._param_infos, fp._shard_param_infos):
            if not fp.requires_grad:
                break
            owner = path_of.get(id(info.module), "")
            param, grad = _flat_slot_fns(fp, si, sharded, warn)
            slots.append(_Slot(f"{owner}.{info.param_name}" if owner else info.param_name, owner, weight, param, grad))
        for shared in getattr(fp, "_shared_param_infos", None) or []:  # tied weights: also under the other module
            prim = next((first + i for i, info in enumerate(fp._param_infos) if info.module is shared.prim_module and info.param_name == shared.prim_param_name), None)
            if prim is not None and prim < len(slots):
                slots[prim].owners.append(path_of.get(id(shared.module), ""))
    for path, m in modules:
        for pname, p in m._parameters.items():
            if p is None or not p.requires_grad or id(p) in skip:
                continue
            if id(p) in by_param:  # the same tensor registered under two modules (tied weights)
                by_param[id(p)].owners.append(path)
                continue
            if hasattr(p, "placements") and hasattr(p, "to_local"):
                strategy = strategy or "fsdp2"
                slot = _Slot(f"{path}.{pname}" if path else pname, path, _dtensor_weight(p, group.world),
                             (lambda p=p: p.to_local()), (lambda p=p: _local(p.grad)))
            else:
                # Plain tensors are the same on every rank (DDP has averaged the gradients).
                slot = _Slot(f"{path}.{pname}" if path else pname, path, 1.0 / group.world, (lambda p=p: p), (lambda p=p: p.grad))
            by_param[id(p)] = slot
            slots.append(slot)
    if strategy is None and group.on:
        strategy = "ddp"
    return slots, strategy


# ------------------------------------------------------------------------------------------ reading

class _Batch:
    """Collects 0-d tensors (and host numbers) and reads them all with one transfer per device; across
    ranks, with one all_reduce(SUM) of one float64 vector. ``prepare(vec)`` runs on the vector before
    the reduction (squares, activation moments), in place."""

    def __init__(self):
        self.items = []

    def add(self, t):
        self.items.append(t)
        return len(self.items) - 1

    def values(self, group=None, prepare=None):
        n = len(self.items)
        device = group.device if group is not None and group.on else torch.device("cpu")
        vec = torch.zeros(n, dtype=torch.float64, device=device)
        by_device, numbers = {}, []
        for i, t in enumerate(self.items):
            if isinstance(t, torch.Tensor):
                by_device.setdefault(t.device, []).append(i)
            else:
                numbers.append(i)
        for dev, indices in by_device.items():
            dtype = torch.float32 if dev.type == "mps" else torch.float64  # MPS has no float64
            stacked = torch.stack([self.items[i].detach().reshape(()).to(dtype) for i in indices])
            vec[torch.tensor(indices, device=device)] = stacked.to(device=device, dtype=torch.float64)
        if numbers:
            vec[torch.tensor(numbers, device=device)] = torch.tensor([float(self.items[i]) for i in numbers], dtype=torch.float64, device=device)
        if prepare is not None:
            prepare(vec)
        if group is not None and group.on:
            group.sum(vec)
        return vec.cpu().tolist()


# ------------------------------------------------------------------------------------------ the stream

class _StreamWriter:
    """Append-only JSON lines (docs/training-stream.md), flushed after every line: a job killed at any
    moment leaves every step written before it readable (at most the line being written is torn)."""

    def __init__(self, path, fsync=False):
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path = path
        self.fsync = bool(fsync)
        self._f = open(path, "w", encoding="utf-8")  # a new run replaces an old stream of the same name

    def write(self, obj):
        if self._f is None:
            return
        self._f.write(_dumps(obj) + "\n")
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None


# ------------------------------------------------------------------------------------------ recorder

class GradLensRecorder:
    """Records gradient, parameter, update and activation statistics per optimiser step and module.

    model:      the nn.Module being trained, or its DDP / FSDP wrapper; module paths are its
                ``named_modules()`` names without wrapper prefixes ('' = model).
    source:     the Python file that defines the model (pass ``__file__``); default: the file of the
                model's class. Written as ``model.source``, relative to the working directory when it
                lies below it, and used to find the call line of each module in the forward pass.
    name:       model name in the record (default: the model's class name).
    optimizer:  read for the optimiser settings (kind, lr, momentum, betas, eps, weight decay); may
                also be given to ``after_step``.
    every:      record every k-th optimiser step (steps 1, 1+k, 1+2k, ...); other steps cost only a
                hook call per module and one tiny on-device loss check.
    clip_norm, clip_value: your gradient clipping settings, written into the record (informational).
    settings:   free-form {str: str | number | bool} written as the record's ``settings``.
    update_ratio: take a copy of the trainable parameters before each recorded step (memory: one copy
                of the parameters, or of this rank's shards) to measure ||delta theta|| / ||theta||;
                False disables it.
    stop_on_anomaly: after the first NaN/Inf, record nothing more (the extension treats the anomaly's
                step as the last one, as its own trainer stops there). ``recorder.anomaly`` is set.
    stream:     a file (``runs/name.gradlens.jsonl``) the record is appended to as the job runs, one
                line per recorded step, flushed each time (rank 0 only); None: only ``save()`` writes.
    process_group: the ranks to combine (default: the default group when torch.distributed is
                initialised).
    loss_reduction: 'mean' (the record's loss is the mean of the ranks' losses: the global batch's
                loss when each rank's loss is a mean over equally sized local batches) or 'sum'.
    fsync:      also ``os.fsync`` the stream after each step (survives a machine crash; slower on
                network file systems).
    """

    def __init__(self, model, source=None, name=None, optimizer=None, every=1, clip_norm=None, clip_value=None,
                 settings=None, update_ratio=True, stop_on_anomaly=True, record_sources=True, stream=None,
                 process_group=None, loss_reduction="mean", fsync=False):
        if not isinstance(model, torch.nn.Module):
            raise TypeError("GradLensRecorder needs a torch.nn.Module")
        if int(every) < 1:
            raise ValueError("every must be >= 1")
        if loss_reduction not in ("mean", "sum"):
            raise ValueError("loss_reduction must be 'mean' or 'sum'")
        self._group = _Group(process_group)
        self.rank, self.world_size = self._group.rank, self._group.world
        self.is_writer = self.rank == 0
        self.model = model
        root = _unwrap(model)
        self.name = name or _kind(root)
        self.optimizer = optimizer
        self.every = int(every)
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.settings = dict(settings or {})
        self.update_ratio = bool(update_ratio)
        self.stop_on_anomaly = bool(stop_on_anomaly)
        self.record_sources = bool(record_sources)
        self.loss_reduction = loss_reduction
        if source is None:
            try:
                source = inspect.getsourcefile(type(root))
            except (TypeError, OSError):
                source = None
        self._source_abs = os.path.realpath(source) if source else None
        self.source = self._display_path(source) if source else None
        self._warned = set()

        self._modules = _clean_modules(model)  # [(path, module)], parents before children
        self._paths = [p for p, _ in self._modules]
        self._path_of = {id(m): p for p, m in self._modules}
        self._slots, self.strategy = _slots(model, self._modules, self._group, self._warn)
        under = {p: set() for p in self._paths}
        for i, slot in enumerate(self._slots):
            for owner in slot.owners:
                parts = owner.split(".") if owner else []
                for k in range(len(parts) + 1):
                    anc = ".".join(parts[:k])
                    if anc in under:
                        under[anc].add(i)
        self._module_slots = {p: sorted(s) for p, s in under.items()}
        self._has_child = {p.rsplit(".", 1)[0] if "." in p else "" for p in self._paths if p != ""}

        self._entry_order = {}   # path -> order of first entry into forward (first recorded pass)
        self._calls = {}         # path -> {file, line} of the call in the model source
        self._kinds = {p: _kind(m) for p, m in self._modules}
        self._file_match = {}
        self._active = []        # stack of paths whose forward is running
        self._fwd = None         # this step's forward statistics: path -> (stats, in_bad, parent)
        self._fwd_order = []     # paths in forward-hook (completion) order
        self._count = 0          # after_backward calls = optimiser steps so far
        self._pending = None
        self._first_bad_loss = None  # on-device: first unrecorded step with a non-finite loss (0 = none)
        self._steps, self._loss, self._gnorm_total = [], [], []
        self._series = {p: {k: [] for k in SERIES} for p in self._paths}
        self._optimizer_settings = None
        self.anomaly = None
        self._stopped = False
        self._closed = False
        self._layout = None      # the module layout last written to the stream
        self._stream_started = False
        self._anomaly_streamed = False
        self._stream = _StreamWriter(stream, fsync) if stream and self.is_writer else None
        self.stream_path = stream
        self._handles = []
        for path, m in self._modules:
            self._handles.append(m.register_forward_pre_hook(self._pre_hook))
            self._handles.append(m.register_forward_hook(self._post_hook))

    def _warn(self, message):
        if message not in self._warned:
            self._warned.add(message)
            if self.is_writer:
                warnings.warn(f"gradlens_recorder: {message}", stacklevel=3)

    # ----------------------------------------------------------------------------------------- hooks

    def _recording(self):
        return not self._stopped and self._count % self.every == 0 and torch.is_grad_enabled()

    def _pre_hook(self, module, inputs):
        if not self._recording():
            return
        path = self._path_of.get(id(module))
        if path is None:
            return
        if self._fwd is None:
            self._fwd, self._fwd_order = {}, []
        if path not in self._entry_order:
            self._entry_order[path] = len(self._entry_order)
        if self.record_sources and self._source_abs and path not in self._calls:
            self._calls[path] = self._call_site()
        self._active.append(path)

    def _post_hook(self, module, inputs, output):
        if not self._recording() or self._fwd is None:
            return
        path = self._path_of.get(id(module))
        if path is None:
            return
        if self._active and self._active[-1] == path:
            self._active.pop()
        if path in self._fwd:  # a module called twice in one step: keep its first call
            return
        parent = self._active[-1] if self._active else None
        with torch.no_grad():
            out = _local(_first_tensor(output))
            stats = None
            if _is_float(out):
                stats = _moments(out.detach())
            inp = _local(_first_tensor(inputs))
            in_bad = _any_non_finite(inp.detach()) if _is_float(inp) else None
        self._fwd[path] = (stats, in_bad, parent)
        self._fwd_order.append(path)

    def _call_site(self):
        """{file, line} of the innermost frame in the model's source file (the line that called the module)."""
        frame = sys._getframe(2)
        while frame is not None:
            fn = frame.f_code.co_filename
            hit = self._file_match.get(fn)
            if hit is None:
                hit = self._file_match[fn] = os.path.realpath(fn) == self._source_abs
            if hit:
                return {"file": self.source, "line": frame.f_lineno}
            frame = frame.f_back
        return None

    # ------------------------------------------------------------------------------------ the step

    def after_backward(self, loss=None):
        """Call after ``loss.backward()`` and BEFORE gradient clipping and ``optimizer.step()``.

        Takes the loss, gradient norms (unclipped), parameter norms and the activation statistics of
        this step's forward pass (on the device, without a sync), and snapshots the parameters for the
        update ratio. The values are read (and, across ranks, combined) in ``after_step``.
        """
        if self._pending is not None:
            self._finish()
        self._count += 1
        step = self._count
        fwd, order = self._fwd, self._fwd_order
        self._fwd, self._fwd_order, self._active = None, [], []
        if self._stopped:
            return
        recorded = (step - 1) % self.every == 0
        if not recorded:
            if isinstance(loss, torch.Tensor):
                bad = torch.logical_not(torch.isfinite(_local(loss.detach())).all())
                mark = bad.to(torch.int64) * step
                self._first_bad_loss = mark if self._first_bad_loss is None else torch.where(self._first_bad_loss > 0, self._first_bad_loss, mark)
            elif loss is not None and not math.isfinite(float(loss)) and self.anomaly is None:
                self._set_anomaly({"step": step, "phase": "forward", "modulePath": "", "message": f"the loss is {float(loss)} (an unrecorded step)"})
            return

        batch = _Batch()
        at = {}
        if isinstance(loss, torch.Tensor):
            at["loss"] = batch.add(_local(loss.detach()).float().reshape(-1)[0])
        else:
            at["loss"] = batch.add(0.0 if loss is None else float(loss))
        at["losses"] = batch.add(0.0 if loss is None else 1.0)  # ranks that gave a loss
        at["bad_loss"] = batch.add(self._first_bad_loss if self._first_bad_loss is not None else 0.0)
        squares = []
        grads = [s.grad() for s in self._slots]
        at["has_grad"] = [batch.add(0.0 if g is None else 1.0) for g in grads]
        present = [g for g in grads if g is not None]
        norms = iter(_norms(present))
        at["grad"] = [batch.add(next(norms)) if g is not None else batch.add(0.0) for g in grads]
        at["param"] = [batch.add(n) for n in _norms([s.param() for s in self._slots])]
        squares += at["grad"] + at["param"]
        act, parents = {}, {}
        for path in self._paths:
            stats, in_bad, parent = (fwd or {}).get(path, (None, None, None))
            if stats is not None:
                mean, var, nonzero, n = stats
                act[path] = (batch.add(mean), batch.add(var), batch.add(float(n)), batch.add(nonzero))
            else:
                act[path] = tuple(batch.add(0.0) for _ in range(4))
            act[path] += (batch.add(in_bad if in_bad is not None else 0.0),)
            parents[path] = parent
        at["act"] = act
        snapshot = [s.param().detach().clone() for s in self._slots] if self.update_ratio else None
        self._pending = {"step": step, "batch": batch, "at": at, "squares": squares, "order": order if fwd else [],
                         "ran": set(fwd or {}), "parents": parents, "snapshot": snapshot}

    def after_step(self, optimizer=None):
        """Call right after ``optimizer.step()``: measures the update ratio, reads the recorded step's
        values (one all_reduce across ranks), checks them for NaN/Inf and appends the step to the stream."""
        if optimizer is not None:
            self.optimizer = optimizer
            if self._optimizer_settings is None:
                self._optimizer_settings = self._read_optimizer(optimizer)
        pending = self._pending
        if pending is None:
            return
        if pending["snapshot"] is not None:
            deltas = _norms([s.param().detach() - before for s, before in zip(self._slots, pending["snapshot"])])
            pending["at"]["delta"] = [pending["batch"].add(d) for d in deltas]
            pending["squares"] += pending["at"]["delta"]
            pending["snapshot"] = None
        self._finish()

    def _finish(self):
        pending, self._pending = self._pending, None
        at, step, group = pending["at"], pending["step"], self._group
        local_bad = []

        def prepare(vec):
            if pending["squares"]:
                sq = torch.tensor(pending["squares"], device=vec.device)
                vec[sq] = vec[sq] * vec[sq]
            if group.on:
                local_bad.append(vec[at["bad_loss"]:at["bad_loss"] + 1].clone())
                # Activation moments as sums over ranks: n, n*mean, n*(var + mean^2).
                idx = list(at["act"].values())
                mean_i = torch.tensor([a[0] for a in idx], device=vec.device)
                var_i = torch.tensor([a[1] for a in idx], device=vec.device)
                n = vec[torch.tensor([a[2] for a in idx], device=vec.device)]
                mean = vec[mean_i]
                vec[var_i] = (vec[var_i] + mean * mean) * n
                vec[mean_i] = mean * n

        v = pending["batch"].values(group, prepare)
        first_bad_loss = v[at["bad_loss"]]
        if group.on and first_bad_loss > 0:
            # Some rank saw a non-finite loss on an unrecorded step: which step first (the run stops there).
            t = torch.where(local_bad[0] > 0, local_bad[0], torch.full_like(local_bad[0], float("inf")))
            group.min(t)
            first_bad_loss = float(t.item())

        losses = v[at["losses"]]
        if losses == 0:
            loss_v = None
        else:
            loss_v = v[at["loss"]] / (losses if self.loss_reduction == "mean" else 1.0)
        slots = self._slots
        grads = [math.sqrt(v[g] * s.weight) if v[h] > 0 else None for s, g, h in zip(slots, at["grad"], at["has_grad"])]
        params = [math.sqrt(v[p] * s.weight) for s, p in zip(slots, at["param"])]
        deltas = [math.sqrt(v[d] * s.weight) for s, d in zip(slots, at["delta"])] if "delta" in at else None
        stats = {}
        for path, (mi, vi, ni, zi, bi) in at["act"].items():
            n = v[ni]
            a = None
            if n > 0:
                mean = v[mi] / n if group.on else v[mi]
                var = v[vi] / n - mean * mean if group.on else v[vi]
                std = math.sqrt(var) if var > 0 else (0.0 if var <= 0 else var)  # rounding below 0 is 0; NaN stays
                a = [mean, std, 1.0 - v[zi] / n]
            if a is not None or v[bi] > 0 or path in pending["ran"]:
                stats[path] = (a, v[bi] > 0, pending["parents"].get(path))
        if self._optimizer_settings is None and self.optimizer is not None:
            self._optimizer_settings = self._read_optimizer(self.optimizer)

        present = [g for g in grads if g is not None]
        total = math.sqrt(sum(g * g for g in present)) if present else None
        self._steps.append(step)
        self._loss.append(loss_v)
        self._gnorm_total.append(total)
        for path in self._paths:
            s = self._series[path]
            idx = [i for i in self._module_slots[path] if grads[i] is not None]
            s["gradNorm"].append(math.sqrt(sum(grads[i] ** 2 for i in idx)) if idx else None)
            w = sum(params[i] ** 2 for i in idx)
            s["paramNorm"].append(math.sqrt(w) if idx else None)
            if deltas is None or not idx or w == 0:
                ratio = None
            else:
                ratio = math.sqrt(sum(deltas[i] ** 2 for i in idx) / w) if math.isfinite(w) else float("nan")
            s["updateRatio"].append(ratio)
            st = stats.get(path)
            a = st[0] if st else None
            s["actMean"].append(a[0] if a else None)
            s["actStd"].append(a[1] if a else None)
            s["zeroFraction"].append(a[2] if a else None)

        if self.anomaly is None:
            self._detect(step, first_bad_loss, loss_v, pending["order"], stats, grads, params)
        if self.anomaly is None and deltas is not None:
            for i in self._by_depth_params():
                if _finite(params[i]) and not _finite(deltas[i]):
                    self._set_anomaly({"step": step, "phase": "update", "modulePath": self._slots[i].owners[0],
                                       "message": f"{self._slots[i].name} is not finite after the {self._kind_name()} update"})
                    break
        if self.anomaly is not None and self.stop_on_anomaly:
            self._stopped = True
        self._stream_step(step)

    # ------------------------------------------------------------------------------------ anomalies

    def _detect(self, step, first_bad_loss, loss_v, order, stats, grads, params):
        if first_bad_loss and first_bad_loss > 0:
            self._set_anomaly({"step": int(first_bad_loss), "phase": "forward", "modulePath": "",
                               "message": f"the loss is not finite (step {int(first_bad_loss)} was not recorded: every={self.every})"})
            return
        root = stats.get("")
        if root is not None and root[1]:
            self._set_anomaly({"step": step, "phase": "forward", "modulePath": "", "message": "the model's input is not finite (NaN/Inf in the data)"})
            return
        for path in order:
            if path not in stats:
                continue
            a, in_bad, parent = stats[path]
            out_bad = a is not None and not _finite(a[0])
            if in_bad:
                # Produced by code outside any submodule: the forward of the module that called this one
                # (source: the line of that call), or the data when the model's own input is bad.
                origin = parent if parent is not None else path
                msg = f"a NaN/Inf first appears in the input of {path or 'the model'}, computed in the forward of {origin or 'the model'} before that call"
                self._set_anomaly({"step": step, "phase": "forward", "modulePath": origin, "message": msg}, call_of=path)
                return
            if out_bad:
                self._set_anomaly({"step": step, "phase": "forward", "modulePath": path,
                                   "message": f"{'NaN' if a and math.isnan(a[0]) else 'NaN/Inf'} first appears in the output of {path or 'the model'} ({self._kinds.get(path)})"})
                return
        if loss_v is not None and not math.isfinite(loss_v):
            self._set_anomaly({"step": step, "phase": "forward", "modulePath": "", "message": f"the loss is {loss_v}"})
            return
        # Non-finite gradients spread from the output towards the input: the origin is the last module in forward order.
        for i in reversed(self._by_depth_params()):
            if grads[i] is not None and not math.isfinite(grads[i]):
                self._set_anomaly({"step": step, "phase": "backward", "modulePath": self._slots[i].owners[0], "message": f"the gradient of {self._slots[i].name} is not finite"})
                return
        for i in self._by_depth_params():
            if not math.isfinite(params[i]):
                self._set_anomaly({"step": step, "phase": "update", "modulePath": self._slots[i].owners[0], "message": f"{self._slots[i].name} is not finite"})
                return

    def _set_anomaly(self, anomaly, call_of=None):
        src = self._calls.get(call_of if call_of is not None else anomaly["modulePath"])
        if src:
            anomaly["source"] = dict(src)
        self.anomaly = anomaly

    def _by_depth_params(self):
        order = self._order_key()
        return sorted(range(len(self._slots)), key=lambda i: (order(self._slots[i].owners[0]), i))

    def _kind_name(self):
        return (self._optimizer_settings or {}).get("kind", "optimizer")

    # --------------------------------------------------------------------------------------- output

    def _order_key(self):
        """Forward order of a module's first entry; containers that never run take their first child's."""
        first = {}
        for path in self._paths:
            o = self._entry_order.get(path)
            if o is None:
                continue
            parts = path.split(".") if path else []
            for k in range(len(parts) + 1):
                anc = ".".join(parts[:k])
                if anc not in first or o < first[anc]:
                    first[anc] = o
        big = len(self._paths) + 1
        return lambda p: (first.get(p, big), len(p.split(".")) if p else 0)

    def _depths(self):
        """path -> depth: the module's position in forward order (the record's module order)."""
        key = self._order_key()
        ordered = sorted(self._paths, key=lambda p: (key(p), self._paths.index(p)))
        return {p: d for d, p in enumerate(ordered)}

    def _read_optimizer(self, optimizer):
        name = type(optimizer).__name__
        out = {"kind": name.lower()}
        group = optimizer.param_groups[0] if optimizer.param_groups else {}
        lr = group.get("lr")
        out["lr"] = _as_float(lr) if lr is not None else float("nan")
        for key, field in (("momentum", "momentum"), ("eps", "eps"), ("weight_decay", "weightDecay")):
            if isinstance(group.get(key), (int, float, torch.Tensor)) and not isinstance(group.get(key), bool):
                out[field] = _as_float(group[key])
        if isinstance(group.get("nesterov"), bool):
            out["nesterov"] = group["nesterov"]
        betas = group.get("betas")
        if isinstance(betas, (tuple, list)) and len(betas) == 2:
            out["betas"] = [_as_float(betas[0]), _as_float(betas[1])]
        return out

    def _optimizer_record(self):
        optimizer = dict(self._optimizer_settings or (self._read_optimizer(self.optimizer) if self.optimizer is not None else {"kind": "unknown", "lr": 0.0}))
        if self.clip_norm:
            optimizer["clipNorm"] = float(self.clip_norm)
        if self.clip_value:
            optimizer["clipValue"] = float(self.clip_value)
        return optimizer

    def _settings_record(self):
        settings = {"every": self.every, "device": str(self._slots[0].device) if self._slots else "cpu"}
        settings.update({k: v for k, v in self.settings.items() if isinstance(v, (str, int, float, bool))})
        return settings

    def _distributed_record(self):
        if not self._group.on:
            return None
        return {"worldSize": self._group.world, "strategy": self.strategy or "ddp", "backend": self._group.backend}

    def to_dict(self):
        """The record as a JSON-ready dict (non-finite numbers still floats; see ``save``). In a
        distributed job a step whose ``after_step`` has not run yet is left out (reading it takes a
        collective: ``close()`` on every rank finishes it)."""
        if self._pending is not None and not self._group.on:
            self._finish()
        optimizer = self._optimizer_record()
        if self.optimizer is not None and self._optimizer_settings is not None:
            last = self._read_optimizer(self.optimizer).get("lr")
            if last is not None and last != optimizer.get("lr"):
                self.settings.setdefault("lrLast", last)
        depths = self._depths()
        modules = []
        for path in sorted(self._paths, key=depths.get):
            entry = {"path": path, "kind": self._kinds[path], "depth": depths[path], "leaf": path not in self._has_child}
            if self._calls.get(path):
                entry["source"] = dict(self._calls[path])
            entry.update(self._series[path])
            modules.append(entry)
        record = {
            "schema": SCHEMA,
            "producer": self._producer(),
            "model": {"name": self.name},
            "optimizer": optimizer,
            "settings": self._settings_record(),
            "steps": list(self._steps),
            "loss": list(self._loss),
            "gradNormTotal": list(self._gnorm_total),
            "modules": modules,
        }
        if self._distributed_record():
            record["distributed"] = self._distributed_record()
        if self.source:
            record["model"]["source"] = self.source
        if self.anomaly is not None:
            record["anomaly"] = dict(self.anomaly)
        return record

    def _producer(self):
        return f"gradlens_recorder.py (torch {torch.__version__})"

    def save(self, path):
        """Writes the record as JSON (rank 0 only: other ranks write nothing and return None); NaN/Inf
        as the strings "NaN", "Infinity", "-Infinity"."""
        record = self.to_dict()
        if not self.is_writer:
            return None
        with open(path, "w", encoding="utf-8") as f:
            f.write(_dumps(record))
        return path

    # ---------------------------------------------------------------------------- stream (rank 0)

    def _stream_start(self):
        if self._stream is None or self._stream_started:
            return
        self._stream_started = True
        start = {"type": "start", "schema": STREAM_SCHEMA, "producer": self._producer(), "model": {"name": self.name},
                 "optimizer": self._optimizer_record(), "settings": self._settings_record(),
                 "modules": [{"path": p, "kind": self._kinds[p], "leaf": p not in self._has_child} for p in self._paths],
                 "time": time.time()}
        if self.source:
            start["model"]["source"] = self.source
        if self._distributed_record():
            start["distributed"] = self._distributed_record()
        self._stream.write(start)

    def _stream_step(self, step):
        if self._stream is None:
            return
        self._stream_start()
        depths = self._depths()
        layout = {"type": "layout", "depth": [depths[p] for p in self._paths], "source": [self._calls.get(p) for p in self._paths]}
        if layout != self._layout:
            self._stream.write(layout)
            self._layout = layout
        line = {"type": "step", "step": step, "time": time.time(), "loss": self._loss[-1], "gradNormTotal": self._gnorm_total[-1]}
        if self.optimizer is not None and self.optimizer.param_groups:
            line["lr"] = _as_float(self.optimizer.param_groups[0].get("lr"))
        for key in SERIES:
            values = [self._series[p][key][-1] for p in self._paths]
            if any(x is not None for x in values):
                line[key] = values
        self._stream.write(line)
        self._stream_anomaly()

    def _stream_anomaly(self):
        if self._stream is not None and self.anomaly is not None and not self._anomaly_streamed:
            self._anomaly_streamed = True
            self._stream.write(dict(self.anomaly, type="anomaly"))

    def close(self):
        """Removes the hooks, finishes a step whose ``after_step`` did not run (call it on every rank),
        and ends the stream. The record stays available to ``save``."""
        if self._pending is not None:
            self._finish()
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._stream is not None and not self._closed:
            self._stream_start()
            self._stream_anomaly()
            self._stream.write({"type": "end", "time": time.time(), "steps": self._count})
            self._stream.close()
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @staticmethod
    def _display_path(path):
        full = os.path.abspath(path)
        try:
            rel = os.path.relpath(full)
        except ValueError:  # another drive on Windows
            return full.replace(os.sep, "/")
        return (full if rel.startswith("..") else rel).replace(os.sep, "/")


# ------------------------------------------------------------------------------------------------ demo

def _load_module(path):
    path = os.path.abspath(path)
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # inspect finds classes' files through sys.modules
    spec.loader.exec_module(mod)
    return mod


def _model_class(mod, class_name=None):
    classes = [c for c in vars(mod).values() if inspect.isclass(c) and issubclass(c, torch.nn.Module) and c.__module__ == mod.__name__]
    if class_name:
        for c in classes:
            if c.__name__ == class_name:
                return c
        raise SystemExit(f"no nn.Module class {class_name} in {mod.__file__}")
    used = set()
    for c in classes:  # the root: a class no other class of the file constructs
        src = inspect.getsource(c)
        used.update(o.__name__ for o in classes if o is not c and f"{o.__name__}(" in src)
    roots = [c for c in classes if c.__name__ not in used]
    if not roots:
        raise SystemExit(f"no nn.Module class in {mod.__file__}")
    return roots[-1]


def _demo_batch(model, generator, batch):
    """Random inputs and a loss for the example models: token ids for embeddings, images for conv, else vectors."""
    first = next((m for m in model.modules() if isinstance(m, (torch.nn.Embedding, torch.nn.Conv2d, torch.nn.Linear))), None)
    if isinstance(first, torch.nn.Embedding):
        seq = 16
        for m in model.modules():
            if isinstance(m, torch.nn.Embedding) and m is not first:
                seq = min(seq, m.num_embeddings)
        ids = torch.randint(0, first.num_embeddings, (batch, seq + 1), generator=generator)
        return ids[:, :-1], ("next-token", ids[:, 1:])
    if isinstance(first, torch.nn.Conv2d):
        return torch.randn(batch, first.in_channels, 16, 16, generator=generator), ("classes", None)
    if isinstance(first, torch.nn.Linear):
        return torch.randn(batch, first.in_features, generator=generator), ("classes", None)
    raise SystemExit("the demo cannot guess this model's input")


def demo(argv=None):
    ap = argparse.ArgumentParser(description="Train an example model a few steps on random data and write a Gradient Lens training record.")
    ap.add_argument("--demo", required=True, metavar="FILE.py", help="Python file defining the model (e.g. examples/vanishing_mlp.py)")
    ap.add_argument("--model", help="class name (default: the file's outermost nn.Module class)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="adam")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", choices=["fixed", "fresh"], default="fixed", help="the same batch every step, or a new one")
    ap.add_argument("--out", default="run.gradlens.json")
    ap.add_argument("--stream", help="also append each recorded step to this stream file (.gradlens.jsonl) as it runs")
    args = ap.parse_args(argv)

    mod = _load_module(args.demo)
    cls = _model_class(mod, args.model)
    torch.manual_seed(args.seed)
    model = cls()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9)
    elif args.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=args.lr)
    else:
        opt = torch.optim.AdamW(params, lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    fixed = _demo_batch(model, gen, args.batch)
    settings = {"seed": args.seed, "batch": args.batch, "data": args.data, "demo": os.path.basename(args.demo)}
    with GradLensRecorder(model, source=args.demo, name=cls.__name__, optimizer=opt, every=args.every, settings=settings, stream=args.stream) as rec:
        for step in range(1, args.steps + 1):
            x, (kind, target) = fixed if args.data == "fixed" else _demo_batch(model, gen, args.batch)
            out = model(x)
            if kind == "next-token":
                loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))
            else:
                if target is None:
                    target = torch.randint(0, out.shape[-1], (out.shape[0],), generator=torch.Generator().manual_seed(args.seed + 1))
                    if args.data == "fixed":
                        fixed = (x, (kind, target))
                loss = torch.nn.functional.cross_entropy(out, target)
            opt.zero_grad()
            loss.backward()
            rec.after_backward(loss)
            opt.step()
            rec.after_step()
            if rec.anomaly is not None:
                print(f"step {step}: {rec.anomaly['message']}; stopping")
                break
        rec.save(args.out)
    print(f"wrote {args.out}: {len(rec._steps)} steps x {len(rec._paths)} modules of {cls.__name__} (final loss {rec._loss[-1] if rec._loss else None})")


if __name__ == "__main__":
    demo()
