#!/usr/bin/env python3
"""PyTorch reference of vqtok's training step (taming VQGAN + VQLPIPSWithDiscriminator),
for `cargo xtask bench-train` (issue 18).

usage: train_step.py --config PARAM_JSON --mode eager|compile --device cpu|cuda --batch B
                     --steps N [--warmup W] [--amp bf16|none] [--threads T] [--seed S]
                     [--adaptive surrogate|taming]
       train_step.py --config PARAM_JSON --state-dict-keys
       train_step.py --self-test

Prints ONE JSON line: mode, device, batch_images (B clips x sequence_length frames: every
frame counts as an image, as vqtok's `train/img_per_s` counts them), img_per_s (over the N
timed steps), peak_mem_gb (CUDA: torch.cuda.max_memory_allocated; CPU: this process's peak
RSS from getrusage), step_s_median, params (autoencoder), disc_params, torch.

The step is vqtok's (crates/vqtok-train/src/train/step.rs), written the PyTorch way with
taming's module and parameter names (`--state-dict-keys` lists them in the format of
tests/fixtures/taming_f16_1024_state_dict.tsv):

  1. autoencoder forward in train mode (under bf16 autocast with --amp bf16): encoder,
     quant_conv, the codebook (VectorQuantizer2 with taming's legacy loss, or the EMA
     codebook of `model_variant: EMAVQ` with vqtok's data init, one EMA update per batch
     and dead-code restarts; distances always in fp32), post_quant_conv, decoder;
  2. the generator loss of VQLPIPSWithDiscriminator: |x - x^| + perceptual_weight * LPIPS
     (VGG16 over x without autograd and over x^ with it, fp32, autocast off), mean,
     + codebook_weight * vq loss;
     from disc_start on, + d_weight * disc_factor * (-mean D(x^)) with D in train mode;
  3. the adaptive weight as vqtok computes it (--adaptive surrogate, the default): one
     backward through LPIPS and one through D, each stopping at x^ (the seeds s_nll, s_g),
     the two last-layer gradients from those seeds through conv_out only, and one backward
     of the surrogate <x^, sg(s_nll + d_weight*factor*s_g)> + codebook term through the
     autoencoder. --adaptive taming instead does what taming does: autograd.grad of nll
     and of g w.r.t. conv_out.weight (each a backward through LPIPS / D), then
     total_loss.backward() (through LPIPS and D again);
  4. Adam (torch.optim.Adam, betas/eps/lr from train_args, optional grad_clip);
  5. on steps >= disc_start that are multiples of disc_update_every: the discriminator's
     hinge/vanilla loss on D(x) and D(sg(x^)) (two forwards, train-mode BatchNorm), its
     own Adam. Before disc_start D is not run at all (ARCHITECTURE.md, decision 7).

What vqtok adds for robustness is left out here, as a PyTorch training script would: the
staging copies that let a non-finite step be undone and the device-side finiteness flags
(vqtok reads nothing back per step; this script has no check at all, like taming).

--mode compile: torch.compile (inductor, default mode) on four pieces, each a fixed graph
that compiles reliably on CPU and CUDA: encoder+quant_conv, post_quant_conv+decoder (which
also returns conv_out's input for the last-layer gradient), LPIPS, and the discriminator
forward. The codebook (argmin, the EMA update with its in-place state, randperm restarts),
the adaptive-weight orchestration (autograd.grad at x^) and Adam stay eager: they are small,
and the in-place / data-dependent parts cause graph breaks or recompiles. Their backward
passes are compiled by AOTAutograd with them. The first (warm-up) steps include compile
time; use --warmup >= 2 (3 when D is on, so both D-step kinds are compiled).

The last-layer gradient uses torch.nn.grad.conv2d_weight(conv_out input, seed): exactly
the gradient of <x^, seed> w.r.t. conv_out.weight (what vqtok's backward through the last
conv computes), without re-running a compiled decoder's whole backward.

--self-test: (a) --state-dict-keys of configs/taming_vqgan_f16_1024.json equals
tests/fixtures/taming_f16_1024_state_dict.tsv line for line; (b) 2 eager steps of
configs/taming_tiny.json on the CPU (with disc_start 0 and disc_update_every 1, so every
loss term and both optimizers run; then again with EMAVQ) give finite losses and change
the weights. Exit status 0 on success.
"""

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- config


