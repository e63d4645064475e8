"""An independent PyTorch (float64) implementation of every exported family, written
from ../shared/spec/taming.md §2-3 and docs/models.md, that writes a vqtok verify
reference file. It stands in for the tch model in the export tests.

usage: torch_reference.py WEIGHTS MANIFEST INPUTS OUT [--data-init NEW_WEIGHTS]
INPUTS holds `frames` (u8 NHWC) and/or `images` (f32 NCHW, normalised).

--data-init first replaces every codebook by encoder outputs of the inputs (plus
noise), level by level, and saves the weights as NEW_WEIGHTS (float32): randomly
initialised encoders produce nearly constant latents, which a random codebook maps
to one or two codes, and a token test over one code tests nothing.
"""
import json
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

W = {}
family = args = norm = None


def setup(weights_path, manifest_path, dtype=torch.float64):
    """Loads weights (as `dtype`) and the model description; also used by the benchmark."""
    global family, args, norm
    W.clear()
    W.update({k: v.to(dtype) for k, v in load_file(weights_path).items()})
    manifest = json.load(open(manifest_path))
    family = manifest["family"]
    args = manifest["config"]["model_args"]
    norm = manifest["normalization"]


def conv(x, p, stride=1, pad=1):
    return F.conv2d(x, W[p + ".weight"], W[p + ".bias"], stride=stride, padding=pad)


def gn(x, p):
    return F.group_norm(x, 32, W[p + ".weight"], W[p + ".bias"], eps=1e-6)


def swish(x):
    return x * torch.sigmoid(x)


def resblock(x, p):
    h = conv(swish(gn(x, p + ".norm1")), p + ".conv1")
    h = conv(swish(gn(h, p + ".norm2")), p + ".conv2")
    if p + ".nin_shortcut.weight" in W:
        x = conv(x, p + ".nin_shortcut", pad=0)
    return x + h


def attn(x, p):
    h = gn(x, p + ".norm")
    q, k, v = (conv(h, f"{p}.{n}", pad=0) for n in "qkv")
    b, c, hh, ww = q.shape
    q = q.reshape(b, c, hh * ww).permute(0, 2, 1)
    w = torch.bmm(q, k.reshape(b, c, hh * ww)) * (int(c) ** (-0.5))
    w = F.softmax(w, dim=2)
    h = torch.bmm(v.reshape(b, c, hh * ww), w.permute(0, 2, 1)).reshape(b, c, hh, ww)
    return x + conv(h, p + ".proj_out", pad=0)


def taming_encoder(x, d):
    h = conv(x, "encoder.conv_in")
    res, levels = d["resolution"], len(d["ch_mult"])
    for i in range(levels):
        for j in range(d["num_res_blocks"]):
            h = resblock(h, f"encoder.down.{i}.block.{j}")
            if res in d["attn_resolutions"]:
                h = attn(h, f"encoder.down.{i}.attn.{j}")
        if i != levels - 1:
            if d.get("resamp_with_conv", True):
                h = conv(F.pad(h, (0, 1, 0, 1)), f"encoder.down.{i}.downsample.conv", stride=2, pad=0)
            else:
                h = F.avg_pool2d(h, kernel_size=2, stride=2)
            res //= 2
    h = resblock(h, "encoder.mid.block_1")
    h = attn(h, "encoder.mid.attn_1")
    h = resblock(h, "encoder.mid.block_2")
    return conv(swish(gn(h, "encoder.norm_out")), "encoder.conv_out")


def taming_decoder(z, d):
    levels = len(d["ch_mult"])
    res = d["resolution"] >> (levels - 1)
    h = conv(z, "decoder.conv_in")
    h = resblock(h, "decoder.mid.block_1")
    h = attn(h, "decoder.mid.attn_1")
    h = resblock(h, "decoder.mid.block_2")
    for i in reversed(range(levels)):
        for j in range(d["num_res_blocks"] + 1):
            h = resblock(h, f"decoder.up.{i}.block.{j}")
            if res in d["attn_resolutions"]:
                h = attn(h, f"decoder.up.{i}.attn.{j}")
        if i != 0:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            if d.get("resamp_with_conv", True):
                h = conv(h, f"decoder.up.{i}.upsample.conv")
            res *= 2
    return conv(swish(gn(h, "decoder.norm_out")), "decoder.conv_out")


def res_stack(x, p, n):
    for j in range(n):
        h = conv(F.relu(x), f"{p}.res.{j}.conv1")
        x = x + conv(F.relu(h), f"{p}.res.{j}.conv2", pad=0)
    return F.relu(x)


