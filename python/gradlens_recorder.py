"""Gradient Lens training recorder: per-step, per-module statistics from a PyTorch training loop.

Writes the JSON schema ``gradient-lens/training@1`` (docs/training-schema.md), which the VS Code
extension imports with "Gradient Lens: Import Training Statistics..." and draws on the model's source.
Single file, needs only torch (>= 1.13, 2.x) and the standard library: copy it next to your script.

    from gradlens_recorder import GradLensRecorder

    recorder = GradLensRecorder(model, source=__file__, optimizer=optimizer)
    for x, y in loader:
        loss = loss_fn(model(x), y)          # forward hooks take activation statistics
        optimizer.zero_grad()
        loss.backward()
        recorder.after_backward(loss)        # BEFORE clipping and optimizer.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recorder.after_step()                # update ratios
    recorder.save("run.gradlens.json")
    recorder.close()

Demo: /usr/bin/python3 python/gradlens_recorder.py --demo examples/vanishing_mlp.py --steps 20 --out run.json
"""
import argparse
import importlib.util
import inspect
import json
import math
import os
import sys

import torch

SCHEMA = "gradient-lens/training@1"
__all__ = ["GradLensRecorder", "SCHEMA"]


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


def _finite(v):
    return v is not None and math.isfinite(v)


def _norm(t):
    """L2 norm of a detached tensor as a 0-d tensor, in float32 at least (half/bfloat16 overflow)."""
    t = t.detach()
    if t.dtype in (torch.float16, torch.bfloat16):
        return torch.linalg.vector_norm(t, dtype=torch.float32)
    return torch.linalg.vector_norm(t)


class _Batch:
    """Collects 0-d tensors and reads them all with one transfer per device."""

    def __init__(self):
        self.items = []

    def add(self, t):
        self.items.append(t)
        return len(self.items) - 1

    def values(self):
        out = [None] * len(self.items)
        by_device = {}
        for i, t in enumerate(self.items):
            by_device.setdefault(t.device, []).append(i)
        for device, indices in by_device.items():
            dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
            stacked = torch.stack([self.items[i].detach().to(dtype) for i in indices])
            for i, v in zip(indices, stacked.cpu().tolist()):
                out[i] = v
        return out


