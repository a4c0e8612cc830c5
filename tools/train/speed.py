"""Measure training-step time for a few widths (batch 64) before committing to one."""
import sys, time, torch
from model import UNet
torch.set_num_threads(2)
for base in [int(b) for b in sys.argv[1:]] or [32, 48]:
    net = UNet(base); opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.randn(64, 3, 32, 32); t = torch.randint(0, 1000, (64,))
    for i in range(4):
        if i == 1: t0 = time.time()
        loss = ((net(x, t) - x) ** 2).mean(); opt.zero_grad(); loss.backward(); opt.step()
    n = sum(p.numel() for p in net.parameters())
    print(f"base={base} params={n/1e6:.2f}M step={(time.time()-t0)/3:.2f}s", flush=True)
