#!/usr/bin/env python3
"""Fault-injection suite (docs/faults.md): for each backend and launch mode, start a job of
copro_fault_rank processes looping over all-reduces, kill -9 or kill -STOP one random rank inside the loop,
and check that every survivor fails naming the victim, that the job is over within 2 x COPRO_TIMEOUT of
the injection, that no process aborted (SIGABRT, UCX's "Fatal"), and that no /dev/shm segment of the job
is left. Prints one table row per case; exits 1 when any run failed. Harness options are plain flags
(no COPRO_* variables of its own)."""
import argparse
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CASES = [  # backend, launch, signal
    ("shm", "env", "KILL"), ("shm", "env", "STOP"), ("shm", "mpirun", "KILL"), ("shm", "mpirun", "STOP"),
    ("ucx", "env", "KILL"), ("ucx", "env", "STOP"), ("ucx", "mpirun", "KILL"), ("ucx", "mpirun", "STOP"),
    ("mpi", "mpirun", "KILL"), ("mpi", "mpirun", "STOP"),
]
READY_WAIT_S = 60.0
GRACE_S = 0.5  # process exit and mpirun's own teardown, on top of 2 x COPRO_TIMEOUT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_env(backend, timeout):
    env = dict(os.environ)
    env["COPRO_TIMEOUT"] = str(timeout)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    if backend == "ucx":
        env["UCX_TLS"] = "tcp,self"  # the setting: UCX over TCP
    return env


