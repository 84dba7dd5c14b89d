"""LoRA: a frozen base layer plus a trainable low-rank update B @ A.

With the standard initialisation B = 0, no gradient reaches A until B moves: Gradient Lens explains
that zero gradient on the lora_A line.
"""
import torch
from torch import nn


class LoRALinear(nn.Module):
    def __init__(self, d_in, d_out, rank=4, alpha=8.0):
        super().__init__()
        self.base = nn.Linear(d_in, d_out)
        self.base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(rank, d_in) * 0.01)
        self.lora_B = nn.Parameter(torch.zeros(d_out, rank))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


class LoRAClassifier(nn.Module):
    def __init__(self, d_in=32, hidden=64, n_classes=10):
        super().__init__()
        self.proj = LoRALinear(d_in, hidden)
        self.head = LoRALinear(hidden, n_classes)

    def forward(self, x):
        return self.head(torch.relu(self.proj(x)))


if __name__ == "__main__":
    from _export import export

    torch.manual_seed(0)
    export(LoRAClassifier(), (torch.randn(8, 32),), "lora.onnx", ["x"], ["logits"], {"x": {0: "batch"}})
