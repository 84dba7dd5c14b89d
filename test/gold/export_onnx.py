#!/usr/bin/python3
"""Export the gold fixture models (test/gold/models.py) to ONNX for the importer tests.

    /usr/bin/python3 test/gold/export_onnx.py    # writes test/fixtures/onnx/*.onnx + manifest.json

Parameters (and BatchNorm buffers) are read from test/fixtures/models/<name>.json, so every
exported model holds exactly the values the gold gradients were computed with (rounded to
float32: PyTorch exports the module's dtype and real exports are float32).

Legacy TorchScript exporter (torch 1.13), as NOTES.md recommends for gradient work:
training=TrainingMode.TRAINING, do_constant_folding=False (otherwise Linear weights get
pre-transposed into anonymous initializers), verbose=True (Python stack traces in each
node's doc_string). The doc strings are trimmed to keep the fixtures small: frames of the
export machinery (torch.jit tracing, torch.onnx, this script's <module>) are dropped, the
innermost torch frame (e.g. torch/nn/modules/linear.py) is kept so the importer's
"first frame outside torch" rule is exercised.

One model (gpt_dynamo_op17) is rewritten to look like the output of the dynamo exporter of
torch >= 2.5 (not available in torch 1.13): node names become `node_<Op>_<n>` and the module
path / class hierarchy / stack trace move into NodeProto.metadata_props (field 9, unknown to
onnx 1.12's Python classes, so it is appended as raw protobuf bytes, which protobuf keeps as
unknown fields when re-serialising).

Also writes opset18_ops.onnx, a tiny hand-built graph with the opset-18 forms (ReduceMean
axes input, Split num_outputs, ReduceSum noop_with_empty_axes...) that torch 1.13 cannot emit.
"""
import base64
import contextlib
import io
import json
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import models as M  # noqa: E402

GOLD = os.path.join(REPO, "test", "fixtures", "models")
OUT = os.path.join(REPO, "test", "fixtures", "onnx")


def dec(t):
    shape = t["shape"]
    if t["dtype"] == "float64":
        raw = base64.b64decode(t["data"])
        return torch.from_numpy(np.frombuffer(raw, dtype="<f8").copy().reshape(shape))
    if t["dtype"] == "int64":
        return torch.tensor(t["data"], dtype=torch.int64).reshape(shape)
    return torch.tensor(t["data"], dtype=torch.bool).reshape(shape)


def with_loss(cls, kind):
    """A subclass whose forward also returns the loss (same parameter names as `cls`)."""

    def forward(self, x, target):
        out = cls.forward(self, x)
        if kind == "ce":
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))
        else:
            # F.mse_loss has no ONNX symbolic in torch 1.13: spell it out (Sub, Pow, ReduceMean).
            loss = ((out - target) ** 2).mean()
        return out, loss

    return type(cls.__name__ + "WithLoss", (cls,), {"forward": forward})


def build(name, loss):
    rec = json.load(open(os.path.join(GOLD, name + ".json")))
    cfg = rec["config"]
    if name == "mlp_sigmoid":
        cls, kw, kind = M.MLPSigmoid, {}, "ce"
    elif name == "mlp_residual":
        cls, kw, kind = M.MLPResidual, {}, "ce"
    elif name == "cnn":
        cls, kw, kind = M.CNN, {}, "ce"
    elif name == "gpt":
        cls, kind = M.GPT, "ce"
        kw = {k: cfg[k] for k in ("vocab_size", "block_size", "n_embd", "n_head", "n_layer")}
    elif name == "lora":
        cls, kw, kind = M.LoRAModel, {}, "mse"
    else:
        raise ValueError(name)
    model = (with_loss(cls, kind) if loss else cls)(**kw).double()
    state = {k: dec(v) for k, v in rec["params"].items()}
    state.update({k: dec(v) for k, v in rec["buffers"].items()})
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    # Only non-persistent buffers (the GPT causal mask) may be missing.
    assert all(k.endswith("attn.mask") for k in missing), missing
    model = model.float()
    for k, p in model.named_parameters():
        p.requires_grad_(k in rec["trainable"])
    model.train()
    inputs = {k: dec(v) for k, v in rec["inputs"].items()}
    inputs = {k: (v.float() if v.is_floating_point() else v) for k, v in inputs.items()}
    return model, rec, inputs


