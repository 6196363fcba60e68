#!/usr/bin/env python3
"""Every torch.distributed op on the copro backend against Gloo's result (or a float64 reference).

Each rank runs the op twice on the same inputs: once on the default group (copro) and once on a Gloo
group over the same ranks, and compares. Where torch 1.13's Gloo lacks the op (AVG, reduce_scatter,
_allgather_base / all_gather_into_tensor, _reduce_scatter_base) or the dtype (bfloat16), the reference
is computed in float64 from every rank's inputs, which each rank regenerates from the seeds. Values are
small integers, so sums, products and averages are exact in every dtype and results must match exactly.
Also checks: non-contiguous tensors, Work.get_future(), batch_isend_irecv, and that unsupported ops and
dtypes raise an exception naming them and what to use.

    test_ops.py --nprocs 2 --transport shm          # spawns the ranks (torch.multiprocessing, FileStore)
    mpirun -np 2 test_ops.py --transport mpi --quick  # ranks from mpirun
"""
import argparse
import datetime
import os
import sys
import tempfile
import time
import warnings

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import copro_torch

warnings.filterwarnings("ignore", message=".*will be deprecated")  # torch 1.13 on the *_coalesced ops

DTYPES = [torch.int8, torch.uint8, torch.int32, torch.int64, torch.float16, torch.bfloat16, torch.float32,
          torch.float64]
REDUCE_OPS = {"sum": dist.ReduceOp.SUM, "product": dist.ReduceOp.PRODUCT, "min": dist.ReduceOp.MIN,
              "max": dist.ReduceOp.MAX}
SIZES = [1, 7, 1000, 70001]  # 70001 float64 elements: more than one 256 KiB block / 1 MiB chunk step


def values(rank, n, dtype, seed, op="sum"):
    """Rank `rank`'s input: small integers (products stay below 2^4 on 4 ranks)."""
    g = torch.Generator().manual_seed(seed * 131 + rank)
    if op == "product":
        choices = torch.tensor([1, 2]) if dtype == torch.uint8 else torch.tensor([-1, 1, 2])
        v = choices[torch.randint(0, len(choices), (n,), generator=g)]
    else:
        low = 0 if dtype == torch.uint8 else -8
        v = torch.randint(low, 9, (n,), generator=g)
    return v.to(dtype)


def reference_reduce(world, n, dtype, seed, op):
    """float64 reduction of every rank's input, cast back (integers truncate toward zero, as copro)."""
    xs = torch.stack([values(r, n, dtype, seed, op).double() for r in range(world)])
    if op in ("sum", "avg"):
        out = xs.sum(0)
        if op == "avg":
            out = out / world
            if not dtype.is_floating_point:
                out = out.trunc()
    elif op == "product":
        out = xs.prod(0)
    elif op == "min":
        out = xs.min(0).values
    else:
        out = xs.max(0).values
    return out.to(dtype)


def check_equal(got, want, what):
    if got.dtype != want.dtype or got.shape != want.shape or not torch.equal(got, want):
        diff = (got.double() - want.double()).abs().max().item() if got.shape == want.shape else "shape"
        raise AssertionError(f"{what}: copro differs from the reference (max abs diff {diff})\n"
                             f"copro: {got.flatten()[:8]}\nwant:  {want.flatten()[:8]}")


def gloo_ran(fn):
    """Runs fn() (a Gloo call); False where torch 1.13's Gloo does not implement it for the dtype."""
    try:
        fn()
        return True
    except RuntimeError as e:
        if "Invalid scalar type" in str(e) or "not supported" in str(e) or "Unsupported" in str(e):
            return False
        raise


