"""The same depth as vanishing_mlp.py, made healthy: ReLU, He init, residual connections, LayerNorm."""
import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)
        nn.init.kaiming_normal_(self.fc.weight, nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return x + torch.relu(self.fc(self.norm(x)))


class HealthyMLP(nn.Module):
    def __init__(self, d_in=16, width=32, depth=8, n_classes=10):
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.blocks(x)
        return self.head(self.norm(x))


if __name__ == "__main__":
    from _export import export

    torch.manual_seed(0)
    export(HealthyMLP(), (torch.randn(8, 16),), "healthy_mlp.onnx", ["x"], ["logits"], {"x": {0: "batch"}})
