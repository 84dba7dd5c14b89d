"""The real-model set of the benchmark: small configs of models people use, built with seeded random init.

Two jobs, both driven by bench/real-models.mjs:

  python real_models.py export OUT_DIR [--only a,b]   build each model, export it to OUT_DIR/<id>.onnx with the
        TorchScript exporter the way the README tells users to (TRAINING mode, do_constant_folding=False, opset 17),
        and write OUT_DIR/<id>.json: the inputs, the loss targets and PyTorch's loss (float64 data, base64).
  python real_models.py time OUT_DIR [--only a,b] [--min-ms N]   rebuild each model (same seed, so the same
        weights) and time forward + loss + backward on one thread (torch.set_num_threads(1)); prints one JSON line
        per model: {"id", "median", "min", "reps", "loss"}.

Dropout and stochastic depth are set to 0 so a run is deterministic and the engine's loss can be checked against
PyTorch's. No weights are downloaded: models come from their configs.
"""
import argparse
import base64
import json
import os
import sys
import time
import types
import warnings

# torchvision's wheels on the local mirror are CUDA builds; its fake-op registrations fail with the CPU torch.
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

warnings.filterwarnings("ignore")

BATCH = 2
IMAGE = 64
SEQ = 32
VOCAB = 1000


class Logits(nn.Module):
    """Calls a Hugging Face model with keyword inputs and returns only the logits (no cache outputs)."""

    def __init__(self, model, keys):
        super().__init__()
        self.model = model
        self.keys = keys

    def forward(self, *args):
        extra = {} if self.keys == ["pixel_values"] else {"use_cache": False}
        return self.model(**dict(zip(self.keys, args)), **extra, return_dict=False)[0]


def hf_text(kind):
    import transformers as tr
    import transformers.masking_utils as mu

    # Packed-sequence detection (torch.diff on position ids) has no ONNX export in the TorchScript exporter; with one
    # sequence per batch row it finds nothing, so skip it.
    mu.find_packed_sequence_indices = lambda position_ids: None

    common = dict(vocab_size=VOCAB)
    if kind == "gpt2":
        cfg = tr.GPT2Config(n_layer=2, n_embd=128, n_head=4, n_positions=SEQ, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, **common)
        model = tr.GPT2LMHeadModel(cfg)
    elif kind == "bert":
        cfg = tr.BertConfig(num_hidden_layers=2, hidden_size=128, num_attention_heads=4, intermediate_size=512, max_position_embeddings=SEQ,
                            hidden_dropout_prob=0, attention_probs_dropout_prob=0, **common)
        model = tr.BertForMaskedLM(cfg)
    elif kind == "llama":
        cfg = tr.LlamaConfig(num_hidden_layers=2, hidden_size=128, num_attention_heads=4, num_key_value_heads=2, intermediate_size=344,
                             max_position_embeddings=SEQ, **common)
        model = tr.LlamaForCausalLM(cfg)
    elif kind == "t5":
        cfg = tr.T5Config(num_layers=2, num_decoder_layers=2, d_model=128, d_kv=32, num_heads=4, d_ff=512, dropout_rate=0, decoder_start_token_id=0, **common)
        model = tr.T5ForConditionalGeneration(cfg)
    else:
        raise ValueError(kind)
    model.config._attn_implementation = "eager"
    keys = ["input_ids", "decoder_input_ids"] if kind == "t5" else ["input_ids"]
    g = torch.Generator().manual_seed(1)
    inputs = [torch.randint(0, VOCAB, (BATCH, SEQ), generator=g) for _ in keys]
    return Logits(model, keys), inputs, "next-token"


def hf_vit():
    import transformers as tr

    cfg = tr.ViTConfig(image_size=32, patch_size=4, num_channels=3, hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512,
                       hidden_dropout_prob=0, attention_probs_dropout_prob=0, num_labels=10)
    model = tr.ViTForImageClassification(cfg)
    model.config._attn_implementation = "eager"
    return Logits(model, ["pixel_values"]), [torch.randn(BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(1))], "labels"