def test_all_reduce(rank, world, gloo, quick):
    sizes = SIZES[:3] if quick else SIZES
    seed = 0
    for dtype in DTYPES:
        for name, op in REDUCE_OPS.items():
            for n in sizes:
                seed += 1
                mine = values(rank, n, dtype, seed, name)
                got = mine.clone()
                dist.all_reduce(got, op=op)
                want = mine.clone()
                # bfloat16: torch 1.13's Gloo has no kernels for it.
                if dtype == torch.bfloat16 or not gloo_ran(lambda: dist.all_reduce(want, op=op, group=gloo)):
                    want = reference_reduce(world, n, dtype, seed, name)
                check_equal(got, want, f"all_reduce {name} {dtype} n={n}")
        # AVG: Gloo in torch 1.13 lacks it; float64 reference.
        got = values(rank, 1000, dtype, 5)
        dist.all_reduce(got, op=dist.ReduceOp.AVG)
        check_equal(got, reference_reduce(world, 1000, dtype, 5, "avg"), f"all_reduce avg {dtype}")


def test_rooted(rank, world, gloo):
    for dtype in (torch.float32, torch.int64, torch.bfloat16, torch.bool, torch.int16):
        for root in range(world):
            t = values(rank, 999, torch.int64, root).to(dtype)
            ref = t.clone()
            dist.broadcast(t, src=root)
            if not gloo_ran(lambda: dist.broadcast(ref, src=root, group=gloo)):  # bfloat16, ...
                ref = values(root, 999, torch.int64, root).to(dtype)
            check_equal(t, ref, f"broadcast {dtype} root {root}")
    for dtype in (torch.float32, torch.int32, torch.float16):
        root = world - 1
        mine = values(rank, 513, dtype, 9)
        got, want = mine.clone(), mine.clone()
        dist.reduce(got, dst=root, op=dist.ReduceOp.MAX)
        dist.reduce(want, dst=root, op=dist.ReduceOp.MAX, group=gloo)
        if rank == root:
            check_equal(got, want, f"reduce max {dtype}")
    # gather / scatter (Gloo implements both).
    mine = values(rank, 33, torch.float32, 3)
    outs = [torch.empty_like(mine) for _ in range(world)] if rank == 0 else None
    refs = [torch.empty_like(mine) for _ in range(world)] if rank == 0 else None
    dist.gather(mine, outs, dst=0)
    dist.gather(mine, refs, dst=0, group=gloo)
    if rank == 0:
        for a, b in zip(outs, refs):
            check_equal(a, b, "gather")
    chunks = [values(r, 17, torch.int32, 4) for r in range(world)] if rank == 1 else None
    got, want = torch.empty(17, dtype=torch.int32), torch.empty(17, dtype=torch.int32)
    dist.scatter(got, chunks, src=1)
    dist.scatter(want, chunks, src=1, group=gloo)
    check_equal(got, want, "scatter")


def test_gathers(rank, world, gloo):
    for dtype in (torch.float32, torch.float16, torch.int8, torch.bfloat16):
        mine = values(rank, 4097, dtype, 11)
        outs = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(outs, mine)
        expect = [values(r, 4097, dtype, 11) for r in range(world)]
        for r in range(world):
            check_equal(outs[r], expect[r], f"all_gather {dtype} block {r}")
        if dtype != torch.bfloat16:
            refs = [torch.empty_like(mine) for _ in range(world)]
            dist.all_gather(refs, mine, group=gloo)
            for r in range(world):
                check_equal(outs[r], refs[r], f"all_gather {dtype} vs gloo")
        # all_gather_into_tensor (_allgather_base): not in torch 1.13's Gloo; reference from the seeds.
        flat = torch.empty(world * 4097, dtype=dtype)
        dist.all_gather_into_tensor(flat, mine)
        check_equal(flat, torch.cat(expect), f"all_gather_into_tensor {dtype}")
    # all_gather_coalesced: Gloo implements it.
    ins = [values(rank, 5, torch.float32, 1), values(rank, 9, torch.float32, 2)]
    outs = [[torch.empty_like(t) for t in ins] for _ in range(world)]
    refs = [[torch.empty_like(t) for t in ins] for _ in range(world)]
    dist.all_gather_coalesced(outs, ins)
    dist.all_gather_coalesced(refs, ins, group=gloo)
    for r in range(world):
        for a, b in zip(outs[r], refs[r]):
            check_equal(a, b, "all_gather_coalesced")


