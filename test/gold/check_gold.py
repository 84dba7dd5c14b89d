#!/usr/bin/python3
"""Sanity-check the gold fixtures written by make_gold.py.

    /usr/bin/python3 test/gold/check_gold.py

- decodes every tensor in test/fixtures/ops.json and models/*.json, checks
  shape/dtype/length consistency and finiteness;
- ops: regenerates the cases in memory and checks the decoded arrays are
  bit-identical (base64 round trip) and grads have the shapes of their inputs;
- models: loads "params"/"buffers" from JSON into fresh models.py modules,
  recomputes forward/loss/backward and compares with the stored outputs,
  loss, grads, buffers_after and (gpt) attention extras.
"""
import base64
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_gold as G  # noqa: E402
import models as M  # noqa: E402

FIX = G.FIXTURES


def dec(t):
    shape = t["shape"]
    n = int(np.prod(shape)) if shape else 1
    if t["dtype"] == "float64":
        raw = base64.b64decode(t["data"])
        assert len(raw) == 8 * n, (len(raw), shape)
        return torch.from_numpy(np.frombuffer(raw, dtype="<f8").copy().reshape(shape))
    assert isinstance(t["data"], list) and len(t["data"]) == n, shape
    if t["dtype"] == "int64":
        return torch.tensor(t["data"], dtype=torch.int64).reshape(shape)
    if t["dtype"] == "bool":
        assert set(t["data"]) <= {0, 1}
        return torch.tensor(t["data"], dtype=torch.bool).reshape(shape)
    raise ValueError(t["dtype"])


def same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


def close(a, b, tol=1e-10):
    return a.shape == b.shape and torch.allclose(a, b, rtol=tol, atol=tol)


def check_ops():
    ops = json.load(open(os.path.join(FIX, "ops.json")))
    G.CASES.clear()
    G.NAMES.clear()
    G.build_ops()
    ref = {c["name"]: c for c in G.CASES}
    names = [c["name"] for c in ops["cases"]]
    assert len(names) == len(set(names)), "duplicate case names"
    assert set(names) == set(ref), "case set differs from generator"
    for c in ops["cases"]:
        r = ref[c["name"]]
        assert len(c["outputs"]) == len(c["upstream"]) and len(c["inputs"]) == len(c["grads"])
        for key in ("inputs", "outputs", "upstream"):
            for a, b in zip(c[key], r[key]):
                ta = dec(a)
                assert same(ta, dec(b)), (c["name"], key)
                if ta.dtype == torch.float64:
                    assert torch.isfinite(ta).all(), (c["name"], key)
        for o, u in zip(c["outputs"], c["upstream"]):
            assert o["shape"] == u["shape"], c["name"]
        for inp, g in zip(c["inputs"], c["grads"]):
            if inp["grad"]:
                assert g is not None and g["shape"] == inp["shape"], c["name"]
                assert torch.isfinite(dec(g)).all(), c["name"]
            else:
                assert g is None, c["name"]
        # independent decode-based spot check for the simplest ops
        if c["op"] in ("add", "mul", "matmul"):
            a, b = dec(c["inputs"][0]), dec(c["inputs"][1])
            out = {"add": lambda: a + b, "mul": lambda: a * b, "matmul": lambda: a @ b}[c["op"]]()
            assert close(out, dec(c["outputs"][0])), c["name"]
        if c["op"] == "mul":
            a, b, up = dec(c["inputs"][0]), dec(c["inputs"][1]), dec(c["upstream"][0])
            ga = (up * b).sum_to_size(a.shape) if a.dim() else (up * b).sum()
            assert close(ga, dec(c["grads"][0])), c["name"]
    print(f"ops.json: {len(names)} cases OK (torch {ops['torch']})")
    return names


def load_into(model, rec):
    sd = {k: dec(v) for k, v in rec["params"].items()}
    sd.update({k: dec(v) for k, v in rec.get("buffers", {}).items()})
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    # only non-persistent buffers may be missing
    assert set(missing) <= {k for k, _ in model.named_buffers()} - set(model.state_dict()) \
        or not missing, missing