def vision(factory):
    def build():
        model = factory()
        return model, [torch.randn(BATCH, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))], "labels"
    return build


def tv(name, **kw):
    import torchvision.models as tvm
    return lambda: getattr(tvm, name)(weights=None, num_classes=10, **kw)


def tm(name, **kw):
    import timm
    return lambda: timm.create_model(name, pretrained=False, num_classes=10, **kw)


MODELS = {
    "gpt2": lambda: hf_text("gpt2"),
    "bert": lambda: hf_text("bert"),
    "llama": lambda: hf_text("llama"),
    "t5": lambda: hf_text("t5"),
    "vit": hf_vit,
    "resnet18": vision(tv("resnet18")),
    "mobilenet_v3_small": vision(tv("mobilenet_v3_small")),
    "efficientnet_b0": vision(tv("efficientnet_b0")),
    "convnext_tiny": vision(tv("convnext_tiny")),
    "timm_resnet10t": vision(tm("resnet10t")),
    "timm_mobilevit_xxs": vision(tm("mobilevit_xxs")),
    "timm_vit_tiny": vision(tm("vit_tiny_patch16_224", img_size=IMAGE)),
}

DESCRIPTIONS = {
    "gpt2": f"HF GPT2LMHeadModel, 2 layers, n_embd 128, 4 heads, vocab {VOCAB}, batch {BATCH} x {SEQ} tokens",
    "bert": f"HF BertForMaskedLM, 2 layers, hidden 128, 4 heads, vocab {VOCAB}, batch {BATCH} x {SEQ} tokens",
    "llama": f"HF LlamaForCausalLM, 2 layers, hidden 128, 4 heads (2 KV), vocab {VOCAB}, batch {BATCH} x {SEQ} tokens",
    "t5": f"HF T5ForConditionalGeneration, 2+2 layers, d_model 128, vocab {VOCAB}, batch {BATCH} x {SEQ} tokens",
    "vit": f"HF ViTForImageClassification, 2 layers, hidden 128, 32x32 patch 4, batch {BATCH}",
    "resnet18": f"torchvision resnet18, 10 classes, batch {BATCH} x 3x{IMAGE}x{IMAGE}",
    "mobilenet_v3_small": f"torchvision mobilenet_v3_small, 10 classes, batch {BATCH} x 3x{IMAGE}x{IMAGE}",
    "efficientnet_b0": f"torchvision efficientnet_b0, 10 classes, batch {BATCH} x 3x{IMAGE}x{IMAGE}",
    "convnext_tiny": f"torchvision convnext_tiny, 10 classes, batch {BATCH} x 3x{IMAGE}x{IMAGE}",
    "timm_resnet10t": f"timm resnet10t, 10 classes, batch {BATCH} x 3x{IMAGE}x{IMAGE}",
    "timm_mobilevit_xxs": f"timm mobilevit_xxs, 10 classes, batch {BATCH} x 3x{IMAGE}x{IMAGE}",
    "timm_vit_tiny": f"timm vit_tiny_patch16_224 at {IMAGE}x{IMAGE}, 10 classes, batch {BATCH}",
}


def build(model_id):
    torch.manual_seed(0)
    model, inputs, loss_kind = MODELS[model_id]()
    for m in model.modules():
        # Deterministic runs: no dropout, no stochastic depth (torchvision StochasticDepth, timm DropPath).
        if isinstance(m, nn.Dropout) or type(m).__name__ in ("StochasticDepth", "DropPath"):
            m.p = 0.0
            if hasattr(m, "drop_prob"):
                m.drop_prob = 0.0
    model.train()
    g = torch.Generator().manual_seed(2)
    if loss_kind == "labels":
        targets = torch.randint(0, 10, (BATCH,), generator=g)
    else:
        ids = inputs[-1]  # next-token targets on the last token input (the decoder's for T5), last position ignored
        targets = torch.cat([ids[:, 1:], torch.full((BATCH, 1), -100)], dim=1)
    return model, inputs, targets


