#!/usr/bin/python3
"""Gold data for training: 20 optimiser steps of PyTorch on the MLP and GPT fixtures.

    /usr/bin/python3 test/gold/make_train_gold.py    # writes test/fixtures/train/<model>.json

Each model starts from its fixture parameters (test/fixtures/models/<name>.json) rounded to float32,
which is exactly what the ONNX fixtures (test/fixtures/onnx/<name>_op13_loss.onnx) hold, and then
trains in float64 on the fixture's inputs and targets (the same batch every step), so the engine can
be compared tightly in float64 and within 1e-4 in float32. Per run the file holds the optimiser
settings, the loss and total gradient norm (before clipping) of every step, and every parameter
after the last step.

Runs cover: SGD with momentum and weight decay, SGD with Nesterov momentum and clip_grad_norm_,
Adam, and AdamW with clip_grad_value_ (PyTorch's own optimiser and clipping code).
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from export_onnx import build, dec  # noqa: E402
from make_gold import enc  # noqa: E402

OUT = os.path.join(REPO, "test", "fixtures", "train")
STEPS = 20

RUNS = {
    "mlp_sigmoid": [
        {"kind": "sgd", "lr": 0.5, "momentum": 0.9, "weightDecay": 1e-4},
        {"kind": "adam", "lr": 1e-2},
    ],
    "gpt": [
        {"kind": "sgd", "lr": 0.3, "momentum": 0.9, "nesterov": True, "clipNorm": 0.5},
        {"kind": "adam", "lr": 3e-3},
        {"kind": "adamw", "lr": 3e-3, "weightDecay": 0.01, "clipValue": 0.05},
    ],
}


def optimizer(params, s):
    if s["kind"] == "sgd":
        return torch.optim.SGD(params, lr=s["lr"], momentum=s.get("momentum", 0), nesterov=s.get("nesterov", False),
                               weight_decay=s.get("weightDecay", 0))
    if s["kind"] == "adam":
        return torch.optim.Adam(params, lr=s["lr"], weight_decay=s.get("weightDecay", 0))
    if s["kind"] == "adamw":
        return torch.optim.AdamW(params, lr=s["lr"], weight_decay=s.get("weightDecay", 0.01))
    raise ValueError(s["kind"])


def train(name, settings):
    model, rec, inputs = build(name, loss=True)  # float32 parameters, as exported
    model = model.double()
    inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}
    args = tuple(inputs.values())
    named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    opt = optimizer([p for _, p in named], settings)
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        _, loss = model(*args)
        loss.backward()
        losses.append(loss.item())
        norms.append(torch.norm(torch.stack([p.grad.norm() for _, p in named])).item())
        if "clipNorm" in settings:
            torch.nn.utils.clip_grad_norm_([p for _, p in named], settings["clipNorm"])
        if "clipValue" in settings:
            torch.nn.utils.clip_grad_value_([p for _, p in named], settings["clipValue"])
        opt.step()
    return {
        "optimizer": settings,
        "loss": losses,
        "gradNormTotal": norms,
        "params": {k: enc(p.detach()) for k, p in named},
    }


def main():
    torch.set_default_dtype(torch.float64)
    os.makedirs(OUT, exist_ok=True)
    for name, runs in RUNS.items():
        out = {"name": name, "torch": torch.__version__, "steps": STEPS,
               "onnx": f"{name}_op13_loss.onnx", "runs": [train(name, s) for s in runs]}
        path = os.path.join(OUT, name + ".json")
        with open(path, "w") as f:
            json.dump(out, f)
        print(path, [f"{r['optimizer']['kind']}: {r['loss'][0]:.4f} -> {r['loss'][-1]:.4f}" for r in out["runs"]])


if __name__ == "__main__":
    main()
