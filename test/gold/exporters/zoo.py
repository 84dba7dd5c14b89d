"""Real architectures from the libraries' own code and configs, small, with seeded random init.

Each entry builds a model (train mode, every dropout / stochastic-depth probability 0 so PyTorch's
gradients are deterministic), example inputs and a loss the engine can compute too:
- 'next-token': cross-entropy of logits [B, T, V] against the given targets [B, T];
- 'labels': cross-entropy of logits [B, C] against the given labels [B];
- 'mean-square': mean of squares of the first output.

Variant 'init' leaves the library's initialisation (equal LayerNorm / BatchNorm weights and biases,
zero biases, equal layer-scale vectors: what the dynamo optimizer merges and drops); 'perturbed' adds
seeded noise to every parameter and float buffer so no two are equal and none is zero.
"""
import sys
import types
import zlib
from pathlib import Path

# torchvision's wheels on this machine's mirror are CUDA builds; its fake-op registrations fail with
# the CPU torch. The model definitions do not need them.
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

VOCAB = 64
BATCH = 2
SEQ = 8


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------- a hand-written ViT (the issue's)
class PatchEmbed(nn.Module):
    def __init__(self, img=16, patch=4, chans=3, dim=32):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) * self.scale
        att = att.softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * 2)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    def __init__(self, img=16, patch=4, dim=16, depth=3, heads=4, classes=10):
        super().__init__()
        self.patch_embed = PatchEmbed(img, patch, 3, dim)
        n = (img // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


# ---------------------------------------------------------------- builders
def _tokens(gen, attention_mask=True, seq=SEQ):
    ids = torch.randint(0, VOCAB, (BATCH, seq), generator=gen)
    targets = torch.randint(0, VOCAB, (BATCH, seq), generator=gen)
    inputs = {"input_ids": ids}
    if attention_mask:
        # A padded second sequence: the mask path (transformers' mask construction) is exercised.
        mask = torch.ones(BATCH, seq, dtype=torch.int64)
        mask[1, seq - 2:] = 0
        inputs["attention_mask"] = mask
    return inputs, targets


def _image(gen, size=16, classes=10):
    return {"pixel_values": torch.randn(BATCH, 3, size, size, generator=gen)}, torch.randint(0, classes, (BATCH,), generator=gen)


def gpt2(gen):
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(n_layer=1, n_embd=16, n_head=4, vocab_size=VOCAB, n_positions=16, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     use_cache=False, bos_token_id=0, eos_token_id=0)
    inputs, targets = _tokens(gen)
    return GPT2LMHeadModel(cfg), inputs, targets, "next-token"


def bert(gen):
    from transformers import BertConfig, BertForMaskedLM
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=4, intermediate_size=32,
                     max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0)
    inputs, targets = _tokens(gen)
    return BertForMaskedLM(cfg), inputs, targets, "next-token"


def llama(gen):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=16, use_cache=False, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    inputs, targets = _tokens(gen)
    return LlamaForCausalLM(cfg), inputs, targets, "next-token"


def qwen2(gen):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=16, use_cache=False, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    inputs, targets = _tokens(gen)
    return Qwen2ForCausalLM(cfg), inputs, targets, "next-token"


def t5(gen):
    from transformers import T5Config, T5ForConditionalGeneration
    # One layer each way, 16 positions: the decoder's relative distance 8 falls on a bucket boundary (4 + log(8/4) /
    # log(16/4) * 4 = 6 exactly in float32), where a float64 computation of the buckets lands one lower.
    cfg = T5Config(vocab_size=VOCAB, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=4,
                   relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
                   use_cache=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                   # The dynamo exporter fails on T5's SDPA attention (torch 2.13: "Cannot view a tensor with shape
                   # [2, 8, 4, 8] ... as [2, 8, 32]" in decomposition); eager attention exports.
                   attn_implementation="eager")
    inputs, targets = _tokens(gen, seq=16)
    inputs["decoder_input_ids"] = torch.randint(0, VOCAB, (BATCH, 16), generator=gen)
    return T5ForConditionalGeneration(cfg), inputs, targets, "next-token"


def hf_vit(gen):
    from transformers import ViTConfig, ViTForImageClassification
    cfg = ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    num_labels=10, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    inputs, labels = _image(gen)
    return ViTForImageClassification(cfg), inputs, labels, "labels"


def tv_resnet18(gen):
    import torchvision
    inputs, labels = _image(gen, 32)
    return torchvision.models.resnet18(num_classes=10), {"x": inputs["pixel_values"]}, labels, "labels"


