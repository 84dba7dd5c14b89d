"""Gradient Lens helper: exports the PyTorch model of a Python file to ONNX the way Gradient Lens needs it, and
computes PyTorch's own loss and gradients for a run of the engine ("Verify against PyTorch").

The extension runs it with the user's interpreter, one request per process:

    python gradlens_export.py            first stdin line: the request (JSON); later lines: answers to questions

Messages go out as JSON lines on the original stdout: hello, progress, ask (a question for the user: which class,
which input shape), then result or error. Everything else written to stdout (the user's prints, the exporter's
verbose graph) is sent to stderr. Needs torch (1.13 or 2.x) and the standard library; numpy is used when present.

How the model and its sample input are built, in order:
  1. `gradlens_example()` defined in the file: returns (model, input), input a tensor or a tuple of tensors:
         def gradlens_example(): return MyModel(width=64), torch.randn(8, 3, 32, 32)
  2. the arguments of a `torch.onnx.export(model, args, ...)` call in the file (only the assignments those arguments
     need are run, not the rest of the block);
  3. the model class built with its defaults (`MyModel()`), and an input inferred from its first layers
     (Linear, Conv, Embedding, RNN, LayerNorm, BatchNorm...); when nothing fits, the user is asked for a shape.
Faithful export options: the TorchScript exporter in training mode without constant folding (every parameter keeps
its name; BatchNorm and dropout stay in training form; gradients equal PyTorch's); the dynamo exporter with
optimize=False only where the TorchScript one does not exist, and the result says what that changes.
"""
import ast
import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
import time
import traceback
import warnings

PROTOCOL = 1
OPSET = 17
# Sample batch for inferred inputs (the export's batch and sequence axes are dynamic: the engine picks its own).
BATCH = 2
SEQUENCE = 16
IMAGE_SIZES = (32, 28, 64, 224, 16)

_out = None
_ask_id = 0


