#!/usr/bin/env python3
"""Import speed, compared honestly: sqlite3's own `.import` of the file, and
one or two rosterd builds, each round running every one of them once in turn,
the order rotating by one each round (A B C, B C A, C A B ...). Reported per case: the median of the per-round ratios
against `.import` (and of rosterd against the baseline build), with min-max.

    python3 bench/import_ab.py --binary target/release/rosterd \\
        --baseline /tmp/base/target/release/rosterd --baseline-commit d1bac18 \\
        --rows 200000 --rounds 5 --out bench/results/import-ab.md

Cases: a first import into an empty district, and a re-import where every
row changed. Each rosterd run gets a fresh data directory. Bounded: --rounds
rounds of 3 commands per binary, each under a timeout.

Also in every round, "SQLite alone": the sqlite3 shell inserting the same rows,
already staged in a table, into rosterd's own schema (its users table and
indexes, WAL, synchronous=NORMAL) in one transaction, with no parsing or
checking: the floor that rosterd's writer stage can approach but not pass
without a cheaper schema.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import finish, head_commit, machine

GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen_users.py")


def timed(cmd, cwd=None):
    return measured(cmd, cwd)[0]


def measured(cmd, cwd=None):
    """(seconds, peak RSS in MiB) of one command, the RSS from the kernel (wait4)."""
    start = time.monotonic()
    p = subprocess.Popen(["timeout", "600", *cmd], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.monotonic() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 3):
        sys.exit(f"FAIL: {' '.join(cmd)}: {err.decode(errors='replace')[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def init_database(binary, d):
    """`rosterd init` in `d`: builds since 2a47c46 create the database only
    there (or in `serve`); an older build being compared creates it at its
    first command."""
    if subprocess.run([binary, "init", "--help"], capture_output=True).returncode == 0:
        subprocess.run([binary, "--config", "rosterd.toml", "init"], cwd=d, check=True,
                       stdout=subprocess.DEVNULL)


def rosterd_round(binary, work, base, changed, measure=timed):
    """(first import, every-row-changed re-import) in a fresh directory, as `measure` gives them."""
    d = tempfile.mkdtemp(dir=work)
    with open(os.path.join(d, "rosterd.toml"), "w") as f:
        f.write('[log]\nlevel = "warn"\n')
    cli = [binary, "--config", "rosterd.toml"]
    init_database(binary, d)
    subprocess.run([*cli, "tenant", "add", "bench", "--admin-name", "B", "--admin-email", "b@example.org"],
                   cwd=d, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(d, "schools.csv"), "w") as f:
        f.write("Name\n" + "".join(f"School {i}\n" for i in range(8)))
    subprocess.run([*cli, "school", "import", "bench", "schools.csv"], cwd=d, check=True, stdout=subprocess.DEVNULL)
    first = measure([*cli, "import", "users", "bench", base], cwd=d)
    again = measure([*cli, "import", "users", "bench", changed], cwd=d)
    return first, again


FLOOR_INSERT = """PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768;
BEGIN;
INSERT INTO users (tenant_id, username, username_key, email, first_name, last_name, school_id,
    graduation_year, access_type, created_at, updated_at, created_run)
SELECT 1, "Username", lower("Username"), nullif("Email Address", ''), nullif("First Name", ''),
    nullif("Last Name", ''), 1, nullif("Graduation Year", ''), nullif("Access Type", ''), 1, 1, 1 FROM staged;
