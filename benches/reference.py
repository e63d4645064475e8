"""The other side of `cargo xtask bench`: the same model folder timed through Python's
onnxruntime (the very graphs vqtokenize runs) and through PyTorch eager (the same
weights and computation, from crates/vqtok-export/tests/torch_reference.py, float32,
no autograd), on this machine, alternating the two so machine load hits both alike.

usage: reference.py --model DIR --weights FILE --part encoder|decoder --batch B
                    [--size H W] [--iters N] [--threads T] [--runtimes ort,eager] [--spin 0|1]
prints one JSON line: {"ort_python": {...}, "eager": {...}, "eager_1_thread": {...}} with
seconds per frame (median and min over N timed calls after one warm-up call) for each
runtime; `eager_1_thread` only when --threads > 1.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "crates", "vqtok-export", "tests"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--part", choices=["encoder", "decoder"], required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", nargs=2, type=int, required=True)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runtimes", default="ort,eager")
    p.add_argument("--spin", type=int, choices=[0, 1], default=0, help="ORT intra-op spinning (vqtokenize: 0)")
    a = p.parse_args()
    runtimes = a.runtimes.split(",")
    manifest = json.load(open(os.path.join(a.model, "manifest.json")))
    h, w = a.size
    rng = np.random.RandomState(0)
    levels = manifest["levels"]
    frames = rng.randint(0, 256, (a.batch, h, w, 3)).astype(np.uint8)
    grids = {
        lv["indices"]: rng.randint(0, lv["codebook_size"], (a.batch, h // lv["factor"], w // lv["factor"]))
        for lv in levels
    }

    calls = {}
    if "ort" in runtimes:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = a.threads
        so.add_session_config_entry("session.intra_op.allow_spinning", str(a.spin))
        sess = ort.InferenceSession(os.path.join(a.model, f"{a.part}.onnx"), so, providers=["CPUExecutionProvider"])
        feed = {"frames": frames} if a.part == "encoder" else {k: v.astype(np.int64) for k, v in grids.items()}
        calls["ort_python"] = lambda: sess.run(None, feed)
    if "eager" in runtimes:
        import torch
        import torch_reference as ref

        torch.set_num_threads(a.threads)
        ref.setup(a.weights, os.path.join(a.model, "manifest.json"), torch.float32)
        norm = manifest["normalization"]
        x = torch.from_numpy(frames).float()
        x = x / torch.tensor(norm["divisor"][:3]) - torch.tensor(norm["offset"][:3])
        x = (x / torch.tensor(norm["std"][:3])).permute(0, 3, 1, 2).contiguous()
        idx = {lv["name"]: torch.from_numpy(grids[lv["indices"]]) for lv in levels}

        def eager():
            with torch.inference_mode():
                return ref.encode(x) if a.part == "encoder" else ref.decode(idx)

        def threads(n, f):
            def call():
                torch.set_num_threads(n)
                return f()

            return call

        # Under load, eager with several OpenMP threads can be far slower than with one
        # (every op waits for all threads); time both so the comparison uses its best.
        calls["eager"] = threads(a.threads, eager)
        if a.threads > 1:
            calls["eager_1_thread"] = threads(1, eager)

    for f in calls.values():
        f()
    times = {k: [] for k in calls}
    for _ in range(a.iters):
        for k, f in calls.items():
            t = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t) / a.batch)
    out = {k: {"median_s_per_frame": statistics.median(v), "min_s_per_frame": min(v)} for k, v in times.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