def strip_comments(text):
    """Removes `//` comments outside JSON strings."""
    out, i, n, in_str = [], 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif c == "/" and i + 1 < n and text[i + 1] == "/":
            while i < n and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def load_config(path):
    """param.json with vqtok's defaults filled in (vqtok-config's serde defaults)."""
    raw = json.loads(strip_comments(Path(path).read_text()))
    ma = raw["model_args"]
    if "ddconfig" not in ma:
        raise SystemExit(f"{path}: not a taming VQGAN config (no model_args.ddconfig)")
    dd = {"double_z": False, "in_channels": 3, "out_ch": 3, "attn_resolutions": [],
          "dropout": 0.0, "resamp_with_conv": True, **ma["ddconfig"]}
    lp = {"codebook_weight": 1.0, "pixelloss_weight": 1.0, "disc_num_layers": 3,
          "disc_in_channels": 3, "disc_factor": 1.0, "disc_weight": 1.0,
          "perceptual_weight": 1.0, "use_actnorm": False, "disc_conditional": False,
          "disc_ndf": 64, "disc_loss": "hinge", **ma["lossconfig"]["params"]}
    ema = {"decay": 0.99, "eps": 1e-5, "data_init": True, "dead_code_threshold": 1.0,
           **ma.get("ema", {})}
    model = {"model_variant": ma.get("model_variant", "VQModel"), "n_embed": ma["n_embed"],
             "embed_dim": ma["embed_dim"], "beta": ma.get("beta", 0.25),
             "legacy": ma.get("legacy", True), "ema": ema, "ddconfig": dd, "loss": lp}
    train = {"lr": 1e-4, "adam_betas": [0.5, 0.9], "adam_eps": 1e-8, "disc_update_every": 3,
             "grad_clip": None, "amp": "none", "deterministic": False, "seed": 23,
             "batch_size": 8, **raw.get("train_args", {})}
    if train.get("use_taming_loss") is False:
        raise SystemExit(f"{path}: use_taming_loss is false; only the taming path is modelled")
    if lp["disc_conditional"]:
        raise SystemExit(f"{path}: disc_conditional must be false")
    data = {"sequence_length": 16, **raw.get("data_args", {})}
    res = data.get("resolution") or dd["resolution"]
    return {"model": model, "train": train, "seq": int(data["sequence_length"]), "res": int(res)}


# ---------------------------------------------------------------- taming autoencoder