class GradLensRecorder:
    """Records gradient, parameter, update and activation statistics per optimiser step and module.

    model:      the nn.Module being trained; module paths are its ``named_modules()`` names ('' = model).
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
                of the parameters) to measure ||delta theta|| / ||theta||; False disables it.
    stop_on_anomaly: after the first NaN/Inf, record nothing more (the extension treats the anomaly's
                step as the last one, as its own trainer stops there). ``recorder.anomaly`` is set.
    """

    def __init__(self, model, source=None, name=None, optimizer=None, every=1, clip_norm=None, clip_value=None,
                 settings=None, update_ratio=True, stop_on_anomaly=True, record_sources=True):
        if not isinstance(model, torch.nn.Module):
            raise TypeError("GradLensRecorder needs a torch.nn.Module")
        if int(every) < 1:
            raise ValueError("every must be >= 1")
        self.model = model
        self.name = name or type(model).__name__
        self.optimizer = optimizer
        self.every = int(every)
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.settings = dict(settings or {})
        self.update_ratio = bool(update_ratio)
        self.stop_on_anomaly = bool(stop_on_anomaly)
        self.record_sources = bool(record_sources)
        if source is None:
            try:
                source = inspect.getsourcefile(type(model))
            except (TypeError, OSError):
                source = None
        self._source_abs = os.path.realpath(source) if source else None
        self.source = self._display_path(source) if source else None

        self._modules = list(model.named_modules())  # [(path, module)], parents before children
        self._paths = [p for p, _ in self._modules]
        self._path_of = {id(m): p for p, m in self._modules}
        self._params = [p for p in model.parameters() if p.requires_grad]
        index_of = {id(p): i for i, p in enumerate(self._params)}
        self._module_params = {}
        for path, m in self._modules:
            self._module_params[path] = sorted({index_of[id(p)] for p in m.parameters() if id(p) in index_of})
        self._owner = {}  # parameter index -> owning module path (the module that registers it)
        for path, m in self._modules:
            for p in m.parameters(recurse=False):
                if id(p) in index_of:
                    self._owner.setdefault(index_of[id(p)], path)
        self._has_child = {p.rsplit(".", 1)[0] if "." in p else "" for p in self._paths if p != ""}

        self._entry_order = {}   # path -> order of first entry into forward (first recorded pass)
        self._calls = {}         # path -> {file, line} of the call in the model source
        self._kinds = {p: type(m).__name__ for p, m in self._modules}
        self._file_match = {}
        self._active = []        # stack of paths whose forward is running
        self._fwd = None         # this step's forward statistics: path -> (mean, std, zeros, in_bad, parent)
        self._fwd_order = []     # paths in forward-hook (completion) order
        self._count = 0          # after_backward calls = optimiser steps so far
        self._pending = None
        self._first_bad_loss = None  # on-device: first unrecorded step with a non-finite loss (0 = none)
        self._steps, self._loss, self._gnorm_total = [], [], []
        self._series = {p: {k: [] for k in ("gradNorm", "paramNorm", "updateRatio", "actMean", "actStd", "zeroFraction")} for p in self._paths}
        self._optimizer_settings = None
        self.anomaly = None
        self._stopped = False
        self._handles = []
        for path, m in self._modules:
            self._handles.append(m.register_forward_pre_hook(self._pre_hook))
            self._handles.append(m.register_forward_hook(self._post_hook))

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
            out = _first_tensor(output)
            stats = None
            if _is_float(out):
                o = out.detach()
                if o.dtype in (torch.float16, torch.bfloat16):
                    o = o.float()
                var, mean = torch.var_mean(o, dim=None, correction=0)
                stats = (mean, var.sqrt(), torch.count_nonzero(o), o.numel())
            inp = _first_tensor(inputs)
            in_bad = torch.logical_not(torch.isfinite(inp.detach()).all()) if _is_float(inp) else None
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

        Records the loss, gradient norms (unclipped), parameter norms, activation statistics of this
        step's forward pass, and snapshots the parameters for the update ratio.
        """
        if self._pending is not None:
            self._finish(None)
        self._count += 1
        step = self._count
        fwd, order = self._fwd, self._fwd_order
        self._fwd, self._fwd_order, self._active = None, [], []
        if self._stopped:
            return
        recorded = (step - 1) % self.every == 0
        if not recorded:
            if isinstance(loss, torch.Tensor):
                bad = torch.logical_not(torch.isfinite(loss.detach()).all())
                mark = bad.to(torch.int64) * step
                self._first_bad_loss = mark if self._first_bad_loss is None else torch.where(self._first_bad_loss > 0, self._first_bad_loss, mark)
            elif loss is not None and not math.isfinite(float(loss)) and self.anomaly is None:
                self._set_anomaly({"step": step, "phase": "forward", "modulePath": "", "message": f"the loss is {float(loss)} (an unrecorded step)"})
            return

        batch = _Batch()
        loss_i = batch.add(loss.detach().float().reshape(-1)[0] if isinstance(loss, torch.Tensor) else torch.tensor(float("nan") if loss is None else float(loss)))
        bad_loss_i = batch.add(self._first_bad_loss) if self._first_bad_loss is not None else None
        grad_i, param_i = [], []
        for p in self._params:
            grad_i.append(batch.add(_norm(p.grad)) if p.grad is not None else None)
            param_i.append(batch.add(_norm(p)))
        act_i = {}
        for path, (stats, in_bad, parent) in (fwd or {}).items():
            act_i[path] = ((batch.add(stats[0]), batch.add(stats[1]), batch.add(stats[2]), stats[3]) if stats else None,
                           batch.add(in_bad) if in_bad is not None else None, parent)
        snapshot = [p.detach().clone() for p in self._params] if self.update_ratio else None
        v = batch.values()

        loss_v = v[loss_i] if loss is not None else None
        grads = [v[i] if i is not None else None for i in grad_i]
        params = [v[i] for i in param_i]
        stats = {}
        for path, (s, bad_i, parent) in act_i.items():
            a = [v[s[0]], v[s[1]], 1.0 - v[s[2]] / s[3]] if s else None
            stats[path] = (a, bool(v[bad_i]) if bad_i is not None else False, parent)
        if self._optimizer_settings is None and self.optimizer is not None:
            self._optimizer_settings = self._read_optimizer(self.optimizer)

        present = [g for g in grads if g is not None]
        total = math.sqrt(sum(g * g for g in present)) if present else None
        self._steps.append(step)
        self._loss.append(loss_v)
        self._gnorm_total.append(total)
        for path in self._paths:
            s = self._series[path]
            idx = [i for i in self._module_params[path] if grads[i] is not None]
            s["gradNorm"].append(math.sqrt(sum(grads[i] ** 2 for i in idx)) if idx else None)
            s["paramNorm"].append(math.sqrt(sum(params[i] ** 2 for i in idx)) if idx else None)
            st = stats.get(path)
            a = st[0] if st else None
            s["actMean"].append(a[0] if a else None)
            s["actStd"].append(a[1] if a else None)
            s["zeroFraction"].append(a[2] if a else None)

        if self.anomaly is None:
            self._detect(step, v[bad_loss_i] if bad_loss_i is not None else 0, loss_v, order, stats, grads, params)
        self._pending = {"step": step, "snapshot": snapshot, "params": params, "grads": grads}

    def after_step(self, optimizer=None):
        """Call right after ``optimizer.step()``: measures the update ratio of the recorded step."""
        if optimizer is not None:
            self.optimizer = optimizer
            if self._optimizer_settings is None:
                self._optimizer_settings = self._read_optimizer(optimizer)
        if self._pending is None:
            return
        deltas = None
        if self._pending["snapshot"] is not None:
            batch = _Batch()
            for p, before in zip(self._params, self._pending["snapshot"]):
                batch.add(_norm(p.detach() - before))
            deltas = batch.values()
        self._finish(deltas)

    def _finish(self, deltas):
        pending, self._pending = self._pending, None
        params, grads, step = pending["params"], pending["grads"], pending["step"]
        for path in self._paths:
            idx = [i for i in self._module_params[path] if grads[i] is not None]
            w = sum(params[i] ** 2 for i in idx)
            if deltas is None or not idx or w == 0:
                ratio = None
            else:
                ratio = math.sqrt(sum(deltas[i] ** 2 for i in idx) / w) if math.isfinite(w) else float("nan")
            self._series[path]["updateRatio"].append(ratio)
        if self.anomaly is None and deltas is not None:
            for i in self._by_depth_params():
                if _finite(params[i]) and not _finite(deltas[i]):
                    path = self._owner.get(i, "")
                    self._set_anomaly({"step": step, "phase": "update", "modulePath": path, "message": f"{self._param_name(i)} is not finite after the {self._kind_name()} update"})
                    break
        if self.anomaly is not None and self.stop_on_anomaly:
            self._stopped = True

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
                self._set_anomaly({"step": step, "phase": "backward", "modulePath": self._owner.get(i, ""), "message": f"the gradient of {self._param_name(i)} is not finite"})
                return
        for i in self._by_depth_params():
            if not math.isfinite(params[i]):
                self._set_anomaly({"step": step, "phase": "update", "modulePath": self._owner.get(i, ""), "message": f"{self._param_name(i)} is not finite"})
                return

    def _set_anomaly(self, anomaly, call_of=None):
        src = self._calls.get(call_of if call_of is not None else anomaly["modulePath"])
        if src:
            anomaly["source"] = dict(src)
        self.anomaly = anomaly

    def _by_depth_params(self):
        order = self._order_key()
        return sorted(range(len(self._params)), key=lambda i: (order(self._owner.get(i, "")), i))

    def _param_name(self, i):
        names = {id(p): n for n, p in self.model.named_parameters()}
        return names.get(id(self._params[i]), f"parameter {i}")

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

    def to_dict(self):
        """The record as a JSON-ready dict (non-finite numbers still floats; see ``save``)."""
        if self._pending is not None:
            self._finish(None)
        optimizer = dict(self._optimizer_settings or (self._read_optimizer(self.optimizer) if self.optimizer is not None else {"kind": "unknown", "lr": 0.0}))
        if self.optimizer is not None and self._optimizer_settings is not None:
            last = self._read_optimizer(self.optimizer).get("lr")
            if last is not None and last != optimizer.get("lr"):
                self.settings.setdefault("lrLast", last)
        if self.clip_norm:
            optimizer["clipNorm"] = float(self.clip_norm)
        if self.clip_value:
            optimizer["clipValue"] = float(self.clip_value)
        key = self._order_key()
        ordered = sorted(self._paths, key=lambda p: (key(p), self._paths.index(p)))
        modules = []
        for depth, path in enumerate(ordered):
            entry = {"path": path, "kind": self._kinds[path], "depth": depth, "leaf": path not in self._has_child}
            if self._calls.get(path):
                entry["source"] = dict(self._calls[path])
            entry.update(self._series[path])
            modules.append(entry)
        settings = {"every": self.every, "device": str(self._params[0].device) if self._params else "cpu"}
        settings.update({k: v for k, v in self.settings.items() if isinstance(v, (str, int, float, bool))})
        record = {
            "schema": SCHEMA,
            "producer": f"gradlens_recorder.py (torch {torch.__version__})",
            "model": {"name": self.name},
            "optimizer": optimizer,
            "settings": settings,
            "steps": list(self._steps),
            "loss": list(self._loss),
            "gradNormTotal": list(self._gnorm_total),
            "modules": modules,
        }
        if self.source:
            record["model"]["source"] = self.source
        if self.anomaly is not None:
            record["anomaly"] = dict(self.anomaly)
        return record

    def save(self, path):
        """Writes the record as JSON; NaN/Inf as the strings "NaN", "Infinity", "-Infinity"."""
        text = json.dumps(_encode(self.to_dict()), allow_nan=False, separators=(",", ":"))
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def close(self):
        """Removes the hooks (the record stays available to ``save``)."""
        for h in self._handles:
            h.remove()
        self._handles = []

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
    with GradLensRecorder(model, source=args.demo, name=cls.__name__, optimizer=opt, every=args.every, settings=settings) as rec:
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
