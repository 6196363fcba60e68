#!/usr/bin/env python3
"""torch.distributed.all_reduce of float32 on copro and on Gloo, in the same run, as a table.

Spawns the ranks (torch.multiprocessing, FileStore), creates a copro group and a Gloo group over them,
and times sum all-reduces of 8 B (latency) and 1 KiB to 64 MiB per rank on each, in place, as
nccl-tests does: time per call is the slowest rank's mean over the timed calls; busbw = S/t * 2(p-1)/p
(GB = 1e9). With --repeat R the whole sweep runs R times and each cell is the median. The last column is
copro's bandwidth over Gloo's.

    PYTHONPATH=build/bindings/torch/python python3 bench/torch_allreduce.py --nprocs 2,4 --repeat 3
"""
import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import copro_torch


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B")
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def sizes_of(args):
    sizes = [8] if args.latency else []
    s = parse_size(args.begin)
    while s <= parse_size(args.end):
        sizes.append(s)
        s *= args.factor
    return sizes


def time_allreduce(t, group, iters, warmup):
    """Mean seconds per all_reduce on this rank, after `warmup` untimed calls."""
    for _ in range(warmup):
        dist.all_reduce(t, group=group)
    dist.barrier(group=group)
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(t, group=group)
    return (time.perf_counter() - start) / iters


def sweep(rank, world, groups, sizes):
    """{backend: {size: seconds}} where seconds is the slowest rank's mean."""
    results = {name: {} for name in groups}
    for size in sizes:
        t = torch.ones(max(1, size // 4), dtype=torch.float32)
        iters = max(5, min(200, (256 << 20) // (size * world)))
        for name, group in groups.items():
            mine = torch.tensor([time_allreduce(t, group, iters, warmup=max(2, iters // 10))], dtype=torch.float64)
            dist.all_reduce(mine, op=dist.ReduceOp.MAX, group=groups["gloo"])
            results[name][size] = mine.item()
    return results


def fmt_size(n):
    for unit, scale in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def report(world, runs, sizes):
    bus = 2 * (world - 1) / world
    print(f"\nall_reduce float32 sum, {world} processes on {runs[0]['transport']}, median of {len(runs)} run(s)")
    print(f"{'bytes':>7} {'copro us':>10} {'copro GB/s':>11} {'gloo us':>10} {'gloo GB/s':>10} {'ratio':>7}")
    for size in sizes:
        c = statistics.median(r["copro"][size] for r in runs)
        g = statistics.median(r["gloo"][size] for r in runs)
        cbw, gbw = size / c * bus / 1e9, size / g * bus / 1e9
        print(f"{fmt_size(size):>7} {c * 1e6:>10.1f} {cbw:>11.3f} {g * 1e6:>10.1f} {gbw:>10.3f} {g / c:>6.2f}x")
    sys.stdout.flush()


def run_rank(rank, world, init_method, args, queue):
    copro_torch.set_transport(args.transport)
    dist.init_process_group("copro", init_method=init_method, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=600))
    groups = {"copro": dist.group.WORLD, "gloo": dist.new_group(backend="gloo")}
    sizes = sizes_of(args)
    for _ in range(args.repeat):
        results = sweep(rank, world, groups, sizes)
        if rank == 0:
            results["transport"] = copro_torch.transport_of()
            queue.put(results)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nprocs", default="2,4", help="comma-separated process counts")
    ap.add_argument("-b", "--begin", default="1K")
    ap.add_argument("-e", "--end", default="64M")
    ap.add_argument("-f", "--factor", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="runs per process count; cells are medians")
    ap.add_argument("--transport", default="auto")
    ap.add_argument("--no-latency", dest="latency", action="store_false", help="omit the 8 B row")
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min), "
          f"{os.cpu_count()} cores, torch {torch.__version__}")
    ctx = mp.get_context("spawn")
    for world in (int(n) for n in args.nprocs.split(",")):
        queue = ctx.SimpleQueue()
        with tempfile.TemporaryDirectory() as tmp:
            init = "file://" + os.path.join(tmp, "store")
            mp.spawn(run_rank, args=(world, init, args, queue), nprocs=world)
        runs = [queue.get() for _ in range(args.repeat)]
        report(world, runs, sizes_of(args))
    print(f"\nload at the end: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