def Normalize(c):
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, dropout):
        super().__init__()
        self.norm1 = Normalize(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = Normalize(cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)
        self.p = dropout

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = F.silu(self.norm2(h))
        if self.p > 0:
            h = self.dropout(h)
        h = self.conv2(h)
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single head over h*w tokens of dimension C; SDPA (scale C^-1/2), as vqtok."""

    def __init__(self, c):
        super().__init__()
        self.norm = Normalize(c)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)

        def tokens(t):
            return t.reshape(b, c, h * w).transpose(1, 2).unsqueeze(1)

        o = F.scaled_dot_product_attention(tokens(self.q(n)), tokens(self.k(n)), tokens(self.v(n)))
        o = o.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(o)


class Downsample(nn.Module):
    def __init__(self, c, with_conv):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        if self.with_conv:
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, 2, 2)


class Upsample(nn.Module):
    def __init__(self, c, with_conv):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.with_conv else x


class Mid(nn.Module):
    def __init__(self, c, dropout):
        super().__init__()
        self.block_1 = ResnetBlock(c, c, dropout)
        self.attn_1 = AttnBlock(c)
        self.block_2 = ResnetBlock(c, c, dropout)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


def level_forward(lv, h):
    for j, block in enumerate(lv.block):
        h = block(h)
        if len(lv.attn) > 0:
            h = lv.attn[j](h)
    return h


class Encoder(nn.Module):
    def __init__(self, dd):
        super().__init__()
        ch, mult, n = dd["ch"], dd["ch_mult"], dd["num_res_blocks"]
        self.conv_in = nn.Conv2d(dd["in_channels"], ch, 3, 1, 1)
        res, block_in = dd["resolution"], ch
        self.down = nn.ModuleList()
        for i, m in enumerate(mult):
            lv = nn.Module()
            lv.block, lv.attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * m
            for _ in range(n):
                lv.block.append(ResnetBlock(block_in, block_out, dd["dropout"]))
                block_in = block_out
                if res in dd["attn_resolutions"]:
                    lv.attn.append(AttnBlock(block_in))
            if i != len(mult) - 1:
                lv.downsample = Downsample(block_in, dd["resamp_with_conv"])
                res //= 2
            self.down.append(lv)
        self.mid = Mid(block_in, dd["dropout"])
        self.norm_out = Normalize(block_in)
        zc = dd["z_channels"] * (2 if dd["double_z"] else 1)
        self.conv_out = nn.Conv2d(block_in, zc, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.down:
            h = level_forward(lv, h)
            if hasattr(lv, "downsample"):
                h = lv.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, dd):
        super().__init__()
        ch, mult, n = dd["ch"], dd["ch_mult"], dd["num_res_blocks"]
        block_in = ch * mult[-1]
        res = dd["resolution"] >> (len(mult) - 1)
        self.conv_in = nn.Conv2d(dd["z_channels"], block_in, 3, 1, 1)
        self.mid = Mid(block_in, dd["dropout"])
        self.up = nn.ModuleList()
        for i in reversed(range(len(mult))):
            lv = nn.Module()
            lv.block, lv.attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * mult[i]
            for _ in range(n + 1):
                lv.block.append(ResnetBlock(block_in, block_out, dd["dropout"]))
                block_in = block_out
                if res in dd["attn_resolutions"]:
                    lv.attn.append(AttnBlock(block_in))
            if i != 0:
                lv.upsample = Upsample(block_in, dd["resamp_with_conv"])
                res *= 2
            self.up.insert(0, lv)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, dd["out_ch"], 3, 1, 1)

    def forward(self, z):
        """(x^, conv_out's input)."""
        h = self.mid(self.conv_in(z))
        for lv in reversed(self.up):
            h = level_forward(lv, h)
            if hasattr(lv, "upsample"):
                h = lv.upsample(h)
        h = F.silu(self.norm_out(h))
        return self.conv_out(h), h


# ---------------------------------------------------------------- codebooks


def nearest(z_flat, weight):
    """argmin of |z|^2 + |e|^2 - 2 z.e^T, in fp32 (or wider) even under autocast."""
    with torch.no_grad(), torch.autocast(z_flat.device.type, enabled=False):
        z, e = z_flat.float(), weight.float()
        d = z.square().sum(1, keepdim=True) + e.square().sum(1) - 2.0 * (z @ e.t())
        return d.argmin(1)


def perplexity(idx, k):
    counts = torch.zeros(k, dtype=torch.long, device=idx.device)
    counts.scatter_add_(0, idx.reshape(-1), torch.ones_like(idx.reshape(-1)))
    p = counts.float() / idx.numel()
    return torch.exp(-(p * torch.log(p + 1e-10)).sum())


class VectorQuantizer2(nn.Module):
    def __init__(self, k, d, beta, legacy):
        super().__init__()
        self.k, self.beta, self.legacy = k, beta, legacy
        self.embedding = nn.Embedding(k, d)
        self.embedding.weight.data.uniform_(-1.0 / k, 1.0 / k)

    def forward(self, z):
        b, d, h, w = z.shape
        zb = z.float().permute(0, 2, 3, 1)
        idx = nearest(zb.reshape(-1, d), self.embedding.weight)
        zq = F.embedding(idx, self.embedding.weight.float()).view(b, h, w, d)
        commitment = F.mse_loss(zq.detach(), zb)
        codebook = F.mse_loss(zq, zb.detach())
        loss = commitment + self.beta * codebook if self.legacy else self.beta * commitment + codebook
        st = zb + (zq - zb).detach()
        return st.permute(0, 3, 1, 2).contiguous(), loss, perplexity(idx, self.k)


class EmbeddingEMA(nn.Module):
    def __init__(self, k, d):
        super().__init__()
        w = torch.randn(k, d)
        self.register_buffer("weight", w.clone())
        self.register_buffer("cluster_size", torch.zeros(k))
        self.register_buffer("embed_avg", w)


class EMAVectorQuantizer(nn.Module):
    """vqtok's EMA codebook (model/quantize/ema.rs): data init (checked once), z_q from
    the codebook before this batch's update, one EMA update, dead-code restarts."""

    def __init__(self, k, d, beta, ema):
        super().__init__()
        self.k, self.beta, self.ema = k, beta, ema
        self.embedding = EmbeddingEMA(k, d)
        self.initialised = False

    @torch.no_grad()
    def reset(self, z_flat, mask):
        e, n = self.embedding, z_flat.shape[0]
        if n >= self.k:
            rows = torch.randperm(n, device=z_flat.device)[: self.k]
        else:
            rows = torch.randint(n, (self.k,), device=z_flat.device)
        s = z_flat[rows].to(e.weight.dtype)
        m2 = mask.unsqueeze(1)
        e.weight.copy_(torch.where(m2, s, e.weight))
        e.cluster_size.copy_(torch.where(mask, torch.ones_like(e.cluster_size), e.cluster_size))
        e.embed_avg.copy_(torch.where(m2, s, e.embed_avg))

    def forward(self, z):
        b, d, h, w = z.shape
        e = self.embedding
        zb = z.float().permute(0, 2, 3, 1)
        z_flat = zb.reshape(-1, d)
        z_data = z_flat.detach()
        if self.training and self.ema["data_init"] and not self.initialised:
            # Once, as vqtok (one host read; never again after the first batch).
            if bool(e.cluster_size.sum() <= 0):
                self.reset(z_data, torch.ones(self.k, dtype=torch.bool, device=z.device))
            self.initialised = True
        idx = nearest(z_data, e.weight)
        zq = e.weight.float().index_select(0, idx).view(b, h, w, d)
        loss = F.mse_loss(zq, zb) * self.beta
        st = zb + (zq - zb).detach()
        out = (st.permute(0, 3, 1, 2).contiguous(), loss, perplexity(idx, self.k))
        if self.training:
            with torch.no_grad(), torch.autocast(z.device.type, enabled=False):
                decay, eps = self.ema["decay"], self.ema["eps"]
                onehot = F.one_hot(idx, self.k).to(e.embed_avg.dtype)
                counts = onehot.sum(0)
                sums = onehot.t() @ z_data.to(e.embed_avg.dtype)
                e.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
                e.embed_avg.mul_(decay).add_(sums, alpha=1 - decay)
                n = e.cluster_size.sum()
                smoothed = (e.cluster_size + eps) / (n + self.k * eps) * n
                e.weight.copy_(e.embed_avg / smoothed.unsqueeze(1))
                if self.ema["dead_code_threshold"] > 0:
                    self.reset(z_data, e.cluster_size < self.ema["dead_code_threshold"])
        return out


# ---------------------------------------------------------------- discriminator, LPIPS


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.scale = nn.Parameter(torch.ones(1, c, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    def forward(self, x):
        if self.training and self.initialized.item() == 0:
            with torch.no_grad():
                flat = x.detach().transpose(0, 1).reshape(x.shape[1], -1)
                self.loc.copy_(-flat.mean(1).view(1, -1, 1, 1))
                self.scale.copy_((1 / (flat.std(1) + 1e-6)).view(1, -1, 1, 1))
                self.initialized.fill_(1)
        return self.scale * (x + self.loc)


class NLayerDiscriminator(nn.Module):
    def __init__(self, cin, ndf, n_layers, use_actnorm):
        super().__init__()
        norm = ActNorm if use_actnorm else nn.BatchNorm2d
        bias = use_actnorm
        seq = [nn.Conv2d(cin, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=bias), norm(ndf * mult),
                    nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=bias), norm(ndf * mult),
                nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.main = nn.Sequential(*seq)
        for m in self.modules():  # taming's weights_init
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.main(x)


VGG_SLICES = [[(0, 3, 64), (2, 64, 64)], [(5, 64, 128), (7, 128, 128)],
              [(10, 128, 256), (12, 256, 256), (14, 256, 256)],
              [(17, 256, 512), (19, 512, 512), (21, 512, 512)],
              [(24, 512, 512), (26, 512, 512), (28, 512, 512)]]


class LPIPS(nn.Module):
    """LPIPS-VGG v0.1, fp32, frozen (vqtok's loss/lpips.rs), with taming's names
    (`scaling_layer`, `net.sliceK.N`, `linK.model.1`): the detached real frames' VGG pass
    without autograd, the reconstructions' with it (as vqtok does, and as taming's two
    passes do when x needs no gradient)."""

    def __init__(self, weights=None):
        super().__init__()
        self.scaling_layer = nn.Module()
        self.scaling_layer.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.scaling_layer.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.net = nn.Module()
        for k, convs in enumerate(VGG_SLICES):
            sl = nn.Module()
            for idx, cin, cout in convs:
                sl.add_module(str(idx), nn.Conv2d(cin, cout, 3, 1, 1))
            self.net.add_module(f"slice{k + 1}", sl)
        for k, convs in enumerate(VGG_SLICES):
            lin = nn.Module()
            lin.model = nn.Sequential(nn.Dropout(), nn.Conv2d(convs[-1][2], 1, 1, bias=False))
            self.add_module(f"lin{k}", lin)
        if weights is not None:
            from safetensors.torch import load_file

            sd = load_file(str(weights))
            with torch.no_grad():
                for k, convs in enumerate(VGG_SLICES):
                    for idx, _, _ in convs:
                        c = getattr(self.net, f"slice{k + 1}").get_submodule(str(idx))
                        c.weight.copy_(sd[f"features.{idx}.weight"])
                        c.bias.copy_(sd[f"features.{idx}.bias"])
                    getattr(self, f"lin{k}").model[1].weight.copy_(sd[f"lin{k}.model.1.weight"])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode=True):  # always eval (project decision 2: no dropout)
        return super().train(False)

    def taps(self, x):
        h = (x.float() - self.scaling_layer.shift) / self.scaling_layer.scale
        out = []
        for k, convs in enumerate(VGG_SLICES):
            if k > 0:
                h = F.max_pool2d(h, 2, 2)
            sl = getattr(self.net, f"slice{k + 1}")
            for idx, _, _ in convs:
                h = F.relu(sl.get_submodule(str(idx))(h))
            out.append(h / (h.square().sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x, y):
        with torch.no_grad():
            real = self.taps(x)
        total = 0
        for k, (a, b) in enumerate(zip(real, self.taps(y))):
            total = total + getattr(self, f"lin{k}").model[1]((a - b).square()).mean((2, 3), keepdim=True)
        return total


def lpips_weights():
    p = os.environ.get("VQTOK_LPIPS_WEIGHTS") or str(ROOT / ".cache/vqtok/lpips_vgg16_v0.1.safetensors")
    if not Path(p).is_file():
        raise SystemExit(f"LPIPS weights not found at {p} (run `cargo xtask setup`)")
    return p


# ---------------------------------------------------------------- the model


class Loss(nn.Module):
    """taming's VQLPIPSWithDiscriminator's modules: LPIPS (frozen), then D."""

    def __init__(self, lp, lpips_path=None):
        super().__init__()
        self.perceptual_loss = LPIPS(lpips_path)
        self.discriminator = NLayerDiscriminator(lp["disc_in_channels"], lp["disc_ndf"],
                                                 lp["disc_num_layers"], lp["use_actnorm"])


class VQModel(nn.Module):
    """taming's VQModel / EMAVQ, registration order (= state-dict order) as in taming."""

    def __init__(self, m, lpips_path=None):
        super().__init__()
        dd = m["ddconfig"]
        self.encoder = Encoder(dd)
        self.decoder = Decoder(dd)
        self.loss = Loss(m["loss"], lpips_path)
        if m["model_variant"] == "EMAVQ":
            self.quantize = EMAVectorQuantizer(m["n_embed"], m["embed_dim"], m["beta"], m["ema"])
        elif m["model_variant"] == "VQModel":
            self.quantize = VectorQuantizer2(m["n_embed"], m["embed_dim"], m["beta"], m["legacy"])
        else:
            raise SystemExit(f"model_variant {m['model_variant']!r}: VQModel or EMAVQ")
        self.quant_conv = nn.Conv2d(dd["z_channels"], m["embed_dim"], 1)
        self.post_quant_conv = nn.Conv2d(m["embed_dim"], dd["z_channels"], 1)
        # The graphs torch.compile may replace (bench mode compile).
        self.enc = self._enc
        self.dec = self._dec

    def _enc(self, x):
        return self.quant_conv(self.encoder(x))

    def _dec(self, q):
        return self.decoder(self.post_quant_conv(q))

    def ae_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("loss.")]

    def forward(self, x):
        q, qloss, ppl = self.quantize(self.enc(x))
        xrec, h_last = self.dec(q)
        return xrec, h_last, qloss, ppl


def state_dict_rows(model):
    params = dict(model.named_parameters())
    rows = ["key\tshape\tkind\tnumel"]
    for k, t in model.state_dict().items():
        kind = "buffer" if k not in params else "param" if params[k].requires_grad else "param(frozen)"
        rows.append(f"{k}\t[{', '.join(str(s) for s in t.shape)}]\t{kind}\t{t.numel()}")
    return rows


# ---------------------------------------------------------------- the step


class Trainer:
    def __init__(self, cfg, device, mode, amp, adaptive):
        self.cfg, self.device, self.amp, self.adaptive = cfg, device, amp, adaptive
        m, t = cfg["model"], cfg["train"]
        self.lp = m["loss"]
        use_lpips = self.lp["perceptual_weight"] > 0
        self.model = VQModel(m, lpips_weights() if use_lpips else None).to(device).train()
        self.disc = self.model.loss.discriminator
        self.lpips = self.model.loss.perceptual_loss if use_lpips else None
        kw = {"lr": t["lr"], "betas": tuple(t["adam_betas"]), "eps": t["adam_eps"]}
        self.opt_ae = torch.optim.Adam(self.model.ae_parameters(), **kw)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), **kw)
        self.grad_clip = t["grad_clip"]
        self.every = int(t["disc_update_every"])
        self.disc_fwd = self.disc
        self.lpips_fwd = self.lpips
        if mode == "compile":
            if adaptive == "taming":
                # taming's autograd.grad(..., retain_graph=True) runs compiled backwards
                # twice, which donated buffers forbid.
                torch._functorch.config.donated_buffer = False
            self.model.enc = torch.compile(self.model._enc)
            self.model.dec = torch.compile(self.model._dec)
            self.disc_fwd = torch.compile(self.disc)
            if self.lpips is not None:
                self.lpips_fwd = torch.compile(self.lpips)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def is_on(self, step):
        return step >= self.lp["disc_start"]

    def d_loss(self, real, fake):
        if self.lp["disc_loss"] == "vanilla":
            return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())
        return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())

    def step(self, x, step):
        lp, model = self.lp, self.model
        on = self.is_on(step)
        with self.autocast():
            recon, h_last, qloss, ppl = model(x)
        with self.autocast():
            xin = x.detach().float()
            xrec = recon.float()
            rec = (xin - xrec).abs()
            if self.lpips is not None:
                with torch.autocast(self.device.type, enabled=False):
                    p_loss = self.lpips_fwd(xin, xrec)
                rec = rec + lp["perceptual_weight"] * p_loss
            nll = rec.mean()
            factor = lp["disc_factor"] if on else 0.0
            quant = qloss.float().mean() * lp["codebook_weight"]
            last = model.decoder.conv_out.weight
            if on:
                g = -self.disc_fwd(xrec).float().mean()
                if self.adaptive == "taming":
                    gn = torch.autograd.grad(nll, last, retain_graph=True)[0]
                    gg = torch.autograd.grad(g, last, retain_graph=True)[0]
                    d_weight = (gn.norm() / (gg.norm() + 1e-4)).clamp(0, 1e4).detach() * lp["disc_weight"]
                    backward = nll + d_weight * factor * g + quant
                else:
                    s_nll = torch.autograd.grad(nll, xrec)[0]  # LPIPS's graph only
                    s_g = torch.autograd.grad(g, xrec)[0]
                    h = h_last.detach()

                    def at_last(seed):
                        return torch.nn.grad.conv2d_weight(h, last.shape, seed.to(h.dtype), padding=1).float()

                    d_weight = (at_last(s_nll).norm() / (at_last(s_g).norm() + 1e-4)).clamp(0, 1e4) * lp["disc_weight"]
                    seed = s_nll + d_weight * factor * s_g
                    backward = (xrec * seed).sum() + quant
                total = (nll + d_weight * factor * g + quant).detach()
            else:
                backward = nll + quant
                total = (nll + quant).detach()
        self.opt_ae.zero_grad(set_to_none=False)
        backward.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(model.ae_parameters(), self.grad_clip)
        self.opt_ae.step()
        losses = {"total_loss": total, "perplexity": ppl.detach()}
        if on and step % self.every == 0:
            with self.autocast():
                real = self.disc_fwd(xin.detach()).float()
                fake = self.disc_fwd(xrec.detach()).float()
                d = self.d_loss(real, fake) * factor
            self.opt_d.zero_grad(set_to_none=False)
            d.backward()
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.disc.parameters(), self.grad_clip)
            self.opt_d.step()
            losses["disc_loss"] = d.detach()
        return losses


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_bench(a):
    cfg = load_config(a.config)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    amp = a.amp == "bf16"
    if amp and device.type != "cuda":
        raise SystemExit("--amp bf16 runs on CUDA only (as vqtok's train_args.amp)")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg["train"]["deterministic"]
    tr = Trainer(cfg, device, a.mode, amp, a.adaptive)
    seq, res = cfg["seq"], cfg["res"]
    images = a.batch * seq
    # Synthetic frames in [-1, 1], drawn up front (vqtok's synthetic source draws them on a
    # background thread, so neither side times data).
    n_batches = 4
    xs = [torch.rand(images, 3, res, res, device=device) * 2 - 1 for _ in range(n_batches)]
    times, losses = [], None
    for s in range(a.warmup + a.steps):
        sync(device)
        t0 = time.perf_counter()
        losses = tr.step(xs[s % n_batches], s)
        sync(device)
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 1e9
        reserved = torch.cuda.max_memory_reserved(device) / 1e9
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
        reserved = None
    total = sum(times)
    out = {
        "mode": a.mode, "device": a.device, "amp": a.amp, "adaptive": a.adaptive,
        "batch_clips": a.batch, "sequence_length": seq, "batch_images": images,
        "resolution": res, "warmup": a.warmup, "steps": a.steps,
        "disc_steps_timed": sum(1 for s in range(a.warmup, a.warmup + a.steps)
                                if tr.is_on(s) and s % tr.every == 0),
        "img_per_s": images * len(times) / total if total > 0 else None,
        "peak_mem_gb": peak, "peak_reserved_gb": reserved,
        "step_s_median": statistics.median(times) if times else None,
        "params": sum(p.numel() for p in tr.model.ae_parameters()),
        "disc_params": sum(p.numel() for p in tr.disc.parameters()),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "last_total_loss": float(losses["total_loss"]) if losses else None,
    }
    print(json.dumps(out), flush=True)