def tv_mobilenet_v3(gen):
    # mobilenet_v3_small at width 0.25 with the reduced tail, its first five blocks (squeeze-excitation with and
    # without hardswish, a residual block) and a 64-wide classifier: 9k parameters (a small committed fixture).
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf
    setting, _ = _mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25, reduced_tail=True)
    # 32x32: the last stage is 2x2 (four stride-2 layers), so each BatchNorm normalises over 8 values. At 1x1 a batch
    # of 2 makes every BatchNorm there nearly constant (x̂ = ±1): gradients ill-conditioned enough that PyTorch's
    # own float32 and float64 differ by 1e-4 and the export's float32 epsilon moves float64 by 4e-6.
    inputs, labels = _image(gen, 32)
    return MobileNetV3(setting[:5], 64, num_classes=10, dropout=0.0), {"x": inputs["pixel_values"]}, labels, "labels"


def tv_efficientnet_b0(gen):
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    inputs, labels = _image(gen, 32)
    return EfficientNet(setting, dropout=0.0, stochastic_depth_prob=0.0, num_classes=10, last_channel=last), {"x": inputs["pixel_values"]}, labels, "labels"


def tv_convnext(gen):
    from torchvision.models.convnext import ConvNeXt, CNBlockConfig
    setting = [CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)]
    inputs, labels = _image(gen, 32)
    return ConvNeXt(setting, stochastic_depth_prob=0.0, num_classes=10), {"x": inputs["pixel_values"]}, labels, "labels"


def timm_vit(gen):
    import timm
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=4,
                          num_classes=10)
    inputs, labels = _image(gen)
    return m, {"x": inputs["pixel_values"]}, labels, "labels"


def timm_resnet18(gen):
    import timm
    m = timm.create_model("resnet18", pretrained=False, channels=(8, 16, 32, 64), stem_width=8, num_classes=10)
    inputs, labels = _image(gen, 32)
    return m, {"x": inputs["pixel_values"]}, labels, "labels"


def timm_convnext(gen):
    import timm
    m = timm.create_model("convnext_atto", pretrained=False, dims=(8, 16, 32, 64), depths=(1, 1, 1, 1), num_classes=10)
    inputs, labels = _image(gen, 32)
    return m, {"x": inputs["pixel_values"]}, labels, "labels"


# ConvBN is the e2e workspace's source file itself (test/fixtures/python/conv_bn.py), so the model the dynamo e2e
# inspects and the one exported here cannot drift apart.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "python"))
from conv_bn import ConvBN  # noqa: E402


class ConvBNDrop(ConvBN):
    """ConvBN with a Dropout before the head (p=0: PyTorch's train-mode gradients stay deterministic)."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.head(self.drop(x.mean(dim=(2, 3))))


def cnn_bn_drop(gen):
    inputs, labels = _image(gen, 8)
    return ConvBNDrop(), {"x": inputs["pixel_values"]}, labels, "labels"


def cnn_bn(gen):
    inputs, labels = _image(gen, 8)
    return ConvBN(), {"x": inputs["pixel_values"]}, labels, "labels"


def vit(gen):
    inputs, labels = _image(gen)
    return TinyViT(), {"x": inputs["pixel_values"]}, labels, "labels"


MODELS = {
    "vit": vit,
    "cnn_bn": cnn_bn,
    "cnn_bn_drop": cnn_bn_drop,
    "gpt2": gpt2,
    "bert": bert,
    "llama": llama,
    "qwen2": qwen2,
    "t5": t5,
    "hf_vit": hf_vit,
    "tv_resnet18": tv_resnet18,
    "tv_mobilenet_v3": tv_mobilenet_v3,
    "tv_efficientnet_b0": tv_efficientnet_b0,
    "tv_convnext": tv_convnext,
    "timm_vit": timm_vit,
    "timm_resnet18": timm_resnet18,
    "timm_convnext": timm_convnext,
}


def perturb(model, gen, scale=0.05):
    """Seeded noise on every parameter and float buffer: no two initializers equal, none zero."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
        for name, b in model.named_buffers():
            if b.is_floating_point():
                if name.endswith("running_var"):
                    b.mul_(1 + torch.rand(b.shape, generator=gen))
                else:
                    b.add_(torch.randn(b.shape, generator=gen) * scale)


def build(name, variant):
    """(model in train mode, inputs dict, targets, loss kind); the same for the same name and variant."""
    torch.manual_seed(seed_of(name))
    gen = torch.Generator().manual_seed(seed_of(name) + 1)
    model, inputs, targets, loss = MODELS[name](gen)
    if variant == "perturbed":
        perturb(model, torch.Generator().manual_seed(seed_of(name) + 2))
    model.train()
    return model, inputs, targets, loss
