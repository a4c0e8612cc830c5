"""Export the trained reference model (EMA weights) to ONNX, and save the EMA weights beside it.

    /usr/bin/python3 tools/train/export.py [--checkpoint tools/train/checkpoints/ckpt.pt] [--out models/reference-ddpm-32.onnx]

Inputs `x_t` [B, 3, 32, 32] float and `timestep` [B] int64; output `eps` [B, 3, 32, 32]; dynamic batch. The schedule
is declared in the model's metadata (diffusion.schedule / timesteps / beta_start / beta_end), which DiffusionCircuits
reads. Held-out eps-MSE and the model card's pictures come from the C# side: tools/train/finish.sh runs both steps.
"""
import argparse, json, os

import numpy as np
import onnx
import torch

from model import UNet, linear_alpha_bar

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=os.path.join(HERE, "checkpoints", "ckpt.pt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "reference-ddpm-32.onnx"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ck = torch.load(args.checkpoint)
    train_args = ck["args"]
    net = UNet(train_args["base"]).eval()
    net.load_state_dict(ck["ema"])
    params = sum(p.numel() for p in net.parameters())

    x = torch.randn(2, 3, 32, 32)
    t = torch.tensor([50, 800], dtype=torch.int64)
    tmp = args.out + ".tmp"
    torch.onnx.export(net, (x, t), tmp, input_names=["x_t", "timestep"], output_names=["eps"],
                      dynamic_axes={"x_t": {0: "batch"}, "timestep": {0: "batch"}, "eps": {0: "batch"}}, opset_version=14)
    model = onnx.load(tmp)
    meta = {
        "diffusion.schedule": "linear", "diffusion.timesteps": "1000", "diffusion.beta_start": "0.0001", "diffusion.beta_end": "0.02",
        "diffusion.prediction": "epsilon", "diffusion.input_range": "[-1, 1]",
        "training.steps": str(ck["step"]), "training.minutes": f"{ck['wall'] / 60:.1f}", "training.base_width": str(train_args["base"]),
        "training.parameters": str(params),
    }
    for k, v in meta.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    model.producer_name = "DiffusionCircuits tools/train (torch %s)" % torch.__version__
    onnx.checker.check_model(model)
    onnx.save(model, tmp)
    os.replace(tmp, args.out)
    # The EMA weights alone (2 MB) ship too, for PyTorch-side comparisons (tools/bench): torch.load + UNet().load_state_dict.
    weights = os.path.splitext(args.out)[0] + ".pt"
    torch.save({"ema": ck["ema"], "base": train_args["base"], "step": ck["step"]}, weights + ".tmp")
    os.replace(weights + ".tmp", weights)
    print(json.dumps({"out": args.out, "steps": ck["step"], "parameters": params, "minutes": ck["wall"] / 60}))


if __name__ == "__main__":
    main()