@contextlib.contextmanager
def quiet():
    """Silences stdout/stderr at the file-descriptor level (C++ prints bypass sys.stdout)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [null]:
            os.close(fd)


def trim_doc(doc):
    """Keeps the user frames of a legacy verbose stack trace (plus the innermost torch frame)."""
    lines = [l for l in doc.splitlines() if l.strip()]
    keep = []
    for i, l in enumerate(lines):
        path = l.split("(")[0]
        if "export_onnx.py" in path:
            break
        if "/torch/" in path and i > 0:
            continue
        keep.append(l)
    return "\n".join(keep) + ("\n" if keep else "")


def export(name, opset, loss, out_name, dynamic=None):
    model, rec, inputs = build(name, loss)
    names = list(inputs)  # fixture input order: x/idx first, then targets/target
    args = tuple(inputs[k] for k in names) if loss else (inputs[names[0]],)
    input_names = names if loss else names[:1]
    output_names = ["logits", "loss"] if loss else ["logits"]
    path = os.path.join(OUT, out_name + ".onnx")
    with quiet():  # verbose=True also prints the whole graph from C++
        torch.onnx.export(
            model, args, path, opset_version=opset,
            training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
            verbose=True, input_names=input_names, output_names=output_names,
            dynamic_axes=dynamic)
    m = onnx.load(path)
    for n in m.graph.node:
        n.doc_string = trim_doc(n.doc_string)
    # Tracing ran one train-mode forward, which updated the BatchNorm running statistics in the
    # module: put back the values from before the step (the gold "buffers").
    for init in m.graph.initializer:
        if init.name in rec["buffers"]:
            value = dec(rec["buffers"][init.name]).numpy().astype(onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[init.data_type])
            init.CopyFrom(onnx.numpy_helper.from_array(value, init.name))
    onnx.save(m, path)
    return m, path, model


def enc_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_len(field, payload):
    return enc_varint((field << 3) | 2) + enc_varint(len(payload)) + payload


def string_entry(key, value):
    """StringStringEntryProto {key = 1; value = 2} as raw bytes."""
    return enc_len(1, key.encode()) + enc_len(2, value.encode())


def qualified(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def dynamo_style(src_path, dst_path, model):
    """Rewrites a legacy export so that module paths live only in dynamo-style metadata_props."""
    m = onnx.load(src_path)
    # Value names lose their module paths too (the dynamo exporter names values after FX nodes).
    keep = {v.name for v in list(m.graph.input) + list(m.graph.output) + list(m.graph.initializer)}
    renamed = {}
    for i, n in enumerate(m.graph.node):
        for j, o in enumerate(n.output):
            if o and o not in keep:
                renamed[o] = f"{n.op_type.lower()}_{i}" + (f"__{j}" if len(n.output) > 1 else "")
    for n in m.graph.node:
        n.input[:] = [renamed.get(v, v) for v in n.input]
        n.output[:] = [renamed.get(v, v) for v in n.output]
    del m.graph.value_info[:]
    counters = {}
    new_nodes = []
    for n in m.graph.node:
        scope = n.name.strip("/").split("/")[:-1] if n.name.startswith("/") else []
        # Cumulative module paths, as nn_module_stack gives them ('', 'blocks.0', 'blocks.0.attn',
        # ...); a ModuleList never runs forward, so 'blocks' itself is not a scope.
        paths, classes = [""], [qualified(type(model))]
        for part in scope:
            p = ".".join(filter(None, [paths[-1], part]))
            paths.append(p)
            classes.append(qualified(type(model.get_submodule(p))))
        counters[n.op_type] = counters.get(n.op_type, -1) + 1
        fx_name = f"{n.op_type.lower()}_{counters[n.op_type]}"
        frames = []
        for line in n.doc_string.splitlines():
            if "(" not in line or "/torch/" in line:
                continue
            file, rest = line.split("(", 1)
            lineno, func = rest.split("):", 1)
            frames.append(f'  File "{file}", line {lineno}, in {func.strip()}')
        # (the real exporter also writes "namespace" and "pkg.torch.onnx.fx_node"; left out to keep
        # the fixture small, the importer does not need them)
        props = {
            "pkg.torch.onnx.class_hierarchy": repr(classes + [f"aten.{n.op_type.lower()}.default"]),
            "pkg.torch.onnx.name_scopes": repr(paths + [fx_name]),
            "pkg.torch.onnx.stack_trace": "\n".join(reversed(frames)),
        }
        if n.op_type == "Constant":  # the dynamo exporter folds these into initializers
            del props["pkg.torch.onnx.stack_trace"]
        n.name = f"node_{n.op_type}_{counters[n.op_type]}"
        n.doc_string = ""
        raw = n.SerializeToString() + b"".join(enc_len(9, string_entry(k, v)) for k, v in props.items())
        nn_ = onnx.NodeProto()
        nn_.ParseFromString(raw)
        new_nodes.append(nn_)
    del m.graph.node[:]
    m.graph.node.extend(new_nodes)
    m.producer_name = "pytorch"
    m.producer_version = "2.9.0 (dynamo-style rewrite of a torch 1.13 legacy export)"
    with open(dst_path, "wb") as f:
        f.write(m.SerializeToString())


def opset18_model(path):
    """A tiny opset-18 graph: x[2,6] -> ReduceMean(axes input) / Split(num_outputs) / ... -> y."""
    rng = np.random.default_rng(18)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((4,)).astype(np.float32)
    scale = rng.standard_normal((4,)).astype(np.float32)
    init = [
        helper.make_tensor("w", TensorProto.FLOAT, [6, 4], w.flatten()),
        helper.make_tensor("b", TensorProto.FLOAT, [4], b.flatten()),
        helper.make_tensor("ln.scale", TensorProto.FLOAT, [4], scale.flatten()),
        helper.make_tensor("axes_last", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("pads", TensorProto.INT64, [4], [0, 1, 0, 2]),
        helper.make_tensor("pad_value", TensorProto.FLOAT, [], [0.5]),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h0"], name="/fc/MatMul"),
        helper.make_node("Add", ["h0", "b"], ["h"], name="/fc/Add"),
        helper.make_node("ReduceMean", ["h", "axes_last"], ["mu"], name="/ln/ReduceMean", keepdims=1),
        helper.make_node("Sub", ["h", "mu"], ["hc"], name="/ln/Sub"),
        helper.make_node("Mul", ["hc", "hc"], ["hc2"], name="/ln/Mul"),
        helper.make_node("ReduceMean", ["hc2", "axes_last"], ["var"], name="/ln/ReduceMean_1", keepdims=1),
        helper.make_node("Constant", [], ["eps"], name="/ln/Constant", value_float=1e-5),
        helper.make_node("Add", ["var", "eps"], ["var_eps"], name="/ln/Add"),
        helper.make_node("Sqrt", ["var_eps"], ["std"], name="/ln/Sqrt"),
        helper.make_node("Div", ["hc", "std"], ["hn"], name="/ln/Div"),
        helper.make_node("Mul", ["hn", "ln.scale"], ["hs"], name="/ln/Mul_1"),
        helper.make_node("Split", ["hs"], ["s0", "s1"], name="/Split", axis=1, num_outputs=2),
        helper.make_node("Mul", ["s0", "s1"], ["glu"], name="/Mul"),
        helper.make_node("Pad", ["glu", "pads", "pad_value"], ["padded"], name="/Pad", mode="constant"),
        helper.make_node("ReduceSum", ["padded"], ["total"], name="/ReduceSum", keepdims=0),
        helper.make_node("ReduceMax", ["padded", "axes_last"], ["rowmax"], name="/ReduceMax", keepdims=0),
        helper.make_node("ReduceL2", ["padded", "axes_last"], ["rownorm"], name="/ReduceL2", keepdims=0),
        helper.make_node("Add", ["rowmax", "rownorm"], ["y0"], name="/Add"),
        helper.make_node("Mul", ["y0", "total"], ["y"], name="/Mul_1"),
    ]
    graph = helper.make_graph(
        nodes, "opset18_ops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])],
        init)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                          producer_name="export_onnx.py", ir_version=8)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def save(model, path):
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def init(name, array):
    return onnx.numpy_helper.from_array(np.asarray(array), name)


def ops_cnn_model(path):
    """Convolution/pooling coverage: SAME_UPPER stride-2 Conv (asymmetric pads), PRelu, grouped
    ConvTranspose with output_padding, ceil-mode MaxPool with asymmetric pads, AveragePool
    excluding padding, InstanceNormalization, global pools, dilated 1-D Conv."""
    rng = np.random.default_rng(1)
    f32 = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    inits = [
        init("c1.weight", f32(4, 3, 3, 3)), init("c1.bias", f32(4)), init("act.slope", f32(4, 1, 1)),
        init("up.weight", f32(4, 2, 3, 3)), init("up.bias", f32(4)),
        init("norm.scale", f32(4) + 1), init("norm.bias", f32(4)),
        init("c1d.weight", f32(2, 3, 3)), init("c1d.bias", f32(2)),
        init("shape_1d", np.array([2, 3, 36], np.int64)), init("axes_2", np.array([2], np.int64)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c1.weight", "c1.bias"], ["c1"], name="/c1/Conv", strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("PRelu", ["c1", "act.slope"], ["a1"], name="/act/PRelu"),
        helper.make_node("ConvTranspose", ["a1", "up.weight", "up.bias"], ["u1"], name="/up/ConvTranspose",
                         strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1], group=2),
        helper.make_node("MaxPool", ["u1"], ["m1"], name="/pool/MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0], ceil_mode=1),
        helper.make_node("AveragePool", ["u1"], ["p1"], name="/avg/AveragePool", kernel_shape=[2, 3], strides=[2, 2], pads=[0, 1, 1, 1], count_include_pad=0),
        helper.make_node("Add", ["m1", "p1"], ["s1"], name="/Add"),
        helper.make_node("InstanceNormalization", ["s1", "norm.scale", "norm.bias"], ["n1"], name="/norm/InstanceNormalization", epsilon=1e-5),
        helper.make_node("GlobalMaxPool", ["n1"], ["gm"], name="/GlobalMaxPool"),
        helper.make_node("GlobalAveragePool", ["n1"], ["ga"], name="/GlobalAveragePool"),
        helper.make_node("Add", ["gm", "ga"], ["g"], name="/Add_1"),
        helper.make_node("Flatten", ["g"], ["gf"], name="/Flatten", axis=1),
        helper.make_node("Reshape", ["x", "shape_1d"], ["x1d"], name="/Reshape"),
        helper.make_node("Conv", ["x1d", "c1d.weight", "c1d.bias"], ["c1d"], name="/c1d/Conv", dilations=[2], pads=[1, 2]),
        helper.make_node("ReduceMean", ["c1d"], ["r1d"], name="/ReduceMean", axes=[2], keepdims=0),
        helper.make_node("Concat", ["gf", "r1d"], ["y"], name="/Concat", axis=1),
    ]
    graph = helper.make_graph(nodes, "ops_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="export_onnx.py", ir_version=8), path)


def ops_misc_model(path):
    """Elementwise / layout / reduction coverage at opset 13 (axes attributes for Reduce* except
    ReduceSum, Split/Squeeze/Unsqueeze/Pad axes and sizes as inputs)."""
    rng = np.random.default_rng(2)
    f32 = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    i64 = lambda v: np.array(v, np.int64)  # noqa: E731
    inits = [
        init("w", f32(4, 3)), init("bias", f32(3)), init("gamma", f32(1, 3)),
        init("reps", i64([1, 2])), init("expand_to", i64([2, 3, 3])), init("pads", i64([0, 1, 0, 2])),
        init("gidx", i64([[2, 0, 1, 5, 4, 3], [0, 0, 1, 1, 2, 2], [5, 4, 3, 2, 1, 0]])),
        init("starts", i64([-1])), init("ends", i64([-1000])), init("axes1", i64([1])), init("steps", i64([-2])),
        init("split", i64([4, 5])), init("lo", np.array(-0.5, np.float32)), init("hi", np.array(0.6, np.float32)),
        init("zero", np.array(0.0, np.float32)), init("ax0", i64([0])),
    ]
    n = helper.make_node
    nodes = [
        n("Gemm", ["x", "w", "bias"], ["h"], name="/fc/Gemm", alpha=0.7, beta=1.3),  # [3,3]
        n("Tile", ["h", "reps"], ["ht"], name="/Tile"),  # [3,6]
        n("Softplus", ["ht"], ["sp"], name="/Softplus"),
        n("Elu", ["ht"], ["el"], name="/Elu", alpha=0.8),
        n("HardSigmoid", ["ht"], ["hs"], name="/HardSigmoid", alpha=0.3, beta=0.4),
        n("Clip", ["ht", "lo", "hi"], ["cl"], name="/Clip"),
        n("Less", ["ht", "zero"], ["neg"], name="/Less"),
        n("Where", ["neg", "sp", "el"], ["wh"], name="/Where"),
        n("Sum", ["wh", "hs", "cl"], ["s3"], name="/Sum"),
        n("Max", ["sp", "el"], ["mx"], name="/Max"),
        n("Min", ["sp", "hs"], ["mn"], name="/Min"),
        n("Mean", ["s3", "mx", "mn"], ["m3"], name="/Mean"),  # [3,6]
        n("GatherElements", ["m3", "gidx"], ["ge"], name="/GatherElements", axis=1),  # [3,6]
        n("Pad", ["ge", "pads"], ["pd"], name="/Pad", mode="reflect"),  # [3,9]
        n("Split", ["pd", "split"], ["sa", "sb"], name="/Split", axis=1),  # [3,4], [3,5]
        n("ReduceLogSumExp", ["sb"], ["lse"], name="/ReduceLogSumExp", axes=[1], keepdims=1),  # [3,1]
        n("ReduceL2", ["sa"], ["l2"], name="/ReduceL2", axes=[1], keepdims=1),  # [3,1]
        n("ReduceMin", ["pd"], ["rmin"], name="/ReduceMin", axes=[1], keepdims=1),  # [3,1]
        n("Add", ["lse", "l2"], ["a1"], name="/Add"),
        n("Sub", ["a1", "rmin"], ["b"], name="/Sub"),  # [3,1]
        n("Slice", ["ge", "starts", "ends", "axes1", "steps"], ["sl"], name="/Slice"),  # [3,3]: columns 5, 3, 1
        n("Transpose", ["sl"], ["slt"], name="/Transpose", perm=[1, 0]),
        n("Mul", ["slt", "gamma"], ["mm"], name="/Mul"),
        n("LpNormalization", ["mm"], ["lp"], name="/LpNormalization", axis=1, p=2),
        n("Softmax", ["lp"], ["sm"], name="/Softmax", axis=0),  # [3,3]
        n("LogSoftmax", ["b"], ["ls"], name="/LogSoftmax", axis=0),  # [3,1]
        n("ReduceSumSquare", ["ls"], ["ss"], name="/ReduceSumSquare", axes=[0], keepdims=1),  # [1,1]
        n("Unsqueeze", ["sm", "ax0"], ["smu"], name="/Unsqueeze"),  # [1,3,3]
        n("Expand", ["smu", "expand_to"], ["ex"], name="/Expand"),  # [2,3,3]
        n("ReduceSum", ["ex", "ax0"], ["rs"], name="/ReduceSum", keepdims=0),  # [3,3]
        n("Mul", ["rs", "ss"], ["ms"], name="/Mul_1"),
        n("Add", ["ms", "b"], ["y"], name="/Add_1"),  # [3,3]
    ]
    graph = helper.make_graph(nodes, "ops_misc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="export_onnx.py", ir_version=8), path)


def ops_loss_model(path):
    """Losses: SoftmaxCrossEntropyLoss with class weights and ignore_index over [N, C, d] scores,
    NegativeLogLikelihoodLoss (sum) on LogSoftmax, combined into one scalar."""
    rng = np.random.default_rng(3)
    inits = [init("class_weight", (rng.random(5) + 0.5).astype(np.float32)), init("tenth", np.array(0.1, np.float32))]
    n = helper.make_node
    nodes = [
        n("SoftmaxCrossEntropyLoss", ["scores", "labels", "class_weight"], ["sce", "log_prob"], name="/SoftmaxCrossEntropyLoss",
          reduction="mean", ignore_index=1),
        n("LogSoftmax", ["scores"], ["lsm"], name="/LogSoftmax", axis=1),
        n("NegativeLogLikelihoodLoss", ["lsm", "labels"], ["nll"], name="/NegativeLogLikelihoodLoss", reduction="sum"),
        n("Mul", ["nll", "tenth"], ["nll10"], name="/Mul"),
        n("Add", ["sce", "nll10"], ["loss"], name="/Add"),
    ]
    graph = helper.make_graph(nodes, "ops_loss",
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [4, 5, 2]),
                               helper.make_tensor_value_info("labels", TensorProto.INT64, [4, 2])],
                              [helper.make_tensor_value_info("loss", TensorProto.FLOAT, []),
                               helper.make_tensor_value_info("log_prob", TensorProto.FLOAT, [4, 5, 2])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="export_onnx.py", ir_version=8), path)


def ops_shape_model(path):
    """The shape subgraphs exporters emit, on symbolic batch/seq dims: Shape, Gather, Unsqueeze,
    Concat, ConstantOfShape, Trilu, Equal, Not, Where with -inf (a causal mask), Range, Cast,
    Expand, Size, integer Div/Mul, CastLike, ArgMax and OneHot."""
    n = helper.make_node
    i64 = lambda v: np.array(v, np.int64)  # noqa: E731
    rng = np.random.default_rng(4)
    inits = [
        init("w_pos", (rng.standard_normal(4) * 0.3).astype(np.float32)),
        init("one_i", i64(1)), init("zero_i", i64(0)), init("axis0", i64([0])), init("d4", i64([4])),
        init("depth", i64(4)), init("onehot_values", np.array([0.0, 1.0], np.float32)),
    ]
    nodes = [
        # scalar constants as Constant nodes (as exporters emit them), not initializers
        n("Constant", [], ["one_f"], name="/Constant", value=helper.make_tensor("c", TensorProto.FLOAT, [], [1.0])),
        n("Constant", [], ["neg_inf"], name="/Constant_1", value=helper.make_tensor("c", TensorProto.FLOAT, [], [-np.inf])),
        n("Shape", ["x"], ["s"], name="/Shape"),
        n("Gather", ["s", "one_i"], ["T"], name="/Gather", axis=0),
        n("Gather", ["s", "zero_i"], ["B"], name="/Gather_1", axis=0),
        n("Unsqueeze", ["T", "axis0"], ["T1"], name="/Unsqueeze"),
        n("Concat", ["T1", "T1"], ["TT"], name="/Concat", axis=0),
        n("ConstantOfShape", ["TT"], ["ones"], name="/ConstantOfShape", value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        n("Trilu", ["ones"], ["tri"], name="/Trilu", upper=0),
        n("Equal", ["tri", "one_f"], ["keep"], name="/Equal"),
        n("Not", ["keep"], ["masked_out"], name="/Not"),
        n("Transpose", ["x"], ["xt"], name="/attn/Transpose", perm=[0, 2, 1]),
        n("MatMul", ["x", "xt"], ["scores"], name="/attn/MatMul"),
        n("Where", ["masked_out", "neg_inf", "scores"], ["masked"], name="/attn/Where"),
        n("Softmax", ["masked"], ["P"], name="/attn/Softmax", axis=-1),
        n("MatMul", ["P", "x"], ["y1"], name="/attn/MatMul_1"),
        n("Range", ["zero_i", "T", "one_i"], ["pos"], name="/Range"),
        n("Cast", ["pos"], ["posf"], name="/Cast", to=TensorProto.FLOAT),
        n("Unsqueeze", ["posf", "one_i_ax"], ["posc"], name="/Unsqueeze_1"),
        n("Concat", ["T1", "d4"], ["TD"], name="/Concat_1", axis=0),
        n("Expand", ["posc", "TD"], ["pos_e"], name="/Expand"),
        n("Mul", ["pos_e", "w_pos"], ["pos_emb"], name="/pos/Mul"),
        n("Add", ["y1", "pos_emb"], ["y2"], name="/Add"),
        n("Size", ["x"], ["numel"], name="/Size"),
        n("Mul", ["B", "T"], ["BT"], name="/Mul"),
        n("Div", ["numel", "BT"], ["D"], name="/Div"),
        n("CastLike", ["D", "x"], ["Df"], name="/CastLike"),
        n("Sqrt", ["Df"], ["sqrtD"], name="/Sqrt"),
        n("Div", ["y2", "sqrtD"], ["y3"], name="/Div_1"),
        n("ArgMax", ["y3"], ["am"], name="/ArgMax", axis=-1, keepdims=0),
        n("OneHot", ["am", "depth", "onehot_values"], ["oh"], name="/OneHot", axis=-1),
        n("Add", ["oh", "one_f"], ["oh1"], name="/Add_1"),
        n("Mul", ["y3", "oh1"], ["y"], name="/Mul_1"),
    ]
    inits.append(init("one_i_ax", i64([1])))
    graph = helper.make_graph(nodes, "ops_shape", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], producer_name="export_onnx.py", ir_version=8), path)


def dropout_model(path):
    """Dropout in training mode (opset 13: ratio and training_mode inputs) with its mask output."""
    n = helper.make_node
    inits = [init("ratio", np.array(0.25, np.float32)), init("train", np.array(True))]
    nodes = [n("Dropout", ["x", "ratio", "train"], ["y", "mask"], name="/drop/Dropout")]
    graph = helper.make_graph(nodes, "dropout", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 64]),
                               helper.make_tensor_value_info("mask", TensorProto.BOOL, [4, 64])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="export_onnx.py", ir_version=8), path)


def error_models(out):
    """Models that must fail to import, each with one specific problem."""
    os.makedirs(out, exist_ok=True)
    n = helper.make_node
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    opset = [helper.make_opsetid("", 17)]
    mk = lambda nodes, name, inputs, inits=(): helper.make_model(  # noqa: E731
        helper.make_graph(nodes, name, inputs, [y], list(inits)), opset_imports=opset, producer_name="export_onnx.py", ir_version=8)
    # 1. an op the importer does not map, inside a module scope
    save(mk([n("Relu", ["x"], ["h"], name="/encoder/layers.0/Relu"),
             n("Unique", ["h", "h"], ["y"], name="/encoder/layers.0/attn/Unique", equation="ij,ij->ij")],
            "unsupported_op", [x]), os.path.join(out, "unsupported_op.onnx"))
    # 2. initializer data in an external file
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    ext = onnx.numpy_helper.from_array(w, "fc.weight")
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", str(w.nbytes))):
        e = ext.external_data.add()
        e.key, e.value = k, v
    save(mk([n("MatMul", ["x", "fc.weight"], ["y"], name="/fc/MatMul")], "external_data", [x], [ext]),
         os.path.join(out, "external_data.onnx"))
    with open(os.path.join(out, "weights.bin"), "wb") as f:
        f.write(w.tobytes())
    # 3. a string input
    save(mk([n("Identity", ["s"], ["y"], name="/Identity")], "string_input",
            [helper.make_tensor_value_info("s", TensorProto.STRING, [2])]), os.path.join(out, "string_input.onnx"))
    # 4. a symbolic dimension that is neither batch- nor sequence-like
    save(mk([n("Relu", ["x"], ["y"], name="/Relu")], "unresolved_dim",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n_heads", 4])]), os.path.join(out, "unresolved_dim.onnx"))
    # 5. an int64 constant beyond int32
    save(mk([n("Constant", [], ["big"], name="/Constant", value=helper.make_tensor("v", TensorProto.INT64, [1], [2 ** 40])),
             n("Reshape", ["x", "big"], ["y"], name="/Reshape")], "int64_overflow", [x]), os.path.join(out, "int64_overflow.onnx"))
    # 6. not an error: an unsupported op in a branch no output depends on (must be tolerated)
    save(mk([n("Relu", ["x"], ["y"], name="/Relu"),
             n("Unique", ["x", "x"], ["unused"], name="/debug/Unique", equation="ij,ij->ij")], "dead_branch", [x]),
         os.path.join(out, "dead_branch.onnx"))
    # 7. a node reading a value nobody defines
    save(mk([n("Add", ["x", "ghost"], ["y"], name="/Add")], "undefined_value", [x]), os.path.join(out, "undefined_value.onnx"))


# name, gold model, opset, loss inside the graph, dynamic axes
EXPORTS = [
    ("mlp_sigmoid_op13_loss", "mlp_sigmoid", 13, True, None),
    ("mlp_residual_op14", "mlp_residual", 14, False, {"x": {0: "batch"}, "logits": {0: "batch"}}),
    ("mlp_residual_op17_loss", "mlp_residual", 17, True, None),
    ("cnn_op13", "cnn", 13, False, None),
    ("cnn_op17_loss", "cnn", 17, True, None),
    ("gpt_op13_loss", "gpt", 13, True,
     {"idx": {0: "batch", 1: "seq"}, "targets": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}),
    ("lora_op14_loss", "lora", 14, True, None),
    ("lora_op17", "lora", 17, False, None),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    manifest = {"torch": torch.__version__, "onnx": onnx.__version__, "models": []}
    for out_name, name, opset, loss, dyn in EXPORTS:
        m, path, model = export(name, opset, loss, out_name, dyn)
        manifest["models"].append({
            "file": out_name + ".onnx", "gold": name, "opset": opset, "lossInGraph": loss,
            "inputs": [i.name for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}],
            "exporter": "legacy",
        })
        print(f"wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path)} bytes, {len(m.graph.node)} nodes)")
    # dynamo-style rewrite of a GPT export at opset 17 (LayerNormalization, no loss in the graph)
    model_path = os.path.join(OUT, "_tmp_gpt_op17.onnx")
    _, _, gpt = export("gpt", 17, False, "_tmp_gpt_op17", {"idx": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}})
    dst = os.path.join(OUT, "gpt_dynamo_op17.onnx")
    dynamo_style(model_path, dst, gpt)
    os.remove(model_path)
    manifest["models"].append({"file": "gpt_dynamo_op17.onnx", "gold": "gpt", "opset": 17, "lossInGraph": False,
                               "inputs": ["idx"], "exporter": "dynamo-style"})
    print(f"wrote {os.path.relpath(dst, REPO)} ({os.path.getsize(dst)} bytes)")
    for name, build_fn in (("opset18_ops", opset18_model), ("ops_cnn", ops_cnn_model), ("ops_misc", ops_misc_model),
                           ("ops_loss", ops_loss_model), ("ops_shape", ops_shape_model),
                           ("dropout_train", dropout_model)):
        p = os.path.join(OUT, name + ".onnx")
        build_fn(p)
        print(f"wrote {os.path.relpath(p, REPO)} ({os.path.getsize(p)} bytes)")
    error_models(os.path.join(OUT, "errors"))
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"total {total} bytes in {os.path.relpath(OUT, REPO)}")


if __name__ == "__main__":
    main()
