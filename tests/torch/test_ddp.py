#!/usr/bin/env python3
"""DDP on copro gives Gloo's parameters: a small MLP trained for 20 steps on 2 processes.

Each rank trains two identical models (same seed) on the same per-rank batches, one wrapped in
DistributedDataParallel over the copro default group and one over a Gloo group; small buckets make DDP
run several all-reduces in flight and chain on their futures (Work.get_future()). The parameters must
agree within a relative difference of 1e-5.

    test_ddp.py --nprocs 2 [--transport shm] [--steps 20]
"""
import argparse
import datetime
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import copro_torch


def train(rank, group, steps):
    """Trains the MLP with DDP over `group`; returns its parameters."""
    torch.manual_seed(0)  # the same initial model on every rank and for both backends
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    ddp = DDP(model, process_group=group, bucket_cap_mb=0.01)  # ~2.5k floats per bucket: several buckets
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    data = torch.Generator().manual_seed(1000 + rank)  # each rank its own batches
    for _ in range(steps):
        x = torch.randn(16, 32, generator=data)
        y = torch.randn(16, 8, generator=data)
        loss = nn.functional.mse_loss(ddp(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def run_rank(rank, world, init_method, transport, steps):
    copro_torch.set_transport(transport)
    dist.init_process_group("copro", init_method=init_method, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    gloo = dist.new_group(backend="gloo")
    ours = train(rank, dist.group.WORLD, steps)
    theirs = train(rank, gloo, steps)
    worst = 0.0
    for a, b in zip(ours, theirs):
        rel = ((a - b).abs() / b.abs().clamp_min(1e-6)).max().item()
        worst = max(worst, rel)
    assert worst <= 1e-5, f"rank {rank}: DDP on copro differs from Gloo: max relative difference {worst:.3g}"
    # Every rank holds the same model.
    flat = torch.cat([p.flatten() for p in ours])
    first = flat.clone()
    dist.broadcast(first, src=0)
    assert torch.equal(flat, first), f"rank {rank}: the replicas diverged"
    if rank == 0:
        print(f"test_ddp: {world} ranks, {steps} steps on {copro_torch.transport_of()}: max relative "
              f"difference to Gloo {worst:.3g}", flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--transport", default="shm")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        init = "file://" + os.path.join(tmp, "store")
        mp.spawn(run_rank, args=(args.nprocs, init, args.transport, args.steps), nprocs=args.nprocs)


if __name__ == "__main__":
    sys.exit(main())