def check_model(name, model, fwd_loss):
    rec = json.load(open(os.path.join(FIX, "models", f"{name}.json")))
    load_into(model, rec)
    assert list(rec["params"]) == [k for k, _ in model.named_parameters()], name
    for k, p in model.named_parameters():
        p.requires_grad_(k in rec["trainable"])
    inputs = {k: dec(v) for k, v in rec["inputs"].items()}
    outputs, loss = fwd_loss(model, inputs)
    loss.backward()
    assert abs(loss.item() - rec["loss"]) < 1e-12, (name, loss.item(), rec["loss"])
    for k, v in rec["outputs"].items():
        assert close(outputs[k], dec(v)), (name, k)
    pm = dict(model.named_parameters())
    assert set(rec["grads"]) == set(rec["trainable"])
    for k, v in rec["grads"].items():
        assert close(pm[k].grad, dec(v)), (name, k)
    bm = dict(model.named_buffers())
    for k, v in rec["buffers_after"].items():
        assert close(bm[k].to(dec(v).dtype), dec(v)), (name, k)
    gn = {k: float(dec(v).norm()) for k, v in rec["grads"].items()}
    print(f"models/{name}.json OK: loss={rec['loss']:.6f} params={len(rec['params'])} "
          f"trainable={len(rec['trainable'])} grad-norm min/max="
          f"{min(gn.values()):.2e}/{max(gn.values()):.2e}")
    return rec, model


def ce_fl(m, ins):
    logits = m(ins["x"])
    return {"logits": logits}, F.cross_entropy(logits, ins["targets"])


def check_models():
    rec, m = check_model("mlp_sigmoid", M.MLPSigmoid(), ce_fl)
    w = [float(dec(rec["grads"][f"layers.{i}.weight"]).norm()) for i in range(10)]
    print("   mlp_sigmoid weight-grad norms by layer:", " ".join(f"{v:.1e}" for v in w))
    check_model("mlp_residual", M.MLPResidual(), ce_fl)
    cnn = M.CNN()
    cnn.train()
    check_model("cnn", cnn, ce_fl)

    gpt = M.GPT()
    for b in gpt.blocks:
        b.attn.record = True

    def gpt_fl(m, ins):
        logits = m(ins["idx"])
        return {"logits": logits}, F.cross_entropy(logits.view(-1, 16), ins["targets"].view(-1))
    rec, gpt = check_model("gpt", gpt, gpt_fl)
    for l, b in enumerate(gpt.blocks):
        assert close(b.attn.P, dec(rec["extras"][f"attn.{l}.P"]))
        assert close(b.attn.P.grad, dec(rec["extras"][f"attn.{l}.dP"]))
        dS = dec(rec["extras"][f"attn.{l}.dS"])
        assert close(b.attn.S.grad, dS)
        P = dec(rec["extras"][f"attn.{l}.P"])
        dP = dec(rec["extras"][f"attn.{l}.dP"])
        # softmax backward identity: dS = P * (dP - sum(P*dP))
        assert close(P * (dP - (P * dP).sum(-1, keepdim=True)), dS, 1e-9)
        kb = dec(rec["grads"][f"blocks.{l}.attn.k_proj.bias"]).abs().max().item()
        assert kb < 1e-12, kb
        print(f"   gpt layer {l}: extras OK, max|grad k_proj.bias| = {kb:.1e}")

    def lora_fl(m, ins):
        out = m(ins["x"])
        return {"logits": out}, F.mse_loss(out, ins["target"])
    check_model("lora", M.LoRAModel(), lora_fl)


if __name__ == "__main__":
    check_ops()
    check_models()
    total = os.path.getsize(os.path.join(FIX, "ops.json")) + sum(
        os.path.getsize(os.path.join(FIX, "models", f)) for f in os.listdir(os.path.join(FIX, "models")))
    print(f"total fixture size: {total} bytes")