def test_reduce_scatter(rank, world):
    for dtype in (torch.float32, torch.bfloat16, torch.int32, torch.float64):
        for name, op in (("sum", dist.ReduceOp.SUM), ("max", dist.ReduceOp.MAX), ("avg", dist.ReduceOp.AVG)):
            n = 777
            full = values(rank, n * world, dtype, 21, name)
            want = reference_reduce(world, n * world, dtype, 21, name)[rank * n:(rank + 1) * n]
            out = torch.empty(n, dtype=dtype)
            dist.reduce_scatter_tensor(out, full, op=op)
            check_equal(out, want, f"reduce_scatter_tensor {name} {dtype}")
            out = torch.empty(n, dtype=dtype)
            dist.reduce_scatter(out, list(full.chunk(world)), op=op)
            check_equal(out, want, f"reduce_scatter {name} {dtype}")


def test_all_to_all(rank, world, gloo):
    for dtype in (torch.float32, torch.int64, torch.float16):
        inp = values(rank, 6 * world, dtype, 31).reshape(world * 3, 2)
        got, want = torch.empty_like(inp), torch.empty_like(inp)
        dist.all_to_all_single(got, inp)
        dist.all_to_all_single(want, inp, group=gloo)
        check_equal(got, want, f"all_to_all_single {dtype}")
    # Uneven splits: rank r sends r + s + 1 rows to rank s.
    in_splits = [rank + s + 1 for s in range(world)]
    out_splits = [r + rank + 1 for r in range(world)]
    inp = values(rank, sum(in_splits) * 3, torch.float32, 41).reshape(-1, 3)
    got = torch.empty(sum(out_splits), 3)
    want = torch.empty(sum(out_splits), 3)
    dist.all_to_all_single(got, inp, out_splits, in_splits)
    dist.all_to_all_single(want, inp, out_splits, in_splits, group=gloo)
    check_equal(got, want, "all_to_all_single uneven")
    # The list form, with different sizes per peer (not in torch 1.13's Gloo: reference from the seeds).
    ins = [values(rank, rank + s + 2, torch.int32, 51 + s) for s in range(world)]
    outs = [torch.empty(r + rank + 2, dtype=torch.int32) for r in range(world)]
    dist.all_to_all(outs, ins)
    for r in range(world):
        check_equal(outs[r], values(r, r + rank + 2, torch.int32, 51 + rank), f"all_to_all list from {r}")


