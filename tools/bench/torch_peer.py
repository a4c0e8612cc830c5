"""PyTorch-hooks peer of `diffcircuits bench`: what a researcher would otherwise write.

The reference model's own PyTorch definition (tools/train/model.py) and weights (models/reference-ddpm-32.pt), CPU,
2 threads. Forward hooks on each attention layer's softmax capture the maps [B, H, S, S], and every head's entropy is
computed from them exactly as METHOD.md section 1 defines it (mean over queries of -sum p ln p, 0 ln 0 = 0).
Inputs are the same noisy images and timesteps the bench feeds ONNX Runtime (written by the bench as .npy).

    /usr/bin/python3 tools/bench/torch_peer.py --inputs x.npy --timesteps t.npy --out peer.json
"""
import argparse, json, os, sys, time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from model import SelfAttention, UNet  # noqa: E402


class HookableAttention(SelfAttention):
    """The same computation with the softmax as a module, so a forward hook can see the maps."""

    def forward(self, x):
        b, c, h, w = x.shape
        d = c // self.heads
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, d, h * w).unbind(1)
        q = q.transpose(-1, -2)
        v = v.transpose(-1, -2)
        p = self.softmax(torch.matmul(q, k) * (1.0 / d ** 0.5))
        z = torch.matmul(p, v).transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj_out(z)


def main():
    ap = argparse.ArgumentParser()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    ap.add_argument("--weights", default=os.path.join(root, "models", "reference-ddpm-32.pt"))
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--timesteps", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    checkpoint = torch.load(args.weights, map_location="cpu")
    net = UNet(checkpoint["base"])
    net.load_state_dict(checkpoint["ema"])
    net.eval()
    entropies = {}
    for name, module in net.named_modules():
        if isinstance(module, SelfAttention):
            module.__class__ = HookableAttention
            module.softmax = nn.Softmax(dim=-1)

            def hook(_module, _inputs, p, name=name):
                # H = (1/S) sum_i -sum_j p_ij ln p_ij per head; clamp so that 0 ln 0 = 0.
                entropies.setdefault(name, []).append(-(p * p.clamp_min(1e-30).log()).sum(-1).mean(-1))

            module.softmax.register_forward_hook(hook)

    x = torch.from_numpy(np.load(args.inputs)).float()
    t = torch.from_numpy(np.load(args.timesteps)).long()
    rows = x.shape[0]

    def run():
        entropies.clear()
        with torch.no_grad():
            for s in range(0, rows, args.batch):
                net(x[s:s + args.batch], t[s:s + args.batch])

    run()                                   # warm-up, as the bench does for every path
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    per_head = {name: torch.cat(v).mean(0).tolist() for name, v in entropies.items()}
    json.dump({"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds, "threads": args.threads,
               "torch": torch.__version__, "mean_entropy_nats": per_head}, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
