"""torch.distributed glue, run inside vqtok-train's embedded interpreter (lib.rs).

Tensors arrive from Rust as DLPack capsules (zero copy): wrap() turns one into a
torch.Tensor that aliases the tch tensor's memory, without autograd history, so every
collective here works in place on the trainer's own tensors.
"""

import datetime
import json
import os
import sys
import time

import torch
import torch.distributed as dist


def describe():
    return (
        f"python {sys.version.split()[0]} exe={sys.executable} prefix={sys.prefix} "
        f"torch {torch.__version__} at {os.path.dirname(torch.__file__)}"
    )


def init(backend, rank, world_size, local_rank, master_addr, master_port, timeout_s):
    """init_process_group over env:// (what torchrun provides; for Slurm the Rust side
    derives the values). Returns the seconds it took."""
    # torchrun already set these (and TORCHELASTIC_USE_AGENT_STORE, so ranks join the agent's
    # TCPStore instead of rank 0 binding MASTER_PORT itself); for Slurm they come from Rust.
    os.environ["RANK"] = str(rank)
    os.environ["WORLD_SIZE"] = str(world_size)
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["MASTER_ADDR"] = master_addr
    os.environ["MASTER_PORT"] = str(master_port)
    kwargs = {}
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        kwargs["device_id"] = device  # eager communicator creation: errors show up here
    t0 = time.perf_counter()
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        timeout=datetime.timedelta(seconds=timeout_s),
        **kwargs,
    )
    return time.perf_counter() - t0


def wrap(capsule):
    return torch.from_dlpack(capsule)


def broadcast_(t, src):
    dist.broadcast(t, src=src)


def all_reduce_mean_(t):
    if dist.get_backend() == "nccl":
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
    else:  # Gloo has no AVG
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(dist.get_world_size())


def all_reduce_sum_(t):
    dist.all_reduce(t, op=dist.ReduceOp.SUM)


def all_reduce_max_(t):
    dist.all_reduce(t, op=dist.ReduceOp.MAX)


def all_gather_str(text):
    """Every rank's `text`, in rank order (small values: loader positions, hashes)."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, text)
    return json.dumps(out)


def barrier():
    dist.barrier()


def destroy():
    dist.destroy_process_group()