COMMIT;
"""


def rosterd_schema(binary, work):
    """The CREATE statements of a fresh rosterd database (sqlite's own tables left out)."""
    d = tempfile.mkdtemp(dir=work)
    with open(os.path.join(d, "rosterd.toml"), "w") as f:
        f.write('[log]\nlevel = "warn"\n')
    init_database(binary, d)
    subprocess.run([binary, "--config", "rosterd.toml", "tenant", "add", "bench", "--admin-name", "B",
                    "--admin-email", "b@example.org"], cwd=d, check=True, stdout=subprocess.DEVNULL)
    schema = subprocess.run(["sqlite3", os.path.join(d, "data", "rosterd.db"), ".schema"], check=True,
                            capture_output=True, text=True).stdout
    return "\n".join(line for line in schema.splitlines() if "sqlite_sequence" not in line) + "\n"


def floor_round(schema, work, base):
    """Seconds for SQLite alone to insert `base`'s rows into rosterd's schema."""
    db = os.path.join(work, "floor.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    subprocess.run(["sqlite3", db], input=schema, text=True, check=True)
    subprocess.run(["sqlite3", db, ".mode csv", f".import {base} staged"], check=True)
    start = time.monotonic()
    subprocess.run(["timeout", "600", "sqlite3", db], input=FLOOR_INSERT, text=True, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def spread(values):
    return f"{statistics.median(values):.2f}x ({min(values):.2f}–{max(values):.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--commit")
    ap.add_argument("--baseline")
    ap.add_argument("--baseline-commit", default="?")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rss-rows", type=int, default=0,
                    help="also the peak RSS of each build's imports of a file this long (1000000 for the target)")
    ap.add_argument("--out")
    a = ap.parse_args()
    commit = a.commit or head_commit()
    binaries = [("rosterd", os.path.abspath(a.binary), commit)]
    if a.baseline:
        binaries.append(("baseline", os.path.abspath(a.baseline), a.baseline_commit))
    with tempfile.TemporaryDirectory(prefix="rosterd-import-ab-") as work:
        base = os.path.join(work, "users.csv")
        changed = os.path.join(work, "users-changed.csv")
        subprocess.run([sys.executable, GEN, str(a.rows), base], check=True)
        subprocess.run([sys.executable, GEN, str(a.rows), changed, "--variant", "1"], check=True)
        schema = rosterd_schema(binaries[0][1], work)
        sqlite, floor, times = [], [], {name: ([], []) for name, _, _ in binaries}
        for rnd in range(a.rounds):
            db = os.path.join(work, "sqlite.db")
            if os.path.exists(db):
                os.remove(db)
            runs = [lambda: sqlite.append(timed(["sqlite3", db, ".mode csv", f".import {base} users"])),
                    lambda: floor.append(floor_round(schema, work, base))]
            for name, binary, _ in binaries:
                def run(name=name, binary=binary):
                    first, again = rosterd_round(binary, work, base, changed)
                    times[name][0].append(first)
                    times[name][1].append(again)
                runs.append(run)
            # The order rotates from round to round, so that none always runs
            # right after another's writes.
            for run in runs[rnd % len(runs):] + runs[:rnd % len(runs)]:
                run()
            print(f"round {rnd + 1}: .import {sqlite[-1]:.3f} s, SQLite alone {floor[-1]:.3f} s, "
                  + ", ".join(f"{n} {times[n][0][-1]:.3f}/{times[n][1][-1]:.3f} s" for n, _, _ in binaries),
                  file=sys.stderr, flush=True)
        rss = []
        if a.rss_rows:
            big = os.path.join(work, "big.csv")
            big_changed = os.path.join(work, "big-changed.csv")
            subprocess.run([sys.executable, GEN, str(a.rss_rows), big], check=True)
            subprocess.run([sys.executable, GEN, str(a.rss_rows), big_changed, "--variant", "1"], check=True)
            for name, binary, c in binaries:
                first, again = rosterd_round(binary, work, big, big_changed, measured)
                rss.append((name, c, (first[1], again[1])))
    lines = [
        f"Import, {a.rows:,} rows (gen_users.py), {a.rounds} rounds each running sqlite3 `.import` into an empty "
        f"table and every rosterd build once in turn; ratios per round, median (min–max). {machine()}.",
        "",
        "| binary | commit | first import, median s | vs `.import` | every row changed, median s | vs `.import` |",
        "|---|---|---:|---:|---:|---:|",
        f"| sqlite3 .import | | {statistics.median(sqlite):.3f} | 1.00x | | |",
        f"| SQLite alone, rosterd's schema | | {statistics.median(floor):.3f} | "
        f"{spread([f / s for f, s in zip(floor, sqlite)])} | | |",
    ]
    for name, _, c in binaries:
        first, again = times[name]
        lines.append(f"| {name} | {c} | {statistics.median(first):.3f} | "
                     f"{spread([f / s for f, s in zip(first, sqlite)])} | {statistics.median(again):.3f} | "
                     f"{spread([g / s for g, s in zip(again, sqlite)])} |")
    if a.rss_rows:
        lines += ["", f"Peak RSS (the kernel's, wait4), {a.rss_rows:,} rows, one run each: " + "; ".join(
            f"{name} ({c}) first import {r[0]:.0f} MiB, every row changed {r[1]:.0f} MiB" for name, c, r in rss) + "."]
    if len(binaries) == 2:
        (f1, a1), (f2, a2) = times["rosterd"], times["baseline"]
        lines += ["", f"{commit} against {a.baseline_commit}, per round (time ratio, below 1 is faster): "
                      f"first import {spread([x / y for x, y in zip(f1, f2)])}, "
                      f"every row changed {spread([x / y for x, y in zip(a1, a2)])}."]
    finish(lines, a.out)


if __name__ == "__main__":
    main()
