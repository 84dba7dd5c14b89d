"""Writes test/fixtures/onnx/new_ops_op23.onnx: one small graph chaining the ops the importer gained for
real architectures (3-D-capable Conv path, LRN, Sin, LpPool, DepthToSpace, Resize, Einsum, RotaryEmbedding,
opset-23 Attention, CumSum, Atan), with seeded random weights. The WebGPU browser test inspects it on the
device and on the reference backend (loss and every parameter gradient must agree), and
test/onnx_node_device.test.ts runs it on the fake device.

    ~/.cache/gradient-lens/python-33e127f45a/bin/python test/gold/make_new_ops_model.py   (needs onnx, numpy)
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "onnx", "new_ops_op23.onnx")
rng = np.random.default_rng(23)


def init(name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name + "_value"))


angles = np.outer(np.arange(4), 1.0 / 10000 ** (np.arange(2) / 2)).astype(np.float32)  # [max_pos 4, rotary/2 2]
nodes = [
    helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c1"], pads=[1, 1, 1, 1]),
    helper.make_node("LRN", ["c1"], ["l"], size=3, alpha=0.2, beta=0.75, bias=1.5),
    helper.make_node("Sin", ["l"], ["s"]),
    helper.make_node("LpPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2], p=2),
    helper.make_node("DepthToSpace", ["p"], ["d"], blocksize=2, mode="CRD"),
    const("scales", np.array([1, 1, 0.5, 0.5], np.float32)),
    helper.make_node("Resize", ["d", "", "scales"], ["r"], mode="linear"),
    const("shape", np.array([2, 2, 8], np.int64)),
    helper.make_node("Reshape", ["r", "shape"], ["f"]),
    helper.make_node("Einsum", ["f", "proj.weight"], ["e"], equation="bsh,hk->bsk"),
    const("cos_cache", np.cos(angles)),
    const("sin_cache", np.sin(angles)),
    const("position_ids", np.array([[0, 1], [2, 3]], np.int64)),
    helper.make_node("RotaryEmbedding", ["e", "cos_cache", "sin_cache", "position_ids"], ["q"], num_heads=2),
    helper.make_node("Attention", ["q", "e", "e"], ["a"], q_num_heads=2, kv_num_heads=2, is_causal=1),
    const("axis", np.array(1, np.int64)),
    helper.make_node("CumSum", ["a", "axis"], ["c"]),
    helper.make_node("Atan", ["c"], ["y"]),
]
graph = helper.make_graph(
    nodes, "new_ops",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2, 8])],
    [init("conv.weight", 4, 3, 3, 3), init("conv.bias", 4), init("proj.weight", 8, 8)],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], producer_name="gradient-lens-test")
model.ir_version = 10
onnx.checker.check_model(model, full_check=True)
onnx.save(model, OUT)
print(f"wrote {OUT}")
