"""Gold gradients through control flow as torch 2.13 exports it: torch.cond becomes an ONNX If (dynamo
exporter; the branches read the Linear parameters from the outer scope), and a loop in a torch.jit.script
module becomes an ONNX Loop (legacy TorchScript exporter; the body reads the parameters and the input x), a
scripted while loop a Loop with trip count INT64_MAX and a data-dependent condition.
The dynamo exporter unrolls plain Python loops, so it emits no Loop.

Run with the test venv (test/python.ts): python test/gold/export_control_flow.py
Writes test/fixtures/onnx/cond_dynamo.onnx, loop_legacy.onnx, while_legacy.onnx and control_gold.json: per model, inputs
(the cond model twice: one input per branch), the loss, and the gradients of the input and of every
parameter (by state_dict name), in float64 from the float32 weights the exports hold.
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'onnx')


class CondNet(torch.nn.Module):
    """Which Linear runs depends on the data: tanh(a(x)) when sum(x) > 0, else sigmoid(b(x))."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 3)
        self.b = torch.nn.Linear(3, 3)

    def forward(self, x):
        y = torch.cond(x.sum() > 0, lambda t: self.a(t).tanh(), lambda t: self.b(t).sigmoid(), (x,))
        return (y * y).mean()


class LoopNet(torch.nn.Module):
    """A recurrence over the rows of x, as many steps as x has rows (a Loop whose trip count is x.size(0))."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x):
        h = x
        for i in range(x.size(0)):
            h = torch.tanh(self.lin(h)) + x[i]
        return (h * h).mean()


class WhileNet(torch.nn.Module):
    """A while loop whose condition depends on the data: the legacy exporter writes a Loop with trip count
    INT64_MAX and the condition computed before and inside the body."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x):
        h = x
        n = 0
        while bool(h.abs().sum() < 50.0) and n < 20:
            h = self.lin(h) * 2.0 + x
            n += 1
        return (h * h).mean()


def gold(model, x):
    m = model.double()
    xd = x.double().requires_grad_(True)
    loss = m(xd)
    loss.backward()
    out = {'x': xd.detach().flatten().tolist(), 'shape': list(x.shape), 'loss': loss.item(), 'gx': xd.grad.flatten().tolist(),
           'grads': {k: p.grad.flatten().tolist() for k, p in m.named_parameters() if p.grad is not None}}
    m.zero_grad()
    m.float()
    return out


torch.manual_seed(16)
result = {}
cond = CondNet()
x = torch.randn(4, 3)
positive, negative = x.abs(), -x.abs()
torch.onnx.export(cond, (positive,), os.path.join(OUT, 'cond_dynamo.onnx'), dynamo=True, external_data=False)
result['cond_dynamo'] = [gold(cond, positive), gold(cond, negative)]

loop = LoopNet()
torch.onnx.export(torch.jit.script(loop), (x,), os.path.join(OUT, 'loop_legacy.onnx'), dynamo=False, opset_version=17,
                  input_names=['x'], dynamic_axes={'x': {0: 'seq'}}, training=torch.onnx.TrainingMode.TRAINING,
                  do_constant_folding=False)
result['loop_legacy'] = [gold(loop, x), gold(loop, torch.randn(6, 3))]

torch.manual_seed(3)
loop = WhileNet()
x = torch.randn(2, 3)
torch.onnx.export(torch.jit.script(loop), (x,), os.path.join(OUT, 'while_legacy.onnx'), dynamo=False, opset_version=17,
                  input_names=['x'], dynamic_axes={'x': {0: 'batch'}}, training=torch.onnx.TrainingMode.TRAINING,
                  do_constant_folding=False)
result['while_legacy'] = [gold(loop, x), gold(loop, 3 * torch.randn(4, 3))]

with open(os.path.join(OUT, 'control_gold.json'), 'w') as f:
    json.dump(result, f)