def loss_of(model, inputs, targets):
    out = model(*inputs)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1), ignore_index=-100)


def b64(t):
    return base64.b64encode(t.detach().to(torch.float64).contiguous().numpy().tobytes()).decode()


def export(out_dir, ids):
    os.makedirs(out_dir, exist_ok=True)
    for model_id in ids:
        path = os.path.join(out_dir, f"{model_id}.onnx")
        try:
            model, inputs, targets = build(model_id)
            names = [f"input_{i}" for i in range(len(inputs))] if len(inputs) > 1 else ["input"]
            names = model.keys if isinstance(model, Logits) else names
            loss = loss_of(model, inputs, targets)
            torch.onnx.export(model, tuple(inputs), path, dynamo=False, opset_version=17, training=torch.onnx.TrainingMode.TRAINING,
                              do_constant_folding=False, input_names=names, output_names=["logits"])
            params = sum(p.numel() for p in model.parameters())
            meta = {
                "id": model_id,
                "description": DESCRIPTIONS[model_id],
                "parameters": params,
                "inputs": {n: {"shape": list(t.shape), "dtype": "int64" if t.dtype == torch.int64 else "float32", "data": b64(t)} for n, t in zip(names, inputs)},
                "targets": {"shape": list(targets.shape), "data": b64(targets)},
                "loss": loss.item(),
                "torch": torch.__version__,
            }
            with open(os.path.join(out_dir, f"{model_id}.json"), "w") as f:
                json.dump(meta, f)
            print(json.dumps({"id": model_id, "exported": path, "parameters": params}), flush=True)
        except Exception as e:  # one model failing must not hide the others
            print(json.dumps({"id": model_id, "error": f"{type(e).__name__}: {e}"[:500]}), flush=True)


def time_models(ids, min_ms, warmup_ms):
    torch.set_num_threads(1)
    for model_id in ids:
        try:
            model, inputs, targets = build(model_id)
            params = list(model.parameters())

            def step():
                for p in params:
                    p.grad = None
                loss = loss_of(model, inputs, targets)
                loss.backward()
                return loss

            t0 = time.perf_counter()
            n = 0
            while n < 3 or (time.perf_counter() - t0) * 1000 < warmup_ms:
                step()
                n += 1
            times = []
            cpu_times = []
            t0 = time.perf_counter()
            c0 = time.process_time()
            while len(times) < 10 or (time.perf_counter() - t0) * 1000 < min_ms:
                s = time.perf_counter()
                c = time.process_time()
                loss = step()
                times.append((time.perf_counter() - s) * 1000)
                cpu_times.append((time.process_time() - c) * 1000)
                if len(times) >= 500:
                    break
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            times.sort()
            cpu_times.sort()
            print(json.dumps({"id": model_id, "median": times[len(times) // 2], "min": times[0], "reps": len(times), "loss": loss.item(),
                              "cpuMedian": cpu_times[len(cpu_times) // 2], "cpuMin": cpu_times[0], "cpuPerWall": cpu / wall,
                              "threads": torch.get_num_threads()}), flush=True)
        except Exception as e:
            print(json.dumps({"id": model_id, "error": f"{type(e).__name__}: {e}"[:500]}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("job", choices=["export", "time", "list"])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--only", default="")
    ap.add_argument("--min-ms", type=float, default=2000)
    ap.add_argument("--warmup-ms", type=float, default=600)
    a = ap.parse_args()
    ids = [i for i in a.only.split(",") if i] or list(MODELS)
    unknown = [i for i in ids if i not in MODELS]
    if unknown:
        sys.exit(f"unknown model ids {unknown}; known: {list(MODELS)}")
    if a.job == "list":
        print(json.dumps({i: DESCRIPTIONS[i] for i in ids}))
    elif a.job == "export":
        export(a.out, ids)
    else:
        time_models(ids, a.min_ms, a.warmup_ms)


if __name__ == "__main__":
    main()
