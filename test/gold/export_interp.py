"""Gold gradients through F.interpolate (Resize) exported by torch 2.13's two exporters.

Run with the test venv (test/python.ts): python test/gold/export_interp.py
Writes test/fixtures/onnx/interp_{dynamo,legacy}.onnx and interp_gold.json: the input, the loss and the
gradients of the input and of the conv weight, computed in float64 from the float32 weights the exports hold.
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


torch.manual_seed(16)
model = Interp()
x = torch.randn(1, 2, 4, 3)
torch.onnx.export(model, (x,), os.path.join(OUT, 'interp_dynamo.onnx'), dynamo=True, external_data=False)
torch.onnx.export(model, (x,), os.path.join(OUT, 'interp_legacy.onnx'), dynamo=False, opset_version=18,
                  input_names=['x'])
gold = model.double()
xd = x.double().requires_grad_(True)
loss = gold(xd)
loss.backward()
with open(os.path.join(OUT, 'interp_gold.json'), 'w') as f:
    json.dump({'x': xd.detach().flatten().tolist(), 'shape': list(x.shape), 'loss': loss.item(),
               'gx': xd.grad.flatten().tolist(), 'gw': gold.conv.weight.grad.flatten().tolist()}, f)