def read_lines(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def ready_pids(lines):
    """rank -> pid from the READY lines."""
    out = {}
    for line in lines:
        p = line.split()
        if len(p) == 5 and p[0] == "READY" and p[1] == "rank" and p[3] == "pid":
            out[int(p[2])] = int(p[4])
    return out


def error_lines(lines):
    """rank -> copro's message from the ERROR lines."""
    out = {}
    for line in lines:
        if line.startswith("ERROR rank "):
            head, _, msg = line.partition(": ")
            out[int(head.split()[2])] = msg
    return out


def blamed_ranks(msg):
    """Ranks a message blames, in order: every "rank R" and "ranks R, S" but the reporter's own "on rank R"
    and the ranks a stall report heard from ("messages of this call arrived from ranks R, S only")."""
    out = []
    for m in re.finditer(r"(?<!on )(?<!from )\branks? ([\d, and]+)", msg):
        for x in re.findall(r"\d+", m.group(1)):
            if int(x) not in out:
                out.append(int(x))
    return out


def names_only(msg, victim):
    """The message blames the victim first: the cause, before what followed from it."""
    b = blamed_ranks(msg)
    return bool(b) and b[0] == victim


def shm_left(rank0_pid):
    prefix = f"copro-{rank0_pid}-"
    try:
        return [e for e in os.listdir("/dev/shm") if e.startswith(prefix)]
    except OSError:
        return []


def kill_quietly(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def run_env(args, backend, sig, rng, tmp):
    n, timeout = args.ranks, args.timeout
    env = job_env(backend, timeout)
    env["COPRO_ROOT_ADDR"] = f"127.0.0.1:{free_port()}"
    env["COPRO_WORLD_SIZE"] = str(n)
    env["COPRO_BOOTSTRAP_TOKEN"] = secrets.token_hex(16)
    procs, outs = [], []
    for r in range(n):
        e = dict(env)
        e["COPRO_RANK"] = str(r)
        path = os.path.join(tmp, f"rank{r}.out")
        outs.append(path)
        with open(path, "w") as f:
            procs.append(subprocess.Popen([args.bin, backend], env=e, stdout=f, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + READY_WAIT_S
        pids = {}
        while len(pids) < n and time.monotonic() < deadline:
            pids = {}
            for p in outs:
                pids.update(ready_pids(read_lines(p)))
            if any(pr.poll() is not None for pr in procs):
                break
            time.sleep(0.02)
        if len(pids) < n:
            return {"ok": False, "why": "not every rank reached the loop: " + " | ".join(
                " / ".join(read_lines(p)[-2:]) for p in outs)}
        victim = rng.randrange(n)
        os.kill(procs[victim].pid, signal.SIGKILL if sig == "KILL" else signal.SIGSTOP)
        t0 = time.monotonic()
        exit_s = {}
        limit = 2 * timeout + GRACE_S
        while len(exit_s) < n - 1 and time.monotonic() - t0 < limit + 5:
            for r, pr in enumerate(procs):
                if r != victim and r not in exit_s and pr.poll() is not None:
                    exit_s[r] = time.monotonic() - t0
            time.sleep(0.005)
        for pr in procs:
            if pr.poll() is None:
                kill_quietly(pr.pid)
            pr.wait()
        lines = {r: read_lines(p) for r, p in enumerate(outs)}
        errs = {}
        for r in range(n):
            errs.update(error_lines(lines[r]))
        return judge(n, victim, timeout, exit_s, {r: procs[r].returncode for r in range(n)}, errs,
                     "\n".join(sum(lines.values(), [])), shm_left(pids[0]), every_survivor=True)
    finally:
        for pr in procs:
            if pr.poll() is None:
                kill_quietly(pr.pid)
                pr.wait()


def run_mpirun(args, backend, sig, rng, tmp):
    n, timeout = args.ranks, args.timeout
    env = job_env(backend, timeout)
    cmd = [args.mpirun, "-np", str(n), "--oversubscribe", "-x", "COPRO_TIMEOUT"]
    if backend == "ucx":
        cmd += ["-x", "UCX_TLS"]
    cmd += [args.bin, backend]
    path = os.path.join(tmp, "job.out")
    with open(path, "w") as f:
        job = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    pids = {}
    try:
        deadline = time.monotonic() + READY_WAIT_S
        while len(pids) < n and time.monotonic() < deadline and job.poll() is None:
            pids = ready_pids(read_lines(path))
            time.sleep(0.02)
        if len(pids) < n:
            return {"ok": False, "why": "not every rank reached the loop: " + " / ".join(read_lines(path)[-3:])}
        victim = rng.randrange(n)
        os.kill(pids[victim], signal.SIGKILL if sig == "KILL" else signal.SIGSTOP)
        t0 = time.monotonic()
        limit = 2 * timeout + GRACE_S
        try:
            job.wait(timeout=limit + 5)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - t0
        if job.poll() is None:
            job.kill()
            job.wait()
        text = "\n".join(read_lines(path))
        exit_s = {r: took for r in range(n) if r != victim}
        errs = error_lines(text.splitlines())
        # A stopped mpi rank: the survivors only time out, and the remote engine names a peer it saw stopped
        # during the wait even once mpirun's teardown resumed it (SIGCONT), so every survivor that printed
        # must name the victim. Elsewhere survivors may describe mpirun's teardown (teardown_view).
        aborter = None if (backend, sig) == ("mpi", "STOP") else first_aborter(text)
        return judge(n, victim, timeout, exit_s, {}, errs, text, shm_left(pids[0]), every_survivor=False,
                     aborter=aborter)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        for pid in pids.values():
            kill_if_rank(pid, args.bin)


def kill_if_rank(pid, binary):
    """SIGKILL a rank that mpirun may have left behind, only while `pid` is still a process running `binary`:
    mpirun usually reaped its ranks already, and the pid may since belong to an unrelated process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return
    if os.path.basename(argv0) == os.path.basename(binary):
        kill_quietly(pid)


def first_aborter(text):
    """The rank whose MPI_Abort ended an mpirun job: Open MPI's banner names it; without the banner (mpirun
    does not always print it before the job is gone), the rank of the first ERROR line (it printed, then
    called MPI_Abort, before anything else could fail)."""
    m = re.search(r"MPI_ABORT was invoked on rank (\d+)", text)
    if m:
        return int(m.group(1))
    for line in text.splitlines():
        if line.startswith("ERROR rank "):
            return int(line.split()[2].rstrip(":"))
    return None


def teardown_view(msg, victim, aborter):
    """Under mpirun, what a survivor other than `aborter` may print once `aborter`'s MPI_Abort started
    mpirun's teardown (SIGCONT to a stopped rank, then SIGTERM to all): the victim, the aborter (killed
    first) or nobody (the stopped victim was resumed before this rank looked)."""
    b = blamed_ranks(msg)
    return not b or b[0] in (victim, aborter)


def judge(n, victim, timeout, exit_s, codes, errs, text, left, every_survivor, aborter=None):
    """Every survivor named the victim (under mpirun: the survivor whose MPI_Abort ended the job must, and
    the others that got to print may instead describe mpirun's teardown, teardown_view), exited in time,
    none aborted, nothing left in /dev/shm."""
    limit = 2 * timeout + GRACE_S
    survivors = [r for r in range(n) if r != victim]
    problems = []
    late = [r for r in survivors if exit_s.get(r, 1e9) > limit]
    if late:
        problems.append(f"ranks {late} not gone within {limit:.1f} s")
    teardown = aborter is not None and aborter != victim and not every_survivor
    wrong = {r: m for r, m in errs.items() if r != victim and not names_only(m, victim) and
             not (teardown and r != aborter and teardown_view(m, victim, aborter))}
    if wrong:
        problems.append(f"messages not naming rank {victim}: {wrong}")
    named = [r for r in survivors if r in errs and names_only(errs[r], victim)]
    if every_survivor and len(named) < len(survivors):
        problems.append(f"only ranks {named} of {survivors} reported naming rank {victim}")
    if not every_survivor and not named and "exited on signal 9" not in text and "exited on signal" not in text:
        problems.append("no survivor reported the failure")
    bad_codes = {r: c for r, c in codes.items() if r != victim and c != 3}
    if bad_codes:
        problems.append(f"exit codes {bad_codes} (expected 3)")
    if "Fatal" in text or "SIGABRT" in text or "signal 6" in text or any(c == -6 for c in codes.values()):
        fatal = [line for line in text.splitlines() if "Fatal" in line or "Assertion" in line or "abort" in line]
        problems.append("a process aborted" + (": " + fatal[0][:300] if fatal else ""))
    if left:
        problems.append(f"left in /dev/shm: {left}")
    worst = max(exit_s.values()) if exit_s else float("nan")
    return {"ok": not problems, "why": "; ".join(problems), "worst": worst, "named": len(named),
            "survivors": len(survivors), "abort": any(p.startswith("a process aborted") for p in problems), "leak": len(left)}


def keep_outputs(tmp, dest):
    """Copies a failed run's output files (one per rank, or mpirun's) to `dest` for a post-mortem."""
    os.makedirs(dest, exist_ok=True)
    for entry in os.listdir(tmp):
        shutil.copy(os.path.join(tmp, entry), dest)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True, help="copro_fault_rank")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--runs", type=int, default=2, help="runs per case")
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=2.0, help="COPRO_TIMEOUT of the jobs (seconds)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cases", default="", help="comma-separated filters, e.g. shm,ucx-env-STOP")
    ap.add_argument("--backends", default="", help="the backends this build has (default: shm,ucx,mpi)")
    ap.add_argument("--keep-failed", default="", help="copy each failed run's output files into this folder")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    have = set((args.backends or "shm,ucx,mpi").split(","))
    filters = [f for f in args.cases.split(",") if f]
    print(f"fault suite: seed {seed}, {args.runs} run(s) per case, {args.ranks} ranks, COPRO_TIMEOUT={args.timeout}")
    print("| backend | launch | signal | runs | passed | survivors naming the victim | worst exit after injection (s) "
          "| aborts | segments left |")
    print("|---|---|---|---|---|---|---|---|---|")
    failed = 0
    for backend, launch, sig in CASES:
        name = f"{backend}-{launch}-{sig}"
        if backend not in have:
            print(f"| {backend} | {launch} | {sig} | skipped: backend not built | | | | | |")
            continue
        if filters and not any(f in name for f in filters):
            continue
        passed, named, surv, worst, aborts, leaks, whys = 0, 0, 0, 0.0, 0, 0, []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="copro-fault-") as tmp:
                res = (run_env if launch == "env" else run_mpirun)(args, backend, sig, rng, tmp)
                if not res["ok"] and args.keep_failed:
                    keep_outputs(tmp, os.path.join(args.keep_failed, f"{name}-run{len(whys)}"))
            passed += 1 if res["ok"] else 0
            named += res.get("named", 0)
            surv += res.get("survivors", 0)
            worst = max(worst, res.get("worst", 0.0))
            aborts += 1 if res.get("abort") else 0
            leaks += res.get("leak", 0)
            if not res["ok"]:
                whys.append(res["why"])
        failed += args.runs - passed
        print(f"| {backend} | {launch} | {sig} | {args.runs} | {passed} | {named} of {surv} | {worst:.2f} | {aborts} "
              f"| {leaks} |", flush=True)
        for w in whys[:3]:
            print(f"  failure: {w[:600]}", flush=True)
    print(f"fault suite: {'PASSED' if failed == 0 else f'{failed} run(s) FAILED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