class HelperError(Exception):
    """An error for the user: a code the extension understands, a message, and the user's frames when known."""

    def __init__(self, code, message, frames=None, detail=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.frames = frames or []
        self.detail = detail


class Cancelled(Exception):
    pass


def send(message):
    _out.write(json.dumps(message) + "\n")
    _out.flush()


def progress(message):
    send({"type": "progress", "message": message})


def ask(kind, **fields):
    """Asks the extension (the user) a question; returns the answer, raises Cancelled when the user declines."""
    global _ask_id
    _ask_id += 1
    send(dict(type="ask", id=_ask_id, kind=kind, **fields))
    line = sys.stdin.readline()
    if not line:
        raise Cancelled()
    answer = json.loads(line)
    if answer.get("cancel") or answer.get("value") is None:
        raise Cancelled()
    return answer["value"]


# ------------------------------------------------------------------------------------------------ user code frames

def _is_library(path):
    p = path.replace("\\", "/")
    return "/site-packages/" in p or "/dist-packages/" in p or p.startswith("<") or os.path.abspath(path) == os.path.abspath(__file__)


def user_frames(exc, root):
    """The traceback's frames in the user's files (under `root`, outside installed packages), outermost first."""
    frames = []
    if isinstance(exc, SyntaxError) and exc.filename:
        frames.append({"file": os.path.abspath(exc.filename), "line": exc.lineno or 1, "name": "<module>"})
        return frames
    for f in traceback.extract_tb(exc.__traceback__):
        path = os.path.abspath(f.filename)
        if _is_library(path) or not path.startswith(root):
            continue
        frames.append({"file": path, "line": f.lineno, "name": f.name})
    return frames


def describe(exc):
    text = str(exc).strip()
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def fail_from(code, what, exc, root):
    """A HelperError for an exception raised by the user's code."""
    return HelperError(code, "%s: %s" % (what, describe(exc)), user_frames(exc, root), "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


# ------------------------------------------------------------------------------------------------ importing

def import_user_file(path, root):
    """Imports the file as a module (its folder on sys.path; a package's root when it lies in one)."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    parts = []
    top = folder
    while os.path.isfile(os.path.join(top, "__init__.py")):
        parts.insert(0, os.path.basename(top))
        top = os.path.dirname(top)
    sys.path.insert(0, folder)
    if parts:
        sys.path.insert(0, top)
        name = ".".join(parts + [stem])
    else:
        # A file named like a module already loaded (json.py, torch.py) must not replace it.
        name = stem if stem not in sys.modules else "_gradlens_user_" + stem
    try:
        if parts:
            importlib.import_module(".".join(parts))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        raise fail_from("import-failed", "importing %s raised" % os.path.basename(path), exc, root)
    return module


def local_files(root, main_file):
    """Files of the user's project imported so far (what the export depends on besides the main file)."""
    out = []
    seen = {os.path.abspath(main_file)}
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        # Some modules carry a bare file name (no folder): not a file of the project.
        if not f or not os.path.isabs(f) or not os.path.isfile(f):
            continue
        f = os.path.abspath(f)
        if f in seen or not f.startswith(root + os.sep) or _is_library(f) or not f.endswith(".py"):
            continue
        seen.add(f)
        with open(f, "rb") as fh:
            out.append({"path": f, "sha256": hashlib.sha256(fh.read()).hexdigest()})
    return sorted(out, key=lambda e: e["path"])


# ------------------------------------------------------------------------------------------------ model classes

def module_classes(module, nn):
    """nn.Module subclasses defined in the module itself, in source order."""
    found = []
    for name, obj in vars(module).items():
        if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__ and obj.__name__ == name:
            try:
                line = inspect.getsourcelines(obj)[1]
            except (OSError, TypeError):
                line = 0
            found.append((line, obj))
    return [c for _, c in sorted(found, key=lambda e: e[0])]


def names_used(node):
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
    return out


def outermost(classes, tree):
    """Classes no other candidate uses (as an attribute, a call or a base): the models rather than their blocks."""
    bodies = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    used = set()
    for c in classes:
        node = bodies.get(c.__name__)
        if node is None:
            continue
        for other in classes:
            if other is not c and other.__name__ in names_used(node):
                used.add(other.__name__)
    return [c for c in classes if c.__name__ not in used]


def class_summary(cls):
    doc = (inspect.getdoc(cls) or "").strip().split("\n")[0]
    try:
        line = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        line = 0
    return {"name": cls.__name__, "line": line, "doc": doc[:120]}


def pick_class(module, tree, request, nn, notes):
    """(class, why): the requested one, else the only one, else the only outermost one, else the user's pick."""
    classes = module_classes(module, nn)
    wanted = request.get("className")
    reason = request.get("classReason") or "requested"
    file = os.path.basename(request["file"])
    if wanted:
        obj = module
        for part in wanted.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            return obj, reason
        if reason == "codelens":
            raise HelperError("no-model-class", "%s is not an nn.Module subclass defined in %s" % (wanted, file))
        notes.append("%s (at the cursor) is not an nn.Module subclass of %s; looked for the model class instead" % (wanted, file))
    if not classes:
        raise HelperError("no-model-class", "%s defines no nn.Module subclass (and no gradlens_example() or torch.onnx.export call to take a model from)" % file)
    if len(classes) == 1:
        return classes[0], "only"
    outer = outermost(classes, tree)
    if len(outer) == 1:
        return outer[0], "outermost"
    choice = ask("class", title="Which model in %s?" % file, options=[class_summary(c) for c in (outer or classes)])
    for c in classes:
        if c.__name__ == choice:
            return c, "picked"
    raise HelperError("no-model-class", "%s is not a model class of %s" % (choice, file))


# ------------------------------------------------------------------------------------------------ building

class Built(object):
    def __init__(self, model, args, recipe, input_names=None, output_names=None, dynamic_axes=None):
        self.model = model
        self.args = args
        self.recipe = recipe
        self.input_names = input_names
        self.output_names = output_names
        self.dynamic_axes = dynamic_axes


def as_args(value, torch):
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, dict):
        return (value,)
    raise TypeError("the sample input must be a tensor or a tuple of tensors, got %s" % type(value).__name__)


def from_example(module, request, torch, nn, root):
    fn = getattr(module, "gradlens_example", None)
    if not callable(fn):
        return None
    progress("building the model with gradlens_example()")
    torch.manual_seed(0)
    try:
        value = fn()
    except Exception as exc:
        raise fail_from("example-failed", "gradlens_example() raised", exc, root)
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], nn.Module)):
        raise HelperError("example-failed", "gradlens_example() must return (model, input) with model an nn.Module, got %s" % type(value).__name__)
    model, inputs = value
    try:
        args = as_args(inputs, torch)
    except TypeError as exc:
        raise HelperError("example-failed", "gradlens_example(): %s" % exc)
    return Built(model, args, "gradlens_example() in %s" % os.path.basename(request["file"]))


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.insert(0, node.id)
        return ".".join(parts)
    return None


def export_calls(tree):
    """Calls of torch.onnx.export in the file, in source order."""
    aliases = {"torch.onnx.export"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("torch.onnx", "torch"):
            for a in node.names:
                if node.module == "torch.onnx" and a.name == "export":
                    aliases.add(a.asname or a.name)
                if node.module == "torch" and a.name == "onnx":
                    aliases.add((a.asname or a.name) + ".export")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _dotted(n.func) in aliases and len(n.args) >= 2]
    return sorted(calls, key=lambda c: (c.lineno, c.col_offset))


