"""Import a taming-transformers Lightning checkpoint (.ckpt) as a safetensors state dict.

Keeps the autoencoder (encoder., decoder., quantize., quant_conv., post_quant_conv.) and
the discriminator (loss.discriminator.) under taming's own key names, dtypes unchanged;
drops loss.perceptual_loss.* (LPIPS weights come from their own file) and everything in
the checkpoint that is not the model's state_dict (optimizer states, callbacks, ...).

The pickle is read with torch's weights_only unpickler, which never imports or runs code
named by the file. Lightning checkpoints also pickle objects it refuses (callback state,
omegaconf hyper-parameters); each such global is replaced by an inert stand-in class that
only records its arguments, so loading still never executes anything from the file.

usage: import_taming.py CKPT OUT.safetensors
exit status: 0 written, 2 bad input (not a readable checkpoint, no state_dict, no
autoencoder), 1 internal failure.
"""
import os
import pickle
import re
import sys

import torch
from safetensors.torch import save_file

KEEP = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.", "loss.discriminator.")
GROUPS = KEEP
LPIPS = "loss.perceptual_loss."
REFUSED = re.compile(r"Unsupported global: GLOBAL (\S+) was not an allowed global")
MAX_STAND_INS = 256


class BadInput(Exception):
    pass


class Inert:
    """Stands in for a class or function the checkpoint names: records, never runs."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state):
        self.state = state


def unpickler_reason(e):
    """The line of torch's long weights_only message that says what was refused."""
    text = str(e).split("WeightsUnpickler error:", 1)[-1]
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("Check the documentation")]
    return lines[0] if lines else str(e)


def load_checkpoint(path):
    stand_ins = []
    names = set()
    for _ in range(MAX_STAND_INS):
        try:
            with torch.serialization.safe_globals(stand_ins):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            m = REFUSED.search(str(e))
            if not m or m.group(1) in names:
                raise BadInput(f"{path}: not a loadable checkpoint: {unpickler_reason(e)}")
            name = m.group(1)
            names.add(name)
            module, _, attr = name.rpartition(".")
            stand_ins.append((type(attr or name, (Inert,), {"__module__": module or "builtins"}), name))
        except (RuntimeError, OSError, EOFError, ValueError) as e:
            raise BadInput(f"{path}: not a readable PyTorch checkpoint: {e}")
    raise BadInput(f"{path}: refers to more than {MAX_STAND_INS} unknown globals")


def main(src, dst):
    ckpt = load_checkpoint(src)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise BadInput(f"{src}: no `state_dict` in the checkpoint (is it a Lightning .ckpt?)")
    kept, lpips, other = {}, [], []
    for key, value in ckpt["state_dict"].items():
        if key.startswith(LPIPS):
            lpips.append(key)
        elif key.startswith(KEEP) and isinstance(value, torch.Tensor):
            # clone: safetensors refuses tensors that share storage.
            kept[key] = value.detach().cpu().clone().contiguous()
        else:
            other.append(key)
    if not any(k.startswith("encoder.") for k in kept) or not any(k.startswith("decoder.") for k in kept):
        raise BadInput(f"{src}: the state_dict holds no taming autoencoder (no encoder.* / decoder.* tensors)")

    meta = {"source": os.path.basename(src)}
    for field in ("global_step", "epoch"):
        if isinstance(ckpt.get(field), int):
            meta[field] = str(ckpt[field])
    tmp = dst + ".partial"
    save_file(kept, tmp, metadata=meta)
    os.replace(tmp, dst)

    total = sum(t.numel() for t in kept.values())
    print(f"wrote {dst}: {len(kept)} tensors, {total:,} values")
    for group in GROUPS:
        ts = [t for k, t in kept.items() if k.startswith(group)]
        if ts:
            dtypes = ", ".join(sorted({str(t.dtype).replace("torch.", "") for t in ts}))
            print(f"  {group}*  {len(ts)} tensors, {sum(t.numel() for t in ts):,} values ({dtypes})")
    if "quantize.embedding.cluster_size" in kept:
        print("  quantize is an EMA codebook (EMAVQ): weight, cluster_size, embed_avg")
    if lpips:
        print(f"  dropped {LPIPS}* ({len(lpips)} tensors): LPIPS weights come from their own file")
    if other:
        print(f"  dropped {len(other)} other entries: {', '.join(other[:8])}{' ...' if len(other) > 8 else ''}")
    steps = ", ".join(f"{k} {meta[k]}" for k in ("global_step", "epoch") if k in meta)
    if steps:
        print(f"  checkpoint at {steps}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1], sys.argv[2])
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - report, exit 1
        print(f"error: import failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
