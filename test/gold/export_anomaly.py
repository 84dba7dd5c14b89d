#!/usr/bin/python3
"""Exports the NaN-producing models of test/fixtures/python/nan_model.py for the anomaly tests.

    /usr/bin/python3 test/gold/export_anomaly.py   # writes test/fixtures/onnx/nan_{forward,backward}.onnx

Legacy exporter with verbose stack traces (file and line in each node's doc_string), as
export_onnx.py does for the gold models.
"""
import os
import sys

import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "test", "fixtures", "python"))
from export_onnx import quiet  # noqa: E402
import nan_model  # noqa: E402

OUT = os.path.join(REPO, "test", "fixtures", "onnx")


def trim(doc):
    """Keeps the frames of nan_model.py, with the path made relative (fixtures must not hold this machine's paths)."""
    keep = [l.strip() for l in doc.splitlines() if "nan_model.py" in l]
    return "\n".join(l[l.index("nan_model.py"):] if "nan_model.py" in l else l for l in keep) + ("\n" if keep else "")


def export(cls, name):
    torch.manual_seed(0)
    model = cls().train()
    path = os.path.join(OUT, name + ".onnx")
    with quiet():
        torch.onnx.export(model, (torch.randn(4, 8),), path, opset_version=13,
                          training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                          verbose=True, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    m = onnx.load(path)
    for n in m.graph.node:
        n.doc_string = trim(n.doc_string)
    onnx.save(m, path)
    print(path, [(n.name, n.doc_string.strip()) for n in m.graph.node])


if __name__ == "__main__":
    export(nan_model.ForwardNaN, "nan_forward")
    export(nan_model.BackwardNaN, "nan_backward")