# ---------------------------------------------------------------- self-test


def self_test():
    t0 = time.time()
    seed_cfg = ROOT / "configs/taming_vqgan_f16_1024.json"
    want = (ROOT / "tests/fixtures/taming_f16_1024_state_dict.tsv").read_text().splitlines()
    got = state_dict_rows(VQModel(load_config(seed_cfg)["model"]))
    if got != want:
        diff = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w][:5]
        raise SystemExit(f"self-test: state dict differs from the fixture ({len(got)} vs "
                         f"{len(want)} rows; first differences {diff})")
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for variant in ["VQModel", "EMAVQ"]:
        cfg = load_config(ROOT / "configs/taming_tiny.json")
        cfg["model"]["model_variant"] = variant
        cfg["model"]["loss"]["disc_start"] = 0
        cfg["train"]["disc_update_every"] = 1
        tr = Trainer(cfg, torch.device("cpu"), "eager", False, "surrogate")
        before = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
        x = torch.rand(2 * cfg["seq"], 3, cfg["res"], cfg["res"]) * 2 - 1
        for s in range(2):
            losses = tr.step(x, s)
            for k, v in losses.items():
                if not math.isfinite(float(v)):
                    raise SystemExit(f"self-test {variant}: step {s} {k} = {float(v)}")
            if "disc_loss" not in losses:
                raise SystemExit(f"self-test {variant}: step {s} did not update D")
        after = tr.model.state_dict()
        for prefix in ["encoder.", "decoder.", "quant_conv.", "loss.discriminator.main.0.",
                       "quantize.embedding.weight"]:
            keys = [k for k in before if k.startswith(prefix) and before[k].is_floating_point()]
            if not keys or all(torch.equal(before[k], after[k]) for k in keys):
                raise SystemExit(f"self-test {variant}: `{prefix}*` did not change in 2 steps")
    print(json.dumps({"self_test": "ok", "seconds": round(time.time() - t0, 1)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config")
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--batch", type=int, help="clips per step (default: train_args.batch_size)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--amp", choices=["bf16", "none"], default=None,
                    help="default: the config's train_args.amp")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--adaptive", choices=["surrogate", "taming"], default="surrogate")
    ap.add_argument("--state-dict-keys", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not a.config:
        ap.error("--config is required")
    if a.state_dict_keys:
        print("\n".join(state_dict_rows(VQModel(load_config(a.config)["model"]))))
        return
    if a.steps < 1 or a.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    cfg = load_config(a.config)
    if a.batch is None:
        a.batch = int(cfg["train"]["batch_size"])
    if a.amp is None:
        a.amp = cfg["train"]["amp"]
    if not (a.device == "cpu" or a.device.startswith("cuda")):
        ap.error(f"--device {a.device}: cpu, cuda or cuda:N")
    run_bench(a)


if __name__ == "__main__":
    sys.exit(main())
