#!/usr/bin/python3
"""A tiny network written by PyTorch's own ONNX exporter with the patterns real exports carry: F.pad
(reflect; the pads come from a shape subgraph), average pooling without the padding counted, SiLU,
squeeze-excitation with hardsigmoid, hardswish, bilinear F.interpolate, a channel shuffle, a dynamic
batch, flatten and a linear head. Writes OUT/{model.onnx, input.f32 (2,3,12,12), output.f32} with
PyTorch's own output. Run with Debian's python3-torch (1.13): /usr/bin/python3 this.py OUT [opset]."""
import os, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

out = sys.argv[1]
opset = int(sys.argv[2]) if len(sys.argv) > 2 else 13
torch.manual_seed(3)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.se1 = nn.Conv2d(8, 4, 1)
        self.se2 = nn.Conv2d(4, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8 * 16 * 16, 5)

    def forward(self, x):
        y = F.silu(self.bn(self.conv(x)))
        y = F.avg_pool2d(F.pad(y, (1, 2, 2, 1), mode='reflect'), 3, stride=2, padding=1, count_include_pad=False)
        s = F.hardsigmoid(self.se2(F.relu(self.se1(F.adaptive_avg_pool2d(y, 1)))))
        y = F.hardswish(self.dw(y * s))
        y = F.interpolate(y, scale_factor=2, mode='bilinear', align_corners=False)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.fc(y.flatten(1))

m = Net()
with torch.no_grad():
    m.bn.weight.uniform_(0.5, 1.5); m.bn.bias.normal_(0, 0.2)
    m.bn.running_mean.normal_(0, 0.1); m.bn.running_var.uniform_(0.5, 1.5)
m.eval()
x = torch.rand(2, 3, 12, 12) * 2 - 1
with torch.no_grad(): y = m(x)
os.makedirs(out, exist_ok=True)
torch.onnx.export(m, x, f'{out}/model.onnx', opset_version=opset, input_names=['input'], output_names=['logits'],
                  dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}})
x.numpy().astype('<f4').tofile(f'{out}/input.f32'); y.numpy().astype('<f4').tofile(f'{out}/output.f32')
print('ok', list(y.shape), 'opset', opset)
