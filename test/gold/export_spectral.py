"""Gold gradients through a small spectrogram model exported by torch 2.13's dynamo exporter (STFT with a Hann
window, power spectrum, a learned mel-like projection, log; rfft / irfft along time), for the spectral ops
(engine/onnx/ops/spectral.ts). The TorchScript exporter refuses complex STFT outputs, so only dynamo.

Run with the test venv (test/python.ts): python test/gold/export_spectral.py
Writes test/fixtures/onnx/spectro_dynamo.onnx and spectro_gold.json: the input, the loss, and the gradients of
the input and of every parameter (by state_dict name), computed in float64 from the float32 weights the export
holds.
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'onnx')


class Spectro(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 2, 3, padding=1)
        self.mel = torch.nn.Linear(9, 4)
        self.register_buffer('window', torch.hann_window(16))

    def forward(self, x):
        y = self.conv(x)  # [1, 2, 64]
        s = torch.stft(y.reshape(2, 64), n_fft=16, hop_length=4, window=self.window, center=False, return_complex=True)
        power = s.real ** 2 + s.imag ** 2  # [2, 9 bins, 13 frames]
        m = self.mel(power.transpose(1, 2))
        f = torch.fft.rfft(y, dim=-1)
        g = torch.fft.irfft(f * torch.linspace(1, 0, 33), n=64, dim=-1)  # a low-pass filter
        return torch.log(m * m + 1).mean() + (g * y).mean()


torch.manual_seed(16)
model = Spectro()
x = torch.randn(1, 1, 64)
torch.onnx.export(model, (x,), os.path.join(OUT, 'spectro_dynamo.onnx'), dynamo=True, external_data=False)
gold = model.double()
xd = x.double().requires_grad_(True)
loss = gold(xd)
loss.backward()
with open(os.path.join(OUT, 'spectro_gold.json'), 'w') as f:
    json.dump({'x': xd.detach().flatten().tolist(), 'shape': list(x.shape), 'loss': loss.item(),
               'gx': xd.grad.flatten().tolist(),
               'grads': {k: p.grad.flatten().tolist() for k, p in gold.named_parameters()}}, f)