def classic_encoder(x, p, n_down, n_res):
    for i in range(n_down):
        x = F.relu(conv(x, f"{p}.down.{i}", stride=2, pad=1))
    return res_stack(conv(x, f"{p}.conv"), p, n_res)


def classic_decoder(x, p, n_up, n_res):
    x = res_stack(conv(x, f"{p}.conv_in"), p, n_res)
    for i in range(n_up):
        x = F.conv_transpose2d(x, W[f"{p}.up.{i}.weight"], W[f"{p}.up.{i}.bias"], stride=2, padding=1)
        if i < n_up - 1:
            x = F.relu(x)
    return x


def quantize(z, p, init_codebooks=False):
    if init_codebooks:
        zf = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        k = W[p + ".embedding.weight"].shape[0]
        g = torch.Generator().manual_seed(0)
        rows = zf[torch.randint(0, zf.shape[0], (k,), generator=g)]
        noise = torch.randn(rows.shape, generator=g, dtype=rows.dtype) * zf.std(0) * 0.5
        W[p + ".embedding.weight"] = (rows + noise).float().double()
    e = W[p + ".embedding.weight"]
    zf = z.permute(0, 2, 3, 1).reshape(-1, e.shape[1])
    d = zf.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * zf @ e.t()
    return d.argmin(1).reshape(z.shape[0], z.shape[2], z.shape[3])


def lookup(idx, p):
    return W[p + ".embedding.weight"][idx].permute(0, 3, 1, 2)


def encode(x, init_codebooks=False):
    if family == "taming":
        return {"quantize": quantize(conv(taming_encoder(x, args["ddconfig"]), "quant_conv", pad=0), "quantize",
                                     init_codebooks)}
    if family == "vqvae":
        n = args["downsample"].bit_length() - 1
        h = classic_encoder(x, "encoder", n, args["num_residual_layers"])
        return {"quantize": quantize(conv(h, "quant_conv", pad=0), "quantize", init_codebooks)}
    nr = args["n_res_block"]
    b = classic_encoder(x, "enc_b", 2, nr)
    t = classic_encoder(b, "enc_t", 1, nr)
    it = quantize(conv(t, "quantize_conv_t", pad=0), "quantize_t", init_codebooks)
    dt = classic_decoder(lookup(it, "quantize_t"), "dec_t", 1, nr)
    ib = quantize(conv(torch.cat([dt, b], 1), "quantize_conv_b", pad=0), "quantize_b", init_codebooks)
    return {"quantize_t": it, "quantize_b": ib}


def decode(idx):
    if family == "taming":
        return taming_decoder(conv(lookup(idx["quantize"], "quantize"), "post_quant_conv", pad=0), args["ddconfig"])
    if family == "vqvae":
        n = args["downsample"].bit_length() - 1
        return classic_decoder(lookup(idx["quantize"], "quantize"), "decoder", n, args["num_residual_layers"])
    ut = F.conv_transpose2d(lookup(idx["quantize_t"], "quantize_t"), W["upsample_t.weight"], W["upsample_t.bias"],
                            stride=2, padding=1)
    return classic_decoder(torch.cat([ut, lookup(idx["quantize_b"], "quantize_b")], 1), "dec", 2, args["n_res_block"])


def main():
    weights_path, manifest_path, inputs_path, out_path = sys.argv[1:5]
    setup(weights_path, manifest_path)
    inputs = load_file(inputs_path)
    out = {}
    with torch.no_grad():
        if sys.argv[5:6] == ["--data-init"]:
            encode(inputs["images"].double(), init_codebooks=True)
            save_file({k: v.float().contiguous() for k, v in W.items()}, sys.argv[6])
        if "frames" in inputs:
            frames = inputs["frames"]
            c = frames.shape[-1]
            x = frames.float()
            # Normalised in float32 in the manifest's order, as the data pipeline does.
            x = x / torch.tensor(norm["divisor"][:c], dtype=torch.float32) - torch.tensor(norm["offset"][:c], dtype=torch.float32)
            if any(s != 1.0 for s in norm["std"]):
                x = x / torch.tensor(norm["std"][:c], dtype=torch.float32)
            x = x.permute(0, 3, 1, 2).double()
            idx = encode(x)
            out["frames"] = frames
            for k, v in idx.items():
                out[f"indices.{k}"] = v.contiguous()
            out["recon_float"] = decode(idx).float().contiguous()
        if "images" in inputs:
            idx = encode(inputs["images"].double())
            out["images"] = inputs["images"]
            for k, v in idx.items():
                out[f"images_indices.{k}"] = v.contiguous()
            out["images_recon_float"] = decode(idx).float().contiguous()
    save_file(out, out_path)


if __name__ == "__main__":
    main()