def _child_blocks(stmt):
    for field in ("body", "orelse", "finalbody"):
        block = getattr(stmt, field, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield block
    for handler in getattr(stmt, "handlers", None) or []:
        yield handler.body


def _statement_chain(tree, target):
    """[(statements, index)] from the module body down to the statement holding `target`."""
    def walk(stmts, chain):
        for i, s in enumerate(stmts):
            if not any(n is target for n in ast.walk(s)):
                continue
            here = chain + [(stmts, i)]
            for block in _child_blocks(s):
                found = walk(block, here)
                if found:
                    return found
            return here
        return None
    return walk(tree.body, []) or []


def _bound_names(stmt):
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        names = set()
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    names.add(n.id)
            if not all(isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Store, ast.Starred)) for n in ast.walk(t)):
                return set()  # x.attr = ..., x[i] = ...: not a plain binding
        return names
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
        return {stmt.name}
    return set()


def slice_for(tree, call, exprs):
    """The statements (outside the module body) that bind the names `exprs` need, in execution order."""
    needed = set()
    for e in exprs:
        needed |= {n.id for n in ast.walk(e) if isinstance(n, ast.Name)}
    chain = _statement_chain(tree, call)
    picked = []
    # Innermost block first, walking back from the statement holding the call; the module body was run on import.
    for depth in range(len(chain) - 1, 0, -1):
        stmts, index = chain[depth]
        for stmt in reversed(stmts[:index]):
            bound = _bound_names(stmt)
            if bound & needed:
                picked.append((depth, stmt))
                needed -= bound
                value = getattr(stmt, "value", None)
                if value is not None:
                    needed |= {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
    picked.sort(key=lambda e: (e[0], e[1].lineno))
    return [s for _, s in picked], needed


def from_export_call(module, tree, request, wanted_class, torch, nn, root, notes):
    file = request["file"]
    for call in export_calls(tree):
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        extra = [keywords[k] for k in ("input_names", "output_names", "dynamic_axes") if k in keywords]
        stmts, _ = slice_for(tree, call, [call.args[0], call.args[1]] + extra)
        ns = dict(vars(module))
        where = "the torch.onnx.export call on line %d" % call.lineno
        progress("building the model from %s" % where)
        torch.manual_seed(0)
        try:
            for s in stmts:
                exec(compile(ast.Module(body=[s], type_ignores=[]), file, "exec"), ns)
            model = eval(compile(ast.Expression(body=call.args[0]), file, "eval"), ns)
            args = eval(compile(ast.Expression(body=call.args[1]), file, "eval"), ns)
        except Exception as exc:
            err = fail_from("build-failed", "evaluating the arguments of %s raised" % where, exc, root)
            notes.append(err.message)
            continue
        if not isinstance(model, nn.Module) or (wanted_class is not None and not isinstance(model, wanted_class)):
            continue
        options = {}
        for k in ("input_names", "output_names", "dynamic_axes"):
            if k in keywords:
                try:
                    options[k] = eval(compile(ast.Expression(body=keywords[k]), file, "eval"), ns)
                except Exception:
                    pass
        return Built(model, as_args(args, torch), "the arguments of %s" % where, **options)
    return None


def construct(cls, file, root):
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        params = []
    required = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise HelperError(
            "needs-arguments",
            "%s() needs constructor arguments (%s). Tell Gradient Lens how to build it: add to %s\n"
            "    def gradlens_example(): return %s(%s), torch.randn(...)"
            % (cls.__name__, ", ".join(required), os.path.basename(file), cls.__name__, ", ".join("%s=..." % r for r in required)),
        )
    try:
        return cls()
    except Exception as exc:
        raise fail_from("build-failed", "%s() raised" % cls.__name__, exc, root)


def forward_inputs(model):
    """(names of forward's parameters, how many are required)."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return ["input"], 1
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    return [p.name for p in positional], len(required)


def input_candidates(model, torch, nn):
    """Sample inputs that fit the model's first layers, most likely first: (description, tensor, dynamic axes)."""
    out = []
    B, T = BATCH, SEQUENCE

    def add(label, shape, dyn, ints=None):
        key = (tuple(shape), ints)
        if any(k == key for k, *_ in out):
            return
        gen = torch.Generator().manual_seed(0)
        x = torch.randint(0, ints, tuple(shape), generator=gen) if ints else torch.randn(*shape, generator=gen)
        out.append((key, label, x, dyn))

    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    for name, m in leaves[:8]:
        kind = type(m).__name__

        def what(detail):
            return "%s (%s, %s)" % (name, kind, detail)
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            add(what("num_embeddings=%d" % m.num_embeddings), [B, T], {0: "batch", 1: "sequence"}, ints=m.num_embeddings)
        elif isinstance(m, nn.Linear) and m.in_features > 0:
            add(what("in_features=%d" % m.in_features), [B, m.in_features], {0: "batch"})
            add(what("in_features=%d" % m.in_features), [B, T, m.in_features], {0: "batch", 1: "sequence"})
        elif isinstance(m, nn.modules.conv._ConvNd) and m.in_channels > 0:
            nd = len(m.kernel_size)
            for s in (IMAGE_SIZES if nd == 2 else (64, 32, 128) if nd == 1 else (16,)):
                add(what("in_channels=%d" % m.in_channels), [B, m.in_channels] + [s] * nd, {0: "batch"})
        elif isinstance(m, nn.RNNBase):
            bf = getattr(m, "batch_first", False)
            add(what("input_size=%d" % m.input_size), [B, T, m.input_size] if bf else [T, B, m.input_size], {0: "batch", 1: "sequence"} if bf else {0: "sequence", 1: "batch"})
        elif isinstance(m, nn.LayerNorm):
            add(what("normalized_shape=%s" % list(m.normalized_shape)), [B, T] + list(m.normalized_shape), {0: "batch", 1: "sequence"})
            add(what("normalized_shape=%s" % list(m.normalized_shape)), [B] + list(m.normalized_shape), {0: "batch"})
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nd = {"BatchNorm1d": 0, "BatchNorm2d": 2, "BatchNorm3d": 3}.get(kind, 0)
            for s in (IMAGE_SIZES if nd == 2 else (16,)) if nd else (None,):
                add(what("num_features=%d" % m.num_features), [B, m.num_features] + ([s] * nd if nd else []), {0: "batch"})
    return [(what, x, dyn) for _, what, x, dyn in out]


def parse_shape(text, torch):
    """'8, 3, 32, 32' (floats) or 'int 1000: 8, 16' (ids below 1000)."""
    t = text.strip()
    high = None
    if t.lower().startswith("int"):
        head, _, t = t.partition(":")
        try:
            high = int(head[3:].strip())
        except ValueError:
            raise ValueError("write token ids as 'int <vocabulary size>: <shape>', e.g. int 1000: 8, 16")
    dims = [d for d in t.replace("x", ",").replace("(", "").replace(")", "").replace("[", "").replace("]", "").split(",") if d.strip()]
    try:
        shape = [int(d) for d in dims]
    except ValueError:
        raise ValueError("'%s' is not a shape: write whole numbers separated by commas, e.g. 8, 3, 32, 32" % text)
    if not shape or any(d <= 0 for d in shape):
        raise ValueError("'%s' is not a shape: every dimension must be at least 1" % text)
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, high, tuple(shape), generator=gen) if high else torch.randn(*shape, generator=gen)


