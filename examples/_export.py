"""Shared ONNX export helper for the examples (run each example file to regenerate its .onnx).

Exports in training form so Gradient Lens sees what backward sees: dropout and batch norm in train
mode, parameters kept as named initializers (no constant folding), and source lines in the export.
"""
import json
import os

import onnx
import torch


def export(model, args, path, input_names, output_names, dynamic_axes=None, opset=17, metadata=None):
    model.train()
    torch.onnx.export(
        model,
        args,
        path,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes or {},
        opset_version=opset,
        training=torch.onnx.TrainingMode.TRAINING,
        do_constant_folding=False,
        verbose=True,
    )
    m = onnx.load(path)
    # Keep stack traces short and machine independent: user frames only, paths relative to this folder.
    here = os.path.dirname(os.path.abspath(path))
    for node in m.graph.node:
        frames = [l for l in node.doc_string.splitlines() if here in l]
        node.doc_string = "\n".join(l.replace(here + os.sep, "") for l in frames)
    for key, value in (metadata or {}).items():
        entry = m.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.save(m, path)
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB)")