def test_p2p_and_misc(rank, world, gloo):
    dist.barrier()
    # send/recv in order: rank 0 sends to every rank, each receives.
    if rank == 0:
        for peer in range(1, world):
            dist.send(torch.full((100,), float(peer)), dst=peer)
    else:
        t = torch.empty(100)
        dist.recv(t, src=0)
        check_equal(t, torch.full((100,), float(rank)), "send/recv")
    # batch_isend_irecv around a ring (one copro group).
    right, left = (rank + 1) % world, (rank - 1) % world
    send = torch.arange(50, dtype=torch.float64) + rank
    recv = torch.empty(50, dtype=torch.float64)
    reqs = dist.batch_isend_irecv([dist.P2POp(dist.isend, send, right), dist.P2POp(dist.irecv, recv, left)])
    for r in reqs:
        r.wait()
    check_equal(recv, torch.arange(50, dtype=torch.float64) + left, "batch_isend_irecv")
    # all_reduce_coalesced against Gloo.
    ts = [values(rank, 10, torch.float32, 61), values(rank, 3, torch.float32, 62)]
    refs = [t.clone() for t in ts]
    dist.all_reduce_coalesced(ts)
    dist.all_reduce_coalesced(refs, group=gloo)
    for a, b in zip(ts, refs):
        check_equal(a, b, "all_reduce_coalesced")
    # Non-contiguous tensors are copied and written back.
    base = values(rank, 64 * 48, torch.float32, 71).reshape(64, 48)
    got, want = base.t(), base.clone().t()
    assert not got.is_contiguous()
    dist.all_reduce(got)
    dist.all_reduce(want, group=gloo)
    check_equal(got.contiguous(), want.contiguous(), "all_reduce non-contiguous")
    strided = values(rank, 200, torch.int64, 72)[::3]
    ref = strided.clone()
    dist.broadcast(strided, src=1)
    dist.broadcast(ref, src=1, group=gloo)
    check_equal(strided, ref, "broadcast strided")
    # get_future() (what DDP uses) resolves to the outputs.
    t = values(rank, 100, torch.float32, 81)
    fut = dist.all_reduce(t, async_op=True).get_future()
    (res,) = fut.wait()
    check_equal(res, reference_reduce(world, 100, torch.float32, 81, "sum"), "get_future")
    # Several calls in flight, waited in reverse order.
    ts = [values(rank, 1000 + i, torch.float32, 90 + i) for i in range(4)]
    works = [dist.all_reduce(t, async_op=True) for t in ts]
    for w in reversed(works):
        w.wait()
    for i, t in enumerate(ts):
        check_equal(t, reference_reduce(world, 1000 + i, torch.float32, 90 + i, "sum"), f"in flight {i}")
    # A call nobody waits for or observes still runs (the worker takes it after its hand-off delay): the
    # tensor is written without wait(), is_completed() or get_future().
    t = values(rank, 500, torch.float32, 95)
    want = reference_reduce(world, 500, torch.float32, 95, "sum")
    work = dist.all_reduce(t, async_op=True)
    deadline = time.monotonic() + 30
    while not torch.equal(t, want) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert torch.equal(t, want), "an async all_reduce nobody waited for did not complete within 30 s"
    work.wait()
    # Polling is_completed() alone finishes a call.
    t = values(rank, 700, torch.float32, 96)
    work = dist.all_reduce(t, async_op=True)
    deadline = time.monotonic() + 30
    while not work.is_completed():
        assert time.monotonic() < deadline, "is_completed() polling did not see the call finish within 30 s"
    check_equal(t, reference_reduce(world, 700, torch.float32, 96, "sum"), "is_completed polling")


def shm_mappings():
    """How many of this process's mappings are shared-memory segments (other processes do not count)."""
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if "/dev/shm/" in line)


def test_shared_tensors(rank, world):
    """copro_torch.empty: tensors in memory the group maps give the same results as private ones."""
    seed = 200
    for dtype in (torch.float32, torch.bfloat16, torch.int64):
        for n in (1, 1000, 300_000):
            seed += 1
            t = copro_torch.empty(n, dtype=dtype)
            assert t.shape == (n,) and t.dtype == dtype, (t.shape, t.dtype)
            t.copy_(values(rank, n, dtype, seed))
            dist.all_reduce(t)
            check_equal(t, reference_reduce(world, n, dtype, seed, "sum"), f"all_reduce of copro_torch.empty {dtype} n={n}")
    # A 2-D tensor, a view into it, and a gather from shared into shared memory.
    m = copro_torch.empty(64, 33)
    m.copy_(values(rank, 64 * 33, torch.float32, 300).view(64, 33))
    dist.all_reduce(m[8:])
    want = reference_reduce(world, 64 * 33, torch.float32, 300, "sum").view(64, 33)
    check_equal(m[8:], want[8:], "all_reduce of a view of copro_torch.empty")
    check_equal(m[:8], values(rank, 64 * 33, torch.float32, 300).view(64, 33)[:8], "rows outside the view")
    src = copro_torch.empty((5,), dtype=torch.int32).fill_(rank)
    out = copro_torch.empty(5 * world, dtype=torch.int32)
    dist.all_gather_into_tensor(out, src)
    check_equal(out, torch.arange(world, dtype=torch.int32).repeat_interleave(5), "all_gather into copro_torch.empty")
    assert copro_torch.empty(0).numel() == 0
    # Freed memory goes back to copro; allocating again many times must not grow without bound.
    del m, src, out
    before = shm_mappings()
    for _ in range(200):
        copro_torch.empty(1 << 16)
    after = shm_mappings()
    assert after <= before + 2, f"copro_torch.empty leaks shared memory: {before} -> {after} mappings of /dev/shm"
    expect_error(lambda: copro_torch.empty(1 << 41, dtype=torch.float64), "1 TiB")


