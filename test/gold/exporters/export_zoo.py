"""Exports zoo models the ways torch 2.13 users export them, with PyTorch's gradients to check against.

    ~/.cache/gradient-lens/python-33e127f45a/bin/python test/gold/exporters/export_zoo.py [model ...]

Writes test/fixtures/exports/<model>_<variant>_<exporter>.onnx (and .onnx.data for dynamo's default
external data) and <model>_<variant>.json: the inputs, targets, and per parameter the gradient norm
and size PyTorch computes in float32 and float64 for the cross-entropy of the logits against the
targets (over every position for language models), plus which parameter names are aliases (tied
weights: PyTorch reports them once, under the first name).

Exporters: 'dynamo' = torch.onnx.export(model, (), f, kwargs=inputs) with today's defaults
(dynamo=True, optimize=True, external_data=True); 'noopt' = the same with optimize=False; 'op17' = the
default with opset_version=17 (converted to 17, which strips the node metadata);
'legacy' = dynamo=False, training=TRAINING, do_constant_folding=False, the inputs positional to a forward narrowed
to them (see positional()). test/exports.gold.test.ts checks the whole PLAN; bench/exports_table.mjs prints it.
A '_eval' suffix exports after model.eval() ('legacy_eval' = dynamo=False with its defaults, which fold
BatchNorm into the convolution; 'legacy_nofold_eval' = dynamo=False, do_constant_folding=False); the
record then also holds PyTorch's eval-mode loss and gradients ("eval"), since the inspection runs in train
mode by default and in eval mode on request.
"""
import json
import os
import sys
import warnings

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import zoo  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "fixtures", "exports")

# (model, variant, exporters): small models; 'init' keeps the library init (equal LayerNorms, zero biases: what
# optimize=True merges and drops), 'perturbed' makes every parameter distinct and nonzero. Every model goes through
# the three exporters users have (dynamo defaults, optimize=False, legacy); the text models in both variants.
ALL = ["dynamo", "noopt", "legacy"]
PLAN = [
    ("vit", "init", ALL + ["op17"]),
    ("vit", "perturbed", ["dynamo"]),
    ("gpt2", "init", ALL),
    ("gpt2", "perturbed", ["dynamo"]),
    ("bert", "init", ["dynamo"]),
    ("bert", "perturbed", ALL),
    ("llama", "init", ALL),
    ("llama", "perturbed", ["dynamo"]),
    ("qwen2", "init", ["dynamo"]),
    ("qwen2", "perturbed", ALL),
    ("t5", "init", ALL),
    ("t5", "perturbed", ["dynamo"]),
    ("timm_vit", "perturbed", ALL),
    ("tv_mobilenet_v3", "perturbed", ALL),
    ("cnn_bn", "init", ["dynamo"]),
    ("cnn_bn", "perturbed", ALL),
    ("cnn_bn_drop", "perturbed", ["dynamo_eval", "noopt_eval", "legacy_eval", "legacy_nofold_eval"]),
]


def logits_of(out):
    return out.logits if hasattr(out, "logits") else out


