"""Train the reference DDPM U-Net on synthetic faces (from `diffcircuits synth`) and the CelebA sample.

    /usr/bin/python3 tools/train/train.py --steps 5000 [--resume]

Reads the arrays written by tools/train/prepare-data.sh (work/), holds out CelebA by identity (the list goes to
models/heldout-celeba.txt), checkpoints atomically every few minutes to checkpoints/ckpt.pt, and with --resume
continues from the checkpoint with identical data order and noise (the RNG state is checkpointed too).
"""
import argparse, json, math, os, time

import numpy as np
import torch

from model import UNet, linear_alpha_bar

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def load_u8(path):
    x = np.load(path)                                       # N x H x W x 3, uint8
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()


def celeba_split(work, identity_file, heldout_identities, seed):
    files = open(os.path.join(work, "celeba", "files.txt")).read().split()
    ident = dict(line.split() for line in open(identity_file))
    ids = sorted({ident[f] for f in files}, key=int)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(ids, size=heldout_identities, replace=False).tolist())
    heldout = [i for i, f in enumerate(files) if ident[f] in held]
    train = [i for i, f in enumerate(files) if ident[f] not in held]
    return files, train, heldout, sorted(held, key=int)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5000, help="total optimisation steps (cosine schedule length)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--base", type=int, default=32, help="U-Net base width")
    ap.add_argument("--seed", type=int, default=20251)
    ap.add_argument("--heldout-identities", type=int, default=13)
    ap.add_argument("--celeba", default=os.path.join(ROOT, "..", "shared", "data", "celeba"))
    ap.add_argument("--work", default=os.path.join(HERE, "work"))
    ap.add_argument("--checkpoint", default=os.path.join(HERE, "checkpoints", "ckpt.pt"))
    ap.add_argument("--checkpoint-minutes", type=float, default=4.0)
    ap.add_argument("--stop-at", type=float, default=0, help="unix time at which to checkpoint and stop (0 = never)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    synth = load_u8(os.path.join(args.work, "synth-train", "images.npy"))
    celeba_all = load_u8(os.path.join(args.work, "celeba", "images.npy"))
    files, train_idx, held_idx, held_ids = celeba_split(args.work, os.path.join(args.celeba, "identity_CelebA.txt"),
                                                        args.heldout_identities, args.seed)
    celeba = celeba_all[train_idx]
    os.makedirs(os.path.join(ROOT, "models"), exist_ok=True)
    with open(os.path.join(ROOT, "models", "heldout-celeba.txt"), "w") as f:
        f.write("# CelebA images held out from training (all images of these identities: %s)\n" % " ".join(held_ids))
        f.write("\n".join(files[i] for i in held_idx) + "\n")
    print(f"data: {len(synth)} synthetic, {len(celeba)} CelebA train, {len(held_idx)} CelebA held out "
          f"({len(held_ids)} identities)", flush=True)

    net = UNet(args.base)
    ema = UNet(args.base)
    ema.load_state_dict(net.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.0)
    abar = linear_alpha_bar().float()
    step, wall = 0, 0.0
    gen = torch.Generator().manual_seed(args.seed)
    if args.resume and os.path.exists(args.checkpoint):
        ck = torch.load(args.checkpoint)
        net.load_state_dict(ck["net"]); ema.load_state_dict(ck["ema"]); opt.load_state_dict(ck["opt"])
        step, wall = ck["step"], ck["wall"]
        gen.set_state(ck["gen"])
        print(f"resumed at step {step} ({wall/60:.1f} min trained)", flush=True)
    elif args.resume:
        print("no checkpoint found; starting fresh", flush=True)

    def save():
        os.makedirs(os.path.dirname(args.checkpoint), exist_ok=True)
        tmp = args.checkpoint + ".tmp"
        torch.save({"net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                    "wall": wall, "gen": gen.get_state(), "args": vars(args)}, tmp)
        os.replace(tmp, args.checkpoint)

    half = args.batch // 2
    last_save, t_start, losses = time.time(), time.time() - wall, []
    while step < args.steps:
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        x0 = torch.cat([synth[torch.randint(len(synth), (half,), generator=gen)],
                        celeba[torch.randint(len(celeba), (args.batch - half,), generator=gen)]])
        flip = torch.rand(args.batch, generator=gen) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = abar[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        loss = ((net(xt, t) - eps) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        decay = min(0.999, (1 + step) / (10 + step))              # EMA with warm-up
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.mul_(decay).add_(pn, alpha=1 - decay)
        losses.append(loss.item())
        wall = time.time() - t_start
        if step % 50 == 0:
            print(f"step {step} loss {np.mean(losses[-50:]):.4f} lr {lr:.2e} {wall/step:.2f}s/step", flush=True)
        stop = args.stop_at and time.time() >= args.stop_at
        if time.time() - last_save > args.checkpoint_minutes * 60 or step == args.steps or stop:
            save()
            last_save = time.time()
        if stop:
            print(f"stopping at step {step} as asked (--stop-at)", flush=True)
            break
    save()
    print(json.dumps({"steps": step, "wall_minutes": wall / 60}), flush=True)


if __name__ == "__main__":
    main()
