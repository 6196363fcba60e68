#!/usr/bin/env python3
"""A small nccl-tests-compatible parser, for ctest: runs copro-perf and reads its table the way nccl-tests
parsers do (whitespace-separated fields at nccl-tests' positions: size count type redop root, then time algbw
busbw #wrong out of place, then in place), and checks every field against the request, plus the footer.

  nccl_tests_parse.py --ranks P --sizes 1024,4096 [--types float] [--redops sum] [--root -1]
                      [--extra-columns N] -- COPRO_PERF ARGS...
"""
import argparse
import re
import subprocess
import sys

TYPE_SIZES = {"int8": 1, "uint8": 1, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "half": 2, "float": 4,
              "double": 8, "bfloat16": 2, "f8e4m3": 1, "f8e5m2": 1}
PER_BLOCK = {"allgather", "reducescatter", "alltoall", "gather", "scatter"}
HEADER = ["#", "size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw",
          "busbw", "#wrong"]


def bus_factor(coll, p):
    if coll == "allreduce":
        return 2.0 * (p - 1) / p
    return (p - 1) / p if coll in PER_BLOCK else 1.0


def close(got, want, rel, absolute):
    return abs(got - want) <= absolute + rel * abs(want)


class Checker:
    def __init__(self, args):
        self.a = args
        self.errors = []

    def fail(self, msg, line=""):
        self.errors.append(msg + (" in: " + line if line else ""))

    def expected_rows(self, coll):
        rows = []
        for t in self.a.types.split(","):
            for op in self.a.redops.split(","):
                for req in (int(s) for s in self.a.sizes.split(",")):
                    es = TYPE_SIZES[t]
                    count = req // es // (self.a.ranks if coll in PER_BLOCK else 1)
                    size = count * es * (self.a.ranks if coll in PER_BLOCK else 1)
                    rows.append((size, count, t, op))
        return rows

    def check_row(self, f, want, factor, line):
        size, count, t, op = want
        if int(f[0]) != size or int(f[1]) != count:
            self.fail(f"size/count {f[0]}/{f[1]}, expected {size}/{count}", line)
        if f[2] != t or f[3] != op or f[4] != self.a.root:
            self.fail(f"type/redop/root {f[2]}/{f[3]}/{f[4]}, expected {t}/{op}/{self.a.root}", line)
        buses = []
        for base in (5, 9):  # out-of-place, in-place: time algbw busbw #wrong
            time, algbw, busbw, wrong = float(f[base]), float(f[base + 1]), float(f[base + 2]), f[base + 3]
            if time <= 0:
                self.fail(f"time {time} <= 0", line)
                continue
            if not close(algbw, size / 1e9 / (time * 1e-6), 0.02, 0.011):
                self.fail(f"algbw {algbw} is not size/time = {size / 1e3 / time:.3f}", line)
            if not close(busbw, algbw * factor, 0.01, 0.011):
                self.fail(f"busbw {busbw} is not algbw x {factor:.3f} = {algbw * factor:.3f}", line)
            if wrong != "0":
                self.fail(f"#wrong {wrong}", line)
            buses.append(busbw)
        return buses

    def run(self, out, coll):
        lines = out.splitlines()
        header = [l.split() for l in lines if l.startswith("#") and " size " in l and " count " in l]
        if not header or header[0][:14] != HEADER:
            self.fail("no nccl-tests header line '# size count type redop root time algbw busbw #wrong ...'")
        rows = [l for l in lines if l.strip() and not l.startswith("#")]
        want = self.expected_rows(coll)
        if len(rows) != len(want):
            self.fail(f"{len(rows)} rows, expected {len(want)}")
        factor = bus_factor(coll, self.a.ranks)
        buses = []
        for line, w in zip(rows, want):
            f = line.split()
            if len(f) != 13 + self.a.extra_columns:
                self.fail(f"{len(f)} fields, expected {13 + self.a.extra_columns}", line)
                continue
            buses += self.check_row(f, w, factor, line)
        self.check_footer(lines, buses)

    def check_footer(self, lines, buses):
        oob = [l for l in lines if re.fullmatch(r"# Out of bounds values : (\d+) (OK|FAILED)", l)]
        avg = [re.fullmatch(r"# Avg bus bandwidth    : (\S+) ", l) for l in lines]
        avg = [m for m in avg if m]
        if len(oob) != 1 or oob[0] != "# Out of bounds values : 0 OK":
            self.fail(f"footer: expected one '# Out of bounds values : 0 OK', got {oob}")
        if len(avg) != 1:
            self.fail("footer: expected one '# Avg bus bandwidth    : X ' line")
        elif buses and not close(float(avg[0].group(1)), sum(buses) / len(buses), 0.01, 0.011):
            self.fail(f"footer: Avg bus bandwidth {avg[0].group(1)} is not the mean busbw {sum(buses) / len(buses):.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--sizes", required=True, help="requested sizes in bytes, comma-separated")
    ap.add_argument("--types", default="float")
    ap.add_argument("--redops", default="sum")
    ap.add_argument("--root", default="-1")
    ap.add_argument("--extra-columns", type=int, default=0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    print(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(f"FAIL: copro-perf exited with {proc.returncode}")
        return 1
    coll = next((c for c in cmd[1:] if not c.startswith("-")), "allreduce")
    checker = Checker(a)
    checker.run(proc.stdout, coll)
    for e in checker.errors:
        print("FAIL: " + e)
    if not checker.errors:
        print("OK: every field of every row and the footer parse as nccl-tests'")
    return 1 if checker.errors else 0


if __name__ == "__main__":
    sys.exit(main())
