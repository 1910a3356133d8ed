#!/usr/bin/env python3
"""A first import of a users.csv where every row has a password, against its
floor: Argon2id at the same parameters over as many passwords on all cores,
with the argon2 crate alone (examples/argon2_floor.rs). Argon2 is the first
import's dominant cost, which the other import benchmarks (files without
passwords) never see. Goal: the import within 1.1x of the floor.

The two alternate (import, floor, import, floor, ...); each pair's ratio is
import time over floor time, and the result is the median of those ratios
(min-max). Both are timed as whole processes, by the wall clock (what a
district waits) and by the CPU time the kernel charged them (user + system,
from wait4): on a machine shared with other work the wall clock swings with
the neighbours' load, while CPU time still shows any work the import adds to
Argon2's.

usage: password_import.py --binary target/release/rosterd \
           --floor target/release/examples/argon2_floor [--rows 4000] [--pairs 3] [--out FILE]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import finish, head_commit, machine

GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen_users.py")


def timed(cmd, cwd=None):
    """(wall seconds, CPU seconds, standard output) of one command; the CPU
    time is what the kernel charged the finished child (RUSAGE_CHILDREN)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    p = subprocess.run(["timeout", "3600", *cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seconds = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}: {p.stderr.decode(errors='replace')[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, p.stdout.decode()


def import_round(binary, work, users, rows):
    """A first import of `users` into a fresh installation: its seconds."""
    d = tempfile.mkdtemp(dir=work)
    with open(os.path.join(d, "rosterd.toml"), "w") as f:
        f.write('[log]\nlevel = "warn"\n')
    cli = [binary, "--config", "rosterd.toml"]
    for args in (["init"],
                 ["tenant", "add", "bench", "--admin-name", "B", "--admin-email", "b@example.org"]):
        subprocess.run([*cli, *args], cwd=d, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(d, "schools.csv"), "w") as f:
        f.write("Name\n" + "".join(f"School {i}\n" for i in range(8)))
    subprocess.run([*cli, "school", "import", "bench", "schools.csv"], cwd=d, check=True,
                   stdout=subprocess.DEVNULL)
    seconds, cpu, report = timed([*cli, "import", "users", "bench", users], cwd=d)
    if f"{rows:,} created" not in report:
        sys.exit(f"FAIL: the import did not create every user:\n{report[:2000]}")
    return seconds, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--floor", required=True, help="the argon2_floor example, built --release")
    ap.add_argument("--commit")
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    commit = a.commit or head_commit()
    imports, floors = [], []
    with tempfile.TemporaryDirectory(prefix="rosterd-password-import-") as work:
        users = os.path.join(work, "users.csv")
        subprocess.run([sys.executable, GEN, str(a.rows), users, "--passwords"], check=True)
        for pair in range(a.pairs):
            imports.append(import_round(os.path.abspath(a.binary), work, users, a.rows))
            floors.append(timed([os.path.abspath(a.floor), str(a.rows)])[:2])
            print(f"pair {pair + 1}: import {imports[-1][0]:.2f} s ({imports[-1][1]:.2f} s CPU), "
                  f"floor {floors[-1][0]:.2f} s ({floors[-1][1]:.2f} s CPU), "
                  f"{imports[-1][0] / floors[-1][0]:.3f}x wall, {imports[-1][1] / floors[-1][1]:.3f}x CPU",
                  file=sys.stderr, flush=True)

    def column(runs, i):
        values = [r[i] for r in runs]
        return f"{statistics.median(values):.2f} | {min(values):.2f}–{max(values):.2f}"

    def ratios(i):
        values = [x[i] / y[i] for x, y in zip(imports, floors)]
        return statistics.median(values), f"**{statistics.median(values):.3f}x** ({min(values):.3f}–{max(values):.3f})"

    wall, wall_text = ratios(0)
    _, cpu_text = ratios(1)
    lines = [
        f"First import of {a.rows:,} rows, each with a password (gen_users.py --passwords), against "
        f"Argon2id alone at the same parameters (m=19456, t=2, p=1) on all cores for {a.rows:,} passwords "
        f"(examples/argon2_floor.rs); {a.pairs} pairs, import then floor; rosterd {commit}. {machine()}.",
        "",
        "| | wall, median s | min–max | CPU (user+sys), median s | min–max |",
        "|---|---:|---:|---:|---:|",
        f"| `rosterd import users` (first import) | {column(imports, 0)} | {column(imports, 1)} |",
        f"| Argon2id alone (floor) | {column(floors, 0)} | {column(floors, 1)} |",
        "",
        f"Import over floor, per pair: wall {wall_text}, CPU {cpu_text}; "
        f"goal ≤ 1.10x (wall): {'met' if wall <= 1.10 else 'NOT met'}.",
    ]
    finish(lines, a.out)


if __name__ == "__main__":
    main()