def try_forward(model, x, torch):
    try:
        with torch.no_grad():
            model(x)
        return None
    except Exception as exc:
        return describe(exc)


def infer_input(model, cls, request, torch, nn, root):
    """(input, dynamic axes, how it was found) for a model with one required forward input."""
    names, required = forward_inputs(model)
    if required > 1:
        raise HelperError(
            "input-unknown",
            "%s.forward needs %d inputs (%s): tell Gradient Lens what to feed it with\n    def gradlens_example(): return %s(), (%s)"
            % (cls.__name__, required, ", ".join(names[:required]), cls.__name__, ", ".join("torch.randn(...)" for _ in range(required))),
        )
    model.train()
    given = request.get("inputShape")
    if given:
        x = parse_shape(given, torch)
        err = try_forward(model, x, torch)
        if err is None:
            return x, {}, "the input shape you gave (%s)" % given
    tried = []
    for what, x, dyn in input_candidates(model, torch, nn):
        err = try_forward(model, x, torch)
        if err is None:
            return x, dyn, "%s %s inferred from %s" % ("token ids" if not x.is_floating_point() else "input", list(x.shape), what)
        tried.append("%s from %s: %s" % (list(x.shape), what, err.split("\n")[0][:200]))
    for _ in range(3):
        prompt = "Input shape for %s.forward(%s), e.g. 8, 3, 32, 32 (token ids: int 1000: 8, 16)" % (cls.__name__, names[0] if names else "x")
        answer = ask("inputShape", prompt=prompt, tried=tried[-4:])
        try:
            x = parse_shape(answer, torch)
        except ValueError as exc:
            tried.append(str(exc))
            continue
        err = try_forward(model, x, torch)
        if err is None:
            send({"type": "remember", "inputShape": answer})
            return x, {}, "the input shape you gave (%s)" % answer
        tried.append("%s: %s" % (answer, err.split("\n")[0][:200]))
    raise HelperError("input-unknown", "no input shape worked for %s: %s" % (cls.__name__, "; ".join(tried[-3:])))


