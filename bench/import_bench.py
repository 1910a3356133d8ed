#!/usr/bin/env python3
"""Import benchmark: rosterd against sqlite3's own .import, in one run.

usage: bench/import_bench.py [--rows 200000] [--big 1000000] [--hash-rows 400] [--repeat 3]

Builds rosterd in release mode, generates the files with gen_users.py, and
prints a Markdown table (also written to bench/out/import.md). Every figure is
the best of --repeat runs on a fresh data directory unless marked otherwise.
"""
import argparse
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "rosterd"
GEN = ROOT / "bench" / "gen_users.py"


def run(cmd, **kw):
    """Run cmd; return (seconds, peak RSS of that child in MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    dt = time.perf_counter() - t
    if p.returncode not in (0, 3):
        sys.exit(f"{cmd} failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    # ru_maxrss of children is the max over all waited children; the probe
    # below runs RSS-sensitive commands in a fresh wrapper so it is per-command.
    return dt, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def peak_rss(cmd, cwd):
    """Peak RSS (MiB) of one command, measured by /usr/bin/time -f %M."""
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode not in (0, 3):
        sys.exit(f"{cmd} failed: {p.stderr.decode()[-2000:]}")
    return int(p.stderr.decode().strip().splitlines()[-1]) / 1024


class Rosterd:
    """A fresh rosterd data directory with one tenant and its schools."""

    def __init__(self, work):
        self.dir = pathlib.Path(tempfile.mkdtemp(dir=work))
        (self.dir / "rosterd.toml").write_text("[log]\nlevel = \"warn\"\n")
        self.cli("tenant", "add", "bench", "--admin-name", "Bench", "--admin-email", "bench@example.org")
        schools = self.dir / "schools.csv"
        schools.write_text("Name\n" + "".join(f"School {i}\n" for i in range(8)))
        self.cli("school", "import", "bench", str(schools))

    def cli(self, *args):
        subprocess.run([str(BIN), "--config", "rosterd.toml", *args], cwd=self.dir, check=True,
                       stdout=subprocess.DEVNULL)

    def import_cmd(self, path, *extra):
        return [str(BIN), "--config", "rosterd.toml", "import", "users", "bench", str(path), *extra]

    def time_import(self, path, *extra):
        return run(self.import_cmd(path, *extra), cwd=self.dir)[0]

    def close(self):
        shutil.rmtree(self.dir)


def sqlite_import(work, path):
    db = pathlib.Path(work) / "sqlite-import.db"
    if db.exists():
        db.unlink()
    return run(["sqlite3", str(db), ".mode csv", f".import {path} users"])[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--hash-rows", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if not shutil.which("sqlite3"):
        sys.exit("sqlite3 is needed: apt-get install sqlite3")
    subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=ROOT, check=True)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix="rosterd-bench-")
    try:
        base = pathlib.Path(work) / "users.csv"
        changed = pathlib.Path(work) / "users-changed.csv"
        big = pathlib.Path(work) / "users-big.csv"
        hashed = pathlib.Path(work) / "users-passwords.csv"
        subprocess.run([sys.executable, GEN, str(a.rows), str(base)], check=True)
        subprocess.run([sys.executable, GEN, str(a.rows), str(changed), "--variant", "1"], check=True)
        subprocess.run([sys.executable, GEN, str(a.big), str(big)], check=True)
        subprocess.run([sys.executable, GEN, str(a.hash_rows), str(hashed), "--passwords"], check=True)

        results = {}
        results["sqlite3 .import (empty table)"] = min(sqlite_import(work, base) for _ in range(a.repeat))
        first, same, touched, changed_t = [], [], [], []
        for _ in range(a.repeat):
            r = Rosterd(work)
            first.append(r.time_import(base))
            same.append(r.time_import(base))  # byte-identical: SHA-256 says unchanged
            touched.append(r.time_import(base, "--force"))  # every row compared, none changed
            changed_t.append(r.time_import(changed))  # every row updated
            r.close()
        results["rosterd first import"] = min(first)
        results["rosterd re-import, byte-identical file"] = min(same)
        results["rosterd re-import --force, no row changed"] = min(touched)
        results["rosterd re-import, every row changed"] = min(changed_t)

        r = Rosterd(work)
        big_rss = peak_rss(r.import_cmd(big), r.dir)
        r.close()

        hash_rates = {}
        for threads in ("1", str(os.cpu_count())):
            r = Rosterd(work)
            env = dict(os.environ, RAYON_NUM_THREADS=threads)
            t = run(r.import_cmd(hashed), cwd=r.dir, env=env)[0]
            hash_rates[threads] = a.hash_rows / t
            r.close()

        sq = results["sqlite3 .import (empty table)"]
        lines = [
            f"Import benchmark, {a.rows:,} rows ({base.stat().st_size / 2**20:.1f} MiB, no passwords); "
            f"best of {a.repeat}; {os.cpu_count()} cores.",
            "",
            "| what | seconds | vs sqlite3 .import |",
            "|---|---:|---:|",
        ]
        for name, t in results.items():
            lines.append(f"| {name} | {t:.3f} | {t / sq:.2f}x |")
        lines += [
            "",
            f"Peak RSS, first import of {a.big:,} rows ({big.stat().st_size / 2**20:.0f} MiB): {big_rss:.0f} MiB",
            "",
            f"Argon2id (m=19456 KiB, t=2, p=1) through a {a.hash_rows}-row import with passwords: "
            + ", ".join(f"{rate:.1f} hashes/s on {n} thread(s)" for n, rate in hash_rates.items()),
        ]
        text = "\n".join(lines) + "\n"
        print(text)
        (out / "import.md").write_text(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
