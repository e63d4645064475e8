"""PyTorch-eager equivalent of vqtok's taming VQGAN (../shared/spec/taming.md §2-3),
used by `cargo xtask bench` as the reference our ONNX graphs are timed against.

It loads the same weights (a safetensors state dict with taming names) into the same
architecture, written from the spec, and times the encoder (+ quant_conv + argmin) or
the decoder (codebook gather + post_quant_conv + decoder) in eval mode, no autograd.

usage: torch_reference.py --config param.json [--weights model.safetensors]
                          --part encoder|decoder --size H W --batch B --iters N --threads T
prints one JSON line: {"part", "batch", "seconds_per_frame", "frames_per_second"}
"""
import argparse
import json
import re
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def normalize(c):
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


def swish(x):
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = normalize(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = normalize(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = normalize(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        n = self.norm(x)
        b, c, h, w = x.shape
        q = self.q(n).reshape(b, c, h * w).permute(0, 2, 1)
        k = self.k(n).reshape(b, c, h * w)
        a = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)
        v = self.v(n).reshape(b, c, h * w)
        o = torch.bmm(v, a.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(o)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    pass


class Mid(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)

    def forward(self, h):
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    def __init__(self, dd):
        super().__init__()
        ch, mult, nres = dd["ch"], dd["ch_mult"], dd["num_res_blocks"]
        self.conv_in = nn.Conv2d(dd.get("in_channels", 3), ch, 3, 1, 1)
        res, in_mult = dd["resolution"], (1,) + tuple(mult)
        self.down = nn.ModuleList()
        for i, m in enumerate(mult):
            lvl = Level()
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            cin, cout = ch * in_mult[i], ch * m
            for _ in range(nres):
                lvl.block.append(ResnetBlock(cin, cout))
                cin = cout
                if res in dd.get("attn_resolutions", []):
                    lvl.attn.append(AttnBlock(cout))
            if i != len(mult) - 1:
                lvl.downsample = Downsample(cout)
                res //= 2
            self.down.append(lvl)
        c = ch * mult[-1]
        self.mid = Mid(c)
        self.norm_out = normalize(c)
        self.conv_out = nn.Conv2d(c, dd["z_channels"], 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for lvl in self.down:
            for j, blk in enumerate(lvl.block):
                h = blk(h)
                if len(lvl.attn):
                    h = lvl.attn[j](h)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
        return self.conv_out(swish(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, dd):
        super().__init__()
        ch, mult, nres = dd["ch"], dd["ch_mult"], dd["num_res_blocks"]
        cin = ch * mult[-1]
        res = dd["resolution"] // 2 ** (len(mult) - 1)
        self.conv_in = nn.Conv2d(dd["z_channels"], cin, 3, 1, 1)
        self.mid = Mid(cin)
        levels = []
        for i in reversed(range(len(mult))):
            lvl = Level()
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            cout = ch * mult[i]
            for _ in range(nres + 1):
                lvl.block.append(ResnetBlock(cin, cout))
                cin = cout
                if res in dd.get("attn_resolutions", []):
                    lvl.attn.append(AttnBlock(cout))
            if i != 0:
                lvl.upsample = Upsample(cout)
                res *= 2
            levels.insert(0, lvl)
        self.up = nn.ModuleList(levels)
        self.norm_out = normalize(ch * mult[0])
        self.conv_out = nn.Conv2d(ch * mult[0], dd.get("out_ch", 3), 3, 1, 1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for lvl in reversed(self.up):
            for j, blk in enumerate(lvl.block):
                h = blk(h)
                if len(lvl.attn):
                    h = lvl.attn[j](h)
            if hasattr(lvl, "upsample"):
                h = lvl.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class Quantize(nn.Module):
    def __init__(self, n, d):
        super().__init__()
        self.embedding = nn.Embedding(n, d)


class VQModel(nn.Module):
    def __init__(self, args):
        super().__init__()
        dd = args["ddconfig"]
        self.encoder, self.decoder = Encoder(dd), Decoder(dd)
        self.quantize = Quantize(args["n_embed"], args["embed_dim"])
        self.quant_conv = nn.Conv2d(dd["z_channels"], args["embed_dim"], 1)
        self.post_quant_conv = nn.Conv2d(args["embed_dim"], dd["z_channels"], 1)

    def encode(self, x):
        z = self.quant_conv(self.encoder(x)).permute(0, 2, 3, 1)
        flat = z.reshape(-1, z.shape[-1])
        e = self.quantize.embedding.weight
        d = (flat ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * flat @ e.t()
        return d.argmin(1).reshape(z.shape[:3])

    def decode(self, idx):
        zq = self.quantize.embedding(idx).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(zq))


def load_config(path):
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'^\s*//.*$|(?<=[,{\[\]}"0-9e])\s*//[^\n]*', "", text, flags=re.M)
    return json.loads(text)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--weights")
    p.add_argument("--part", choices=["encoder", "decoder"], required=True)
    p.add_argument("--size", nargs=2, type=int, default=[256, 256])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    args = load_config(a.config)["model_args"]
    model = VQModel(args).eval()
    if a.weights:
        from safetensors.torch import load_file

        state = {k: v for k, v in load_file(a.weights).items() if not k.startswith("loss.")}
        state = {k: v for k, v in state.items() if not k.endswith(("cluster_size", "embed_avg"))}
        model.load_state_dict(state, strict=True)
    h, w = a.size
    f = 2 ** (len(args["ddconfig"]["ch_mult"]) - 1)
    with torch.inference_mode():
        if a.part == "encoder":
            x = torch.rand(a.batch, 3, h, w) * 2 - 1
            run = lambda: model.encode(x)  # noqa: E731
        else:
            idx = torch.randint(0, args["n_embed"], (a.batch, h // f, w // f))
            run = lambda: model.decode(idx)  # noqa: E731
        for _ in range(a.warmup):
            run()
        t0 = time.perf_counter()
        for _ in range(a.iters):
            run()
        dt = (time.perf_counter() - t0) / (a.iters * a.batch)
    print(json.dumps({"part": a.part, "batch": a.batch, "seconds_per_frame": dt, "frames_per_second": 1 / dt}))


if __name__ == "__main__":
    main()