def build(module, tree, request, torch, nn, root, notes, need_input=True):
    """The model (in training mode) and its sample input, by the first rule that applies."""
    requested = request.get("className") if request.get("classReason") in ("codelens", "cursor", "only", "remembered") else None
    built = from_example(module, request, torch, nn, root)
    if built is not None:
        # The example decides, unless the user asked for another class there and then (lens, cursor).
        if request.get("classReason") not in ("codelens", "cursor") or type(built.model).__name__ == requested.split(".")[-1]:
            return built
        notes.append("gradlens_example() builds %s, not %s: not used" % (type(built.model).__name__, requested))
    wanted, why = pick_class(module, tree, request, nn, notes) if requested else (None, None)
    built = from_export_call(module, tree, request, wanted, torch, nn, root, notes)
    if built is not None:
        return built
    cls, why = pick_class(module, tree, request, nn, notes) if wanted is None else (wanted, why)
    progress("building %s()" % cls.__name__)
    torch.manual_seed(0)
    try:
        model = construct(cls, request["file"], root)
    except HelperError as err:
        if err.code != "needs-arguments" or why != "cursor" or len(module_classes(module, nn)) < 2:
            raise
        # The class at the cursor is a block of a bigger model: inspect the model instead.
        notes.append("%s; inspecting the model instead" % err.message.split(". ")[0])
        return build(module, tree, dict(request, className=None, classReason=None), torch, nn, root, notes, need_input)
    if not need_input:
        return Built(model, None, "%s() with its defaults" % cls.__name__)
    x, dyn, how = infer_input(model, cls, request, torch, nn, root)
    names, _ = forward_inputs(model)
    name = names[0] if names else "input"
    return Built(model, (x,), "%s() with its defaults; %s" % (cls.__name__, how), input_names=[name], dynamic_axes={name: dyn} if dyn else None)


# ------------------------------------------------------------------------------------------------ export

def has_torchscript_exporter(torch):
    return hasattr(torch.onnx, "TrainingMode")


def input_names(built, torch):
    """The graph inputs' names: as given, else forward's parameter names (so Verify can feed them by name)."""
    if built.input_names is not None:
        return list(built.input_names)
    fwd, _ = forward_inputs(built.model)
    if all(isinstance(a, torch.Tensor) for a in built.args) and len(built.args) <= len(fwd):
        return fwd[: len(built.args)]
    return None


def export_onnx(built, path, request, torch, notes):
    """Exports with the faithful options; returns the exporter used."""
    model = built.model
    model.train()
    args = built.args
    names = input_names(built, torch)
    common = {}
    if names:
        common["input_names"] = list(names)
    if built.output_names:
        common["output_names"] = list(built.output_names)
    dynamo_param = "dynamo" in inspect.signature(torch.onnx.export).parameters
    forced = request.get("exporter", "auto")
    first_error = None
    if forced != "dynamo" and has_torchscript_exporter(torch):
        progress("exporting with the TorchScript exporter (training mode, opset %d)" % OPSET)
        kw = dict(common, opset_version=OPSET, training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False, verbose=True, dynamic_axes=built.dynamic_axes or {})
        if dynamo_param:
            kw["dynamo"] = False
        try:
            with warnings.catch_warnings():
                # The TorchScript exporter is chosen on purpose (see the module doc); its deprecation is known.
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                torch.onnx.export(model, args, path, **kw)
            return "torchscript", OPSET
        except Exception as exc:
            first_error = exc
            if not dynamo_param or forced == "torchscript":
                raise HelperError("export-failed", "torch.onnx.export failed: %s" % describe(exc), detail=traceback.format_exc())
    if not dynamo_param:
        raise HelperError("export-failed", "this torch (%s) has no ONNX exporter Gradient Lens can use" % torch.__version__)
    opset = max(OPSET, 18)  # below 18 the version conversion drops the source metadata
    progress("exporting with the dynamo exporter (optimize=False, opset %d)" % opset)
    try:
        torch.onnx.export(model, args, path, dynamo=True, optimize=False, opset_version=opset, external_data=False, **common)
    except Exception as exc:
        if first_error is not None:
            raise HelperError("export-failed", "torch.onnx.export failed: %s (the dynamo exporter failed too: %s)" % (describe(first_error), describe(exc)), detail=traceback.format_exc())
        raise HelperError("export-failed", "torch.onnx.export (dynamo) failed: %s" % describe(exc), detail=traceback.format_exc())
    why = "the TorchScript exporter failed (%s)" % describe(first_error).split("\n")[0][:300] if first_error is not None else (
        "requested" if forced == "dynamo" else "this torch has no TorchScript exporter")
    notes.append(
        "exported with the dynamo exporter (%s): BatchNorm is in inference form (running statistics) and dropout may be "
        "missing, so gradients of those layers differ from training-mode PyTorch" % why
    )
    return "dynamo", opset


