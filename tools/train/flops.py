"""Count multiply-accumulates (MACs) and FLOPs (2 per MAC) of one forward pass of the reference model (one image).

    /usr/bin/python3 tools/train/flops.py

Convolutions and linear layers via forward hooks; attention's two matmuls (QK^T and PV) from their shapes.
GroupNorm, SiLU, softmax and additions are counted as one FLOP per element they produce (they are small here).
"""
import torch
import torch.nn as nn

from model import UNet, SelfAttention

net = UNet().eval()
macs = {"conv": 0, "linear": 0, "attention matmul": 0}
elementwise = [0]


def conv_hook(m, i, o):
    macs["conv"] += o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]


def linear_hook(m, i, o):
    macs["linear"] += o.numel() * m.in_features


def attn_hook(m, i, o):
    b, c, h, w = i[0].shape
    s, d = h * w, c // m.heads
    macs["attention matmul"] += 2 * m.heads * s * s * d           # QK^T and PV
    elementwise[0] += 3 * m.heads * s * s                          # scale, softmax (exp, divide)


def elementwise_hook(m, i, o):
    elementwise[0] += o.numel() * (4 if isinstance(m, nn.GroupNorm) else 1)


for m in net.modules():
    if isinstance(m, nn.Conv2d):
        m.register_forward_hook(conv_hook)
    elif isinstance(m, nn.Linear):
        m.register_forward_hook(linear_hook)
    elif isinstance(m, SelfAttention):
        m.register_forward_hook(attn_hook)
    elif isinstance(m, (nn.GroupNorm, nn.SiLU)):
        m.register_forward_hook(elementwise_hook)

with torch.no_grad():
    net(torch.randn(1, 3, 32, 32), torch.tensor([500]))
total_macs = sum(macs.values())
params = sum(p.numel() for p in net.parameters())
print(f"parameters: {params:,}")
for k, v in macs.items():
    print(f"{k}: {v / 1e6:.1f} M MACs")
print(f"total: {total_macs / 1e6:.1f} M MACs = {2 * total_macs / 1e6:.1f} MFLOP (+ {elementwise[0] / 1e6:.1f} MFLOP element-wise) per image")
