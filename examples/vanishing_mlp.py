"""A deep sigmoid MLP: the textbook case of vanishing gradients.

Each sigmoid scales the gradient by at most 0.25, so ten of them shrink it by orders of magnitude
before it reaches the first layers. Open this file and run "Gradient Lens: Inspect Model".
"""
import torch
from torch import nn


class VanishingMLP(nn.Module):
    def __init__(self, d_in=16, width=32, depth=10, n_classes=10):
        super().__init__()
        sizes = [d_in] + [width] * (depth - 1) + [n_classes]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.sigmoid(x)
        return x


if __name__ == "__main__":
    from _export import export

    torch.manual_seed(0)
    export(VanishingMLP(), (torch.randn(8, 16),), "vanishing_mlp.onnx", ["x"], ["logits"], {"x": {0: "batch"}})