# ------------------------------------------------------------------------------------------------ verify

def _dtypes(torch):
    return {"float32": torch.float32, "float64": torch.float64, "int32": torch.int32, "bool": torch.bool}


def read_bundle(path, torch):
    """A tensor bundle: <path> (JSON, tensors with dtype, shape, byte offset) and <path>.bin (raw little-endian data)."""
    with open(path, "r", encoding="utf-8") as fh:
        meta = json.load(fh)
    with open(path + ".bin", "rb") as fh:
        blob = fh.read()
    kinds = {"float32": torch.float32, "float64": torch.float64, "int32": torch.int32, "bool": torch.uint8}

    def tensor(t):
        shape = [int(d) for d in t["shape"]]
        n = 1
        for d in shape:
            n *= d
        if n == 0:
            return torch.zeros(shape, dtype=_dtypes(torch)[t["dtype"]])
        raw = bytearray(blob[t["offset"]: t["offset"] + t["bytes"]])
        x = torch.frombuffer(raw, dtype=kinds[t["dtype"]]).reshape(shape)
        return x.to(torch.bool) if t["dtype"] == "bool" else x

    return meta, tensor


def write_bundle(path, entries, extra, torch):
    """Writes float tensors ((name, tensor) pairs) in the bundle format read_bundle reads."""
    tensors = []
    offset = 0
    with open(path + ".bin", "wb") as fh:
        for name, t in entries:
            dtype = "float64" if t.dtype == torch.float64 else "float32"
            t = t.detach().cpu().to(torch.float64 if dtype == "float64" else torch.float32).contiguous()
            try:
                import numpy  # noqa: F401

                data = t.numpy().astype("<f8" if dtype == "float64" else "<f4").tobytes()
            except ImportError:
                import array

                a = array.array("d" if dtype == "float64" else "f", t.reshape(-1).tolist())
                if sys.byteorder != "little":
                    a.byteswap()
                data = a.tobytes()
            fh.write(data)
            tensors.append({"name": name, "dtype": dtype, "shape": list(t.shape), "offset": offset, "bytes": len(data)})
            offset += len(data)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(dict(extra, tensors=tensors), fh)