class Float32Ops(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the ops of a float64 forward that compute in float32 anyway (T5's LayerNorm variance, `.float()`)."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(isinstance(t, torch.Tensor) and t.dtype == torch.float32 for t in (out if isinstance(out, (tuple, list)) else [out])):
            self.ops.add(str(func.overloadpacket.__name__))
        return out


def gold(name, variant, dtype, train=True):
    model, inputs, targets, _ = zoo.build(name, variant)
    model = model.to(dtype).train(train)
    inputs = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
    islands = Float32Ops()
    with islands:
        logits = logits_of(model(**inputs))
    gold.float32_ops = sorted(islands.ops) if dtype == torch.float64 else []
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    return model, inputs, targets, loss.item(), {n: p.grad.double().norm().item() if p.grad is not None else None for n, p in model.named_parameters()}


def export(name, variant, exporter):
    model, inputs, _, _ = zoo.build(name, variant)
    path = os.path.join(OUT, f"{name}_{variant}_{exporter}.onnx")
    if exporter.endswith("_eval"):
        model.eval()
        exporter = exporter[:-len("_eval")]
    for f in (path, path + ".data"):
        if os.path.exists(f):
            os.remove(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(model, (), path, kwargs=inputs)
        elif exporter == "op17":
            torch.onnx.export(model, (), path, kwargs=inputs, opset_version=17)
        elif exporter == "noopt":
            torch.onnx.export(model, (), path, kwargs=inputs, optimize=False)
        elif exporter == "legacy" and not model.training:
            torch.onnx.export(model, positional(model, inputs), path, input_names=list(inputs), dynamo=False)
        elif exporter == "legacy_nofold":
            torch.onnx.export(model, positional(model, inputs), path, input_names=list(inputs), dynamo=False, do_constant_folding=False)
        elif exporter == "legacy":
            torch.onnx.export(model, positional(model, inputs), path, input_names=list(inputs), dynamo=False,
                              training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
        else:
            raise ValueError(f"unknown exporter {exporter}")
    slim(path)
    return os.path.basename(path)


def positional(model, inputs):
    """The inputs as the legacy exporter should get them: positionally, to a forward that takes just them.

    The legacy exporter makes every forward parameter with a default that follows the given ones a graph input
    (torch.onnx's _decide_input_format), whether the inputs come positionally or as keyword arguments: transformers'
    `logits_to_keep=0` becomes an int64 input that a Gather reads, and the export computes the logits of one
    position instead of all. So the model's forward is narrowed to the inputs given (same module, same parameter
    names), as a user has to for these models."""
    import inspect
    forward = model.forward

    def narrowed(*args):
        return forward(**dict(zip(inputs, args)))

    narrowed.__signature__ = inspect.Signature([inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in inputs])
    model.forward = narrowed
    return tuple(inputs.values())


def slim(path):
    """Keeps committed fixtures small: drops the dynamo exporter's 'namespace' metadata (nothing reads it) and the
    library frames of each node's stack trace (the engine reads the innermost frame outside site-packages)."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    if not any(p.key == "namespace" for n in model.graph.node for p in n.metadata_props):
        return
    for n in model.graph.node:
        kept = []
        for p in n.metadata_props:
            if p.key == "namespace":
                continue
            if p.key == "pkg.torch.onnx.stack_trace":
                lines = p.value.splitlines()
                frames = [(lines[i], lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].lstrip().startswith("File ") else None)
                          for i in range(len(lines)) if lines[i].lstrip().startswith("File ")]
                user = [f for f in frames if "site-packages" not in f[0] and "/lib/python" not in f[0]]
                p.value = "\n".join(x for f in user for x in f if x is not None)
            kept.append(p)
        del n.metadata_props[:]
        n.metadata_props.extend(kept)
    onnx.save(model, path)


def input_record(v):
    """An input as JSON: float32 inputs larger than 4096 values as base64 of their little-endian bytes (small fixtures)."""
    import base64
    r = {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
    if v.dtype == torch.float32 and v.numel() > 4096:
        r["float32"] = base64.b64encode(v.contiguous().numpy().astype("<f4").tobytes()).decode()
    else:
        r["data"] = v.double().flatten().tolist()
    return r


def main():
    os.makedirs(OUT, exist_ok=True)
    only = sys.argv[1:]  # model names to regenerate (default: all)
    for name, variant, exporters in PLAN:
        if only and name not in only:
            continue
        model, inputs, targets, loss32, grads32 = gold(name, variant, torch.float32)
        _, _, _, loss64, grads64 = gold(name, variant, torch.float64)
        float32_ops = gold.float32_ops
        firsts = dict(model.named_parameters())
        aliases = {n: next(f for f, q in firsts.items() if q is p) for n, p in model.named_parameters(remove_duplicate=False) if n not in firsts}
        record = {
            "model": name, "variant": variant, "torch": torch.__version__,
            "inputs": {k: input_record(v) for k, v in inputs.items()},
            "targets": {"shape": list(targets.shape), "data": targets.flatten().tolist()},
            "loss": {"float32": loss32, "float64": loss64},
            # Ops PyTorch computes in float32 inside the float64 model: the float64 loss is float32-exact only there.
            "float32OpsInFloat64": float32_ops,
            "parameters": {n: {"numel": p.numel(), "grad32": grads32[n], "grad64": grads64[n]} for n, p in model.named_parameters()},
            "aliases": aliases,
            "exports": [export(name, variant, e) for e in exporters],
        }
        if any(e.endswith("_eval") for e in exporters):
            _, _, _, eloss32, egrads32 = gold(name, variant, torch.float32, train=False)
            _, _, _, eloss64, egrads64 = gold(name, variant, torch.float64, train=False)
            record["eval"] = {"loss": {"float32": eloss32, "float64": eloss64},
                              "parameters": {n: {"grad32": egrads32[n], "grad64": egrads64[n]} for n in egrads32}}
        with open(os.path.join(OUT, f"{name}_{variant}.json"), "w") as f:
            json.dump(record, f)
        print(name, variant, record["exports"])


if __name__ == "__main__":
    main()
