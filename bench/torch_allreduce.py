#!/usr/bin/env python3
"""torch.distributed.all_reduce of float32 on copro and on Gloo, in the same run, as a table.

Spawns the ranks (torch.multiprocessing, FileStore), creates a copro group and a Gloo group over them,
and times sum all-reduces of 8 B (latency) and 1 KiB to 64 MiB per rank on each, in place, as
nccl-tests does: time per call is the slowest rank's mean over the timed calls; busbw = S/t * 2(p-1)/p
(GB = 1e9). Three series: copro on tensors from torch.ones (private memory), copro on tensors from
copro_torch.empty (memory the group maps, "zero-copy"), and Gloo. With --repeat R the whole sweep runs R
times and each cell is the median. The ratios are copro's bandwidth over Gloo's; with --copro-perf PATH
the same process count also runs `mpirun copro-perf allreduce --transport shm` over the same sizes
(--repeat times, median) and the last column is copro_torch's zero-copy busbw over copro-perf's busbw
(the better of its out-of-place and in-place columns).

    PYTHONPATH=build/bindings/torch/python python3 bench/torch_allreduce.py --nprocs 2,4 --repeat 3 \
        --copro-perf build/bench/copro-perf
"""
import argparse
import datetime
import os
import statistics
import subprocess
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


# series name -> (group name, tensor factory)
SERIES = {
    "copro": ("copro", lambda n: torch.ones(n, dtype=torch.float32)),
    "shared": ("copro", lambda n: copro_torch.empty(n).fill_(1.0)),
    "gloo": ("gloo", lambda n: torch.ones(n, dtype=torch.float32)),
}


def sweep(rank, world, groups, sizes):
    """{series: {size: seconds}} where seconds is the slowest rank's mean."""
    results = {name: {} for name in SERIES}
    for size in sizes:
        iters = max(5, min(200, (256 << 20) // (size * world)))
        for name, (group_name, make) in SERIES.items():
            t = make(max(1, size // 4))
            group = groups[group_name]
            mine = torch.tensor([time_allreduce(t, group, iters, warmup=max(2, iters // 10))], dtype=torch.float64)
            dist.all_reduce(mine, op=dist.ReduceOp.MAX, group=groups["gloo"])
            results[name][size] = mine.item()
            del t
    return results


def copro_perf_busbw(path, world, args):
    """{size: busbw GB/s} of copro-perf's all-reduce on shm, the better of out of place and in place
    (median of --repeat runs)."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "-np", str(world), "--oversubscribe", path, "allreduce", "-b", args.begin, "-e", args.end,
           "-f", str(args.factor), "-c", "0", "--transport", "shm"]
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=True).stdout
        row = {}
        for line in out.splitlines():
            cols = line.split()
            # nccl-tests columns: size count type redop root, then time algbw busbw #wrong out of place and
            # the same in place; the better busbw of the two is the bar.
            if len(cols) >= 13 and cols[0].isdigit():
                row[int(cols[0])] = max(float(cols[7]), float(cols[11]))
        runs.append(row)
    return {size: statistics.median(r[size] for r in runs) for size in runs[0]}


def fmt_size(n):
    for unit, scale in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def report(world, runs, sizes, perf):
    bus = 2 * (world - 1) / world
    print(f"\nall_reduce float32 sum, {world} processes on {runs[0]['transport']}, median of {len(runs)} run(s);"
          " copro: torch.ones tensors, zero-copy: copro_torch.empty tensors")
    head = (f"{'bytes':>7} {'copro us':>9} {'GB/s':>7} {'zero-copy us':>12} {'GB/s':>7} {'gloo us':>9} {'GB/s':>7}"
            f" {'copro/gloo':>10} {'zc/gloo':>8}")
    print(head + (f" {'perf GB/s':>9} {'zc/perf':>8}" if perf else ""))
    for size in sizes:
        c, z, g = (statistics.median(r[name][size] for r in runs) for name in ("copro", "shared", "gloo"))
        cbw, zbw, gbw = (size / t * bus / 1e9 for t in (c, z, g))
        line = (f"{fmt_size(size):>7} {c * 1e6:>9.1f} {cbw:>7.3f} {z * 1e6:>12.1f} {zbw:>7.3f} {g * 1e6:>9.1f}"
                f" {gbw:>7.3f} {g / c:>9.2f}x {g / z:>7.2f}x")
        if perf and size in perf:
            line += f" {perf[size]:>9.3f} {zbw / perf[size]:>7.2f}x"
        print(line)
    sys.stdout.flush()


def call_overhead(calls):
    """Wall and CPU microseconds per 8 B all_reduce on a 1-rank copro group (median of 7 batches): what
    copro_torch adds around a call that moves nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group("copro", init_method="file://" + os.path.join(tmp, "store"), rank=0, world_size=1)
        t = copro_torch.empty(2).fill_(1.0)
        for _ in range(calls // 10):
            dist.all_reduce(t)
        wall, cpu = [], []
        for _ in range(7):
            w, c = time.perf_counter(), time.process_time()
            for _ in range(calls):
                dist.all_reduce(t)
            wall.append((time.perf_counter() - w) / calls)
            cpu.append((time.process_time() - c) / calls)
        dist.destroy_process_group()
    print(f"8 B all_reduce on a 1-rank group, {calls} calls x 7: {statistics.median(wall) * 1e6:.2f} us wall, "
          f"{statistics.median(cpu) * 1e6:.2f} us CPU per call (median)")


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
    ap.add_argument("--copro-perf", metavar="PATH", help="also run this copro-perf under mpirun (shm) and compare")
    ap.add_argument("--overhead", type=int, metavar="CALLS", help="only time CALLS calls on a 1-rank group (per-call cost)")
    args = ap.parse_args()
    if args.overhead:
        call_overhead(args.overhead)
        return 0
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min), "
          f"{os.cpu_count()} cores, torch {torch.__version__}")
    ctx = mp.get_context("spawn")
    for world in (int(n) for n in args.nprocs.split(",")):
        queue = ctx.SimpleQueue()
        with tempfile.TemporaryDirectory() as tmp:
            init = "file://" + os.path.join(tmp, "store")
            mp.spawn(run_rank, args=(world, init, args, queue), nprocs=world)
        runs = [queue.get() for _ in range(args.repeat)]
        perf = copro_perf_busbw(args.copro_perf, world, args) if args.copro_perf else None
        report(world, runs, sizes_of(args), perf)
    print(f"\nload at the end: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