def flatten_outputs(value, torch):
    """Graph-output order of a forward result: tensors of tuples, lists and dicts (ModelOutput), depth first."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() if v is not None for t in flatten_outputs(v, torch)]
    if isinstance(value, (list, tuple)):
        return [t for v in value if v is not None for t in flatten_outputs(v, torch)]
    return []


@contextlib.contextmanager
def replay_dropout(calls, torch):
    """PyTorch's dropouts apply what the engine's Dropout nodes did, in call order: `calls` holds, per node the
    engine ran, (name, keep mask) or (name, None) when it passed its input through. F.dropout (nn.Dropout) and
    the dropout inside F.scaled_dot_product_attention are replayed; a count that differs is an error, never a
    silent mismatch (a dropout PyTorch draws itself would make the gradients differ for no fault of the engine)."""
    F = torch.nn.functional
    original = F.dropout
    original_sdpa = getattr(F, "scaled_dot_product_attention", None)
    used = [0]
    passed = []  # (kind, node) where PyTorch would drop and the engine's node did not

    def take(kind, shape):
        if used[0] >= len(calls):
            raise HelperError("verify-failed", "PyTorch ran more dropouts (%s) than the engine ran Dropout nodes (%d): cannot replay the engine's masks" % (kind, len(calls)))
        name, mask = calls[used[0]]
        used[0] += 1
        if mask is None:
            passed.append((kind, name))
        if mask is not None and tuple(mask.shape) != tuple(shape):
            raise HelperError("verify-failed", "dropout %d (%s) has shape %s in PyTorch but the engine's Dropout node %s has %s" % (used[0], kind, list(shape), name, list(mask.shape)))
        return mask

    def dropout(input, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return original(input, p, training, inplace)
        mask = take("dropout", input.shape)
        return input if mask is None else input * mask.to(input.dtype) * (1.0 / (1.0 - p))

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
        if scale is not None:
            kw = dict(kw, scale=scale)  # torch 2.0 has no `scale`
        if not dropout_p:
            return original_sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kw)
        if kw.get("enable_gqa"):
            groups = query.size(-3) // key.size(-3)
            key, value = key.repeat_interleave(groups, -3), value.repeat_interleave(groups, -3)
            kw = dict(kw, enable_gqa=False)
        # PyTorch's own formula (its documentation's reference implementation), with the engine's mask.
        s = query.size(-1) ** -0.5 if scale is None else scale
        scores = query @ key.transpose(-2, -1) * s
        if is_causal:
            keep = torch.ones(query.size(-2), key.size(-2), dtype=torch.bool, device=query.device).tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
        weights = torch.softmax(scores, dim=-1)
        mask = take("scaled_dot_product_attention", weights.shape)
        if mask is None:
            return original_sdpa(query, key, value, attn_mask=attn_mask, dropout_p=0.0, is_causal=is_causal, **kw)
        return (weights * mask.to(weights.dtype) * (1.0 / (1.0 - dropout_p))) @ value

    F.dropout = dropout
    if original_sdpa is not None:
        F.scaled_dot_product_attention = sdpa
    try:
        yield passed
    finally:
        F.dropout = original
        if original_sdpa is not None:
            F.scaled_dot_product_attention = original_sdpa
    if used[0] != len(calls):
        raise HelperError("verify-failed", "the engine ran %d Dropout nodes but PyTorch ran %d dropouts: cannot replay the engine's masks" % (len(calls), used[0]))


def compute_loss(kind, out, loss, targets, torch):
    F = torch.nn.functional
    if kind in ("graph", "output"):
        return out.reshape(())
    if kind == "meanSquare":
        return (out * out).mean()
    if kind == "mse":
        return F.mse_loss(out, targets.to(out.dtype))
    if kind == "crossEntropy":
        t = targets.long()
        ignore = int(loss.get("ignoreIndex", -100))
        if loss.get("classAxis", 1) == -1:
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), t.reshape(-1), ignore_index=ignore)
        return F.cross_entropy(out, t, ignore_index=ignore)
    raise HelperError("verify-failed", "cannot reproduce the engine's loss '%s' in PyTorch" % kind)


def verify(built, request, torch, notes):
    """PyTorch's loss and gradients for the engine's inputs, targets, loss, weights and dropout masks."""
    model = built.model
    meta, tensor = read_bundle(request["bundle"], torch)
    dtype = torch.float64 if meta["dtype"] == "float64" else torch.float32
    model.to(dtype)
    # The engine's run mode (gradientLens.run.mode): BatchNorm statistics and dropout as it ran them.
    model.train(meta.get("mode", "train") != "eval")
    params = dict(model.named_parameters(remove_duplicate=False)) if "remove_duplicate" in inspect.signature(model.named_parameters).parameters else dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    by_name = {t["name"]: t for t in meta["tensors"]}
    loaded = set()
    unknown = []
    with torch.no_grad():
        for name in meta["values"]:
            target = params.get(name, buffers.get(name))
            if target is None:
                unknown.append(name)
                continue
            value = tensor(by_name["value:" + name])
            if tuple(value.shape) != tuple(target.shape):
                raise HelperError("verify-failed", "the export does not match the model built from %s: %s is %s in the export but %s in the model (re-export, or delete a stale .onnx)" % (os.path.basename(request["file"]), name, list(value.shape), list(target.shape)))
            target.copy_(value.to(target.dtype))
            loaded.add(id(target))
    missing = [n for n, p in params.items() if id(p) not in loaded]
    trainable = [n for n in meta["gradients"] if n in params]
    frozen = [n for n in trainable if not params[n].requires_grad]
    for n in trainable:
        params[n].requires_grad_(True)
    inputs = [(t["name"], tensor(t)) for t in meta["tensors"] if t["name"].startswith("input:")]
    fwd, _ = forward_inputs(model)
    feeds = [(n[len("input:"):], x.long() if x.dtype == torch.int32 else x.to(dtype) if x.is_floating_point() else x) for n, x in inputs]
    masks = [(t["name"][len("dropout:"):], tensor(t)) for t in meta["tensors"] if t["name"].startswith("dropout:")]
    if "dropoutNodes" in meta:
        # Every Dropout node the engine ran, in order; the masks of those that dropped come in the same order.
        dropped = iter(masks)
        calls = [next(dropped) if n["dropped"] else (n["name"], None) for n in meta["dropoutNodes"]]
    else:
        calls = masks
    if not model.training:
        calls = []  # eval mode: neither the engine nor PyTorch drops (the engine's Dropout nodes all passed through)
    loss = meta["loss"]
    progress("running PyTorch forward and backward")
    model.zero_grad(set_to_none=True)
    with replay_dropout(calls, torch) as passed:
        if all(n in fwd for n, _ in feeds):
            result = model(**dict(feeds))
        else:
            result = model(*[x for _, x in feeds])
    if passed:
        them = "them" if len(passed) > 1 else "it"
        notes.append("%d dropout%s PyTorch applies in training did nothing in the engine's run (the export has %s in inference form: %s); PyTorch repeated the run without %s" % (
            len(passed), "s" if len(passed) > 1 else "", them, ", ".join(sorted(set(n or k for k, n in passed))[:4]), them))
    outputs = flatten_outputs(result, torch)
    index = meta["outputs"].index(loss["output"]) if loss.get("output") in meta["outputs"] else -1
    if index < 0 or index >= len(outputs):
        raise HelperError("verify-failed", "the engine's loss is computed from '%s', which is not one of the %d outputs PyTorch returns" % (loss.get("output"), len(outputs)))
    targets = tensor(by_name["targets"]) if "targets" in by_name else None
    value = compute_loss(loss["kind"], outputs[index], loss, targets, torch)
    value.backward()
    grads = []
    for n in trainable:
        g = params[n].grad
        grads.append((n, g if g is not None else torch.zeros_like(params[n])))
    if frozen:
        notes.append("PyTorch does not train %d of these parameters (requires_grad=False): %s; their gradients were computed for the comparison" % (len(frozen), ", ".join(frozen[:5])))
    out = request["bundle"] + ".torch.json"
    write_bundle(out, grads, {
        "loss": float(value.item()),
        "unknownValues": unknown,
        "notLoaded": missing,
        "noCounterpart": [n for n in meta["gradients"] if n not in params],
        "dtype": meta["dtype"],
    }, torch)
    return {"gradients": out, "loss": float(value.item()), "notLoaded": missing, "unknownValues": unknown}


# ------------------------------------------------------------------------------------------------ main

def run(request):
    root = os.path.abspath(request.get("root") or os.path.dirname(request["file"]))
    file = os.path.abspath(request["file"])
    with open(file, "rb") as fh:
        source = fh.read()
    try:
        tree = ast.parse(source, file)
    except SyntaxError as exc:
        raise fail_from("import-failed", "%s has a syntax error" % os.path.basename(file), exc, root)
    progress("importing torch")
    try:
        import torch
        from torch import nn
    except Exception as exc:
        raise HelperError("no-torch", "%s cannot import torch: %s" % (sys.executable, describe(exc)))
    send({"type": "hello", "python": sys.executable, "pythonVersion": sys.version.split()[0], "torch": torch.__version__})
    progress("importing %s" % os.path.basename(file))
    module = import_user_file(file, root)
    notes = []
    mode = request.get("mode", "export")
    built = build(module, tree, request, torch, nn, root, notes, need_input=mode == "export")
    base = {"className": type(built.model).__name__, "recipe": built.recipe, "torch": torch.__version__, "python": sys.executable, "notes": notes}
    if mode == "verify":
        return dict(base, **verify(built, request, torch, notes))
    out_dir = request["out"]
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, os.path.splitext(os.path.basename(file))[0] + ".onnx")
    started = time.time()
    exporter, opset = export_onnx(built, path, request, torch, notes)
    return dict(
        base,
        onnx=path,
        exporter=exporter,
        opset=opset,
        inputs=[{"name": n, "shape": list(a.shape), "dtype": str(a.dtype).replace("torch.", "")} for n, a in zip(input_names(built, torch) or ["input%d" % i for i in range(len(built.args))], built.args) if isinstance(a, torch.Tensor)],
        seconds=round(time.time() - started, 3),
        files=local_files(root, file),
    )


def main():
    global _out
    _out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything else printed to stdout (the user's code, the exporter) goes to stderr
    sys.stdout = sys.stderr
    line = sys.stdin.readline()
    try:
        request = json.loads(line)
        if request.get("protocol", PROTOCOL) != PROTOCOL:
            raise HelperError("protocol", "the extension speaks protocol %s, this helper %d" % (request.get("protocol"), PROTOCOL))
        result = run(request)
        send(dict(type="result", **result))
    except HelperError as err:
        send({"type": "error", "code": err.code, "message": err.message, "frames": err.frames, "detail": err.detail})
    except Cancelled:
        send({"type": "error", "code": "cancelled", "message": "cancelled"})
    except Exception as exc:  # a bug of this helper, or the user's code failing somewhere unexpected
        send({"type": "error", "code": "internal", "message": describe(exc), "detail": traceback.format_exc()})
    _out.flush()


if __name__ == "__main__":
    main()