def expect_error(fn, *needles):
    """fn() must raise an exception whose message contains every needle."""
    try:
        fn()
    except (RuntimeError, NotImplementedError, ValueError) as e:
        msg = str(e)
        missing = [n for n in needles if n not in msg]
        if missing:
            raise AssertionError(f"the error does not mention {missing}: {msg}") from e
        return
    raise AssertionError(f"no exception; expected one mentioning {needles}")


def test_errors(rank, world):
    expect_error(lambda: dist.all_reduce(torch.ones(4, dtype=torch.int32), op=dist.ReduceOp.BAND), "BAND", "SUM")
    expect_error(lambda: dist.all_reduce(torch.ones(4, dtype=torch.int16)), "int16", "torch.int32")
    expect_error(lambda: dist.all_reduce(torch.ones(4, dtype=torch.bool)), "bool", "MAX")
    expect_error(lambda: dist.reduce_scatter_tensor(torch.ones(2, dtype=torch.complex64),
                                                    torch.ones(2 * world, dtype=torch.complex64)), "complex64")
    expect_error(lambda: dist.send(torch.ones(2), dst=rank), "peer")
    # mpi without mpirun says so (when this build has the mpi transport).
    if "mpi" in copro_torch.transports() and "OMPI_COMM_WORLD_SIZE" not in os.environ:
        copro_torch.set_transport("mpi")
        try:
            expect_error(lambda: dist.new_group(backend="copro"), "mpirun")
        finally:
            copro_torch.set_transport("auto")
    # The group still works after the refused calls.
    t = torch.ones(3)
    dist.all_reduce(t)
    check_equal(t, torch.full((3,), float(world)), "all_reduce after errors")


def run_rank(rank, world, init_method, transport, quick):
    copro_torch.set_transport(transport)
    dist.init_process_group("copro", init_method=init_method, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    gloo = dist.new_group(backend="gloo")
    assert copro_torch.transport_of() == transport or transport == "auto", copro_torch.transport_of()
    test_all_reduce(rank, world, gloo, quick)
    test_rooted(rank, world, gloo)
    test_gathers(rank, world, gloo)
    test_reduce_scatter(rank, world)
    test_all_to_all(rank, world, gloo)
    test_p2p_and_misc(rank, world, gloo)
    test_shared_tensors(rank, world)
    if not quick:
        test_errors(rank, world)
    dist.barrier()
    if rank == 0:
        print(f"test_ops: {world} ranks on {copro_torch.transport_of()}: every op matches", flush=True)
    dist.destroy_process_group()


def spawned(rank, world, init_method, transport, quick):
    run_rank(rank, world, init_method, transport, quick)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nprocs", type=int, default=2, help="ranks to spawn (ignored under mpirun)")
    ap.add_argument("--transport", default="shm")
    ap.add_argument("--quick", action="store_true", help="fewer sizes, no error checks")
    ap.add_argument("--init-file", help="FileStore path shared by the ranks (mpirun)")
    args = ap.parse_args()
    if "OMPI_COMM_WORLD_SIZE" in os.environ:  # started by mpirun: one rank per process
        rank, world = int(os.environ["OMPI_COMM_WORLD_RANK"]), int(os.environ["OMPI_COMM_WORLD_SIZE"])
        run_rank(rank, world, "file://" + args.init_file, args.transport, args.quick)
        return
    with tempfile.TemporaryDirectory() as tmp:
        init = "file://" + os.path.join(tmp, "store")
        mp.spawn(spawned, args=(args.nprocs, init, args.transport, args.quick), nprocs=args.nprocs)


if __name__ == "__main__":
    sys.exit(main())
