"""Gold gradients through small models exported by torch 2.13's two exporters (ops the fixture models of
models.py lack: interpolation, 3-D convolution and pooling).

Run with the test venv (test/python.ts): python test/gold/export_torch_models.py
For each model NAME writes test/fixtures/onnx/NAME_dynamo.onnx, NAME_legacy.onnx and NAME_gold.json: the
input, the loss, and the gradients of the input and of every parameter (by state_dict name), computed in
float64 from the float32 weights the exports hold.
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'onnx')


class Interp(torch.nn.Module):
    """Bilinear x2 (half_pixel), bicubic to a size with align_corners, nearest x2 (asymmetric floor)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):
        y = F.interpolate(self.conv(x), scale_factor=2, mode='bilinear', align_corners=False)
        z = F.interpolate(y, size=(5, 7), mode='bicubic', align_corners=True)
        w = F.interpolate(z, scale_factor=2, mode='nearest')
        return (w * w).mean()


class Video(torch.nn.Module):
    """A 3-D CNN: strided grouped Conv3d, ReLU (ties at 0 for the max pool), MaxPool3d with ceil mode,
    AvgPool3d with padding, ConvTranspose3d with output padding."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(2, 4, (3, 3, 2), stride=(1, 2, 1), padding=(1, 1, 0), groups=2)
        self.pool = torch.nn.MaxPool3d((2, 2, 2), stride=(1, 2, 2), ceil_mode=True)
        self.avg = torch.nn.AvgPool3d(3, stride=1, padding=1, count_include_pad=False)
        self.up = torch.nn.ConvTranspose3d(4, 2, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        y = self.avg(self.pool(torch.relu(self.conv(x))))
        z = self.up(y)
        return (z * z).mean()


MODELS = {'interp': (Interp, (1, 2, 4, 3)), 'video': (Video, (1, 2, 5, 9, 9))}

for name, (cls, shape) in MODELS.items():
    torch.manual_seed(16)
    model = cls()
    x = torch.randn(*shape)
    torch.onnx.export(model, (x,), os.path.join(OUT, f'{name}_dynamo.onnx'), dynamo=True, external_data=False)
    torch.onnx.export(model, (x,), os.path.join(OUT, f'{name}_legacy.onnx'), dynamo=False, opset_version=18,
                      input_names=['x'], training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    gold = model.double()
    xd = x.double().requires_grad_(True)
    loss = gold(xd)
    loss.backward()
    with open(os.path.join(OUT, f'{name}_gold.json'), 'w') as f:
        json.dump({'x': xd.detach().flatten().tolist(), 'shape': list(x.shape), 'loss': loss.item(),
                   'gx': xd.grad.flatten().tolist(),
                   'grads': {k: p.grad.flatten().tolist() for k, p in gold.named_parameters()}}, f)
