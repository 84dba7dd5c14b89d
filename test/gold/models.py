"""PyTorch reference models for Gradient Lens gold fixtures.

Plain nn.Module definitions; attribute names here define the state_dict keys
used in test/fixtures/models/*.json (and later ONNX export), so keep them stable.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- 1. mlp_sigmoid
class MLPSigmoid(nn.Module):
    """10 Linear layers (16->32, 8x 32->32, 32->10), sigmoid after all but the last."""

    def __init__(self, d_in=16, d_hidden=32, d_out=10, n_hidden=8):
        super().__init__()
        dims = [d_in] + [d_hidden] * (n_hidden + 1) + [d_out]
        self.layers = nn.ModuleList(
            [nn.Linear(dims[i], dims[i + 1]) for i in range(len(dims) - 1)]
        )

    def forward(self, x):
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < n - 1:
                x = torch.sigmoid(x)
        return x


# ---------------------------------------------------------------- 2. mlp_residual
class ResBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.fc = nn.Linear(d, d)
        nn.init.kaiming_normal_(self.fc.weight, nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return x + F.relu(self.fc(self.ln(x)))


class MLPResidual(nn.Module):
    def __init__(self, d_in=16, d_model=32, d_out=10, n_blocks=8):
        super().__init__()
        self.inp = nn.Linear(d_in, d_model)
        self.blocks = nn.ModuleList([ResBlock(d_model) for _ in range(n_blocks)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, d_out)

    def forward(self, x):
        x = self.inp(x)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


# ---------------------------------------------------------------- 3. cnn
class CNN(nn.Module):
    def __init__(self, in_ch=3, c1=8, c2=16, n_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, c1, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c2, n_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.bn2(self.conv2(x)))
        x = torch.flatten(self.gap(x), 1)
        return self.fc(x)


# ---------------------------------------------------------------- 4. gpt
class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_head = n_head
        self.q_proj = nn.Linear(n_embd, n_embd, bias=True)
        self.k_proj = nn.Linear(n_embd, n_embd, bias=True)
        self.v_proj = nn.Linear(n_embd, n_embd, bias=True)
        self.out_proj = nn.Linear(n_embd, n_embd, bias=True)
        mask = torch.tril(torch.ones(block_size, block_size, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, block_size, block_size), persistent=False)
        # When True, the forward pass keeps S (masked, scaled scores) and P (softmax)
        # with retain_grad() so the gold generator can read dL/dS and dL/dP.
        self.record = False
        self.S = None
        self.P = None

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        hd = C // H
        q = self.q_proj(x).view(B, T, H, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, H, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, hd).transpose(1, 2)
        S = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        S = S.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        P = F.softmax(S, dim=-1)
        if self.record:
            S.retain_grad()
            P.retain_grad()
            self.S, self.P = S, P
        y = P @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.out_proj(y)


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU(approximate="none")
        self.proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.proj(self.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


class GPT(nn.Module):
    def __init__(self, vocab_size=16, block_size=8, n_embd=32, n_head=4, n_layer=2):
        super().__init__()
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(
            [Block(n_embd, n_head, block_size) for _ in range(n_layer)]
        )
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def forward(self, idx):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)[None]
        for blk in self.blocks:
            x = blk(x)
        return self.lm_head(self.ln_f(x))


# ---------------------------------------------------------------- 5. lora
class LoRALinear(nn.Module):
    def __init__(self, in_features, out_features, r=4, alpha=8):
        super().__init__()
        self.r = r
        self.alpha = alpha
        self.base = nn.Linear(in_features, out_features)
        self.base.weight.requires_grad_(False)
        self.base.bias.requires_grad_(False)
        # Both factors nonzero on purpose (standard LoRA zero-inits B).
        self.lora_A = nn.Parameter(torch.randn(r, in_features) * 0.1)
        self.lora_B = nn.Parameter(torch.randn(out_features, r) * 0.1)

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * (self.alpha / self.r)


class LoRAModel(nn.Module):
    def __init__(self, d_in=32, d_hidden=32, d_out=10, r=4, alpha=8):
        super().__init__()
        self.l1 = LoRALinear(d_in, d_hidden, r=r, alpha=alpha)
        self.l2 = LoRALinear(d_hidden, d_out, r=r, alpha=alpha)

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))
