"""A small CNN: convolutions, batch norm (train mode), pooling and a linear classifier."""
import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, n_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(32, n_classes)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


if __name__ == "__main__":
    from _export import export

    torch.manual_seed(0)
    export(SmallCNN(), (torch.randn(4, 3, 16, 16),), "small_cnn.onnx", ["images"], ["logits"], {"images": {0: "batch"}})
