#!/usr/bin/env python3
"""Bounded load run: many districts upload users.csv at once to one
`rosterd serve` (each from a loopback address of its own, as the per-address
login limit expects), a few of them large files, all in flight together; the
daemon imports every one and mails every report. Then the soak's checks
(tests/soak/kill_soak.py) prove nothing was lost or duplicated, and the
daemon's peak RSS (VmHWM) shows memory stayed bounded.

    python3 bench/load.py --binary target/release/rosterd --tenants 100 --rows 20000 \\
        --large 4 --large-rows 1000000 --out bench/out/load.md
"""
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "soak"))
from kill_soak import finish, installation, vm_kib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--tenants", type=int, default=100, help="districts uploading at once (bounds the run)")
    ap.add_argument("--rows", type=int, default=20000, help="rows per ordinary file")
    ap.add_argument("--large", type=int, default=4, help="how many of the districts send a large file")
    ap.add_argument("--large-rows", type=int, default=1000000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)

    with installation(args, "rosterd-load-") as soak:
        files = []
        for i, sub in enumerate(soak.tenants):
            files.append((sub, *soak.make_file(sub, args.large_rows if i < args.large else args.rows)))
        total_bytes = sum(os.path.getsize(p) for _, p, _ in files)
        daemon = soak.start_daemon()
        base_rss = vm_kib(daemon.pid, "VmRSS")
        # Peak RSS per phase: uploads in flight, then imports.
        phase = {"name": "uploads", "uploads": 0, "imports": 0}

        def sample():
            while daemon.poll() is None:
                try:
                    rss = vm_kib(daemon.pid, "VmRSS")
                except OSError:
                    return
                phase[phase["name"]] = max(phase[phase["name"]], rss)
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
        started = time.monotonic()
        clients = []
        for n, (sub, path, sha) in enumerate(files):
            # Each district from a loopback address of its own, as districts are.
            proc, script = soak.upload(sub, path, 0, source=f"127.0.{1 + n // 250}.{1 + n % 250}")
            proc.stdin.write(script)
            proc.stdin.close()
            clients.append((sub, sha, proc))
        failed = []
        for sub, sha, proc in clients:
            if proc.wait() == 0:
                soak.completed.append((sub, sha))
            else:
                failed.append(f"{sub}: sftp exit {proc.returncode}: {proc.stderr.read().strip()}")
        uploaded = time.monotonic() - started
        phase["name"] = "imports"
        soak.drain(daemon)  # every import and report done; samples VmHWM, stops the daemon
        done = soak.settled_at - started
        peak = soak.peak_rss_kib
        failures = failed + soak.check()

    lines = [
        f"## Load: {args.tenants} districts uploading at once ({args.large} with {args.large_rows:,}-row files, "
        f"the rest {args.rows:,} rows), one `rosterd serve`, 2 cores",
        "",
        "| measure | value |",
        "|---|---|",
        f"| data uploaded | {total_bytes / 2**20:.1f} MiB in {len(files)} files |",
        f"| all uploads complete | {uploaded:.1f} s ({total_bytes / 2**20 / uploaded:.1f} MiB/s) |",
        f"| all imported and every report delivered | {done:.1f} s |",
        f"| uploads completed / recorded / imported | {len(soak.completed)} / {soak.stats['uploads recorded']} / {soak.stats['imports']} |",
        f"| reports delivered | {soak.stats['reports delivered']} |",
        f"| daemon RSS at start / peak (VmHWM) | {base_rss / 1024:.0f} MiB / {peak / 1024:.0f} MiB |",
        f"| daemon RSS peak while uploads were in flight / while importing (sampled every 50 ms) | "
        f"{phase['uploads'] / 1024:.0f} MiB / {phase['imports'] / 1024:.0f} MiB |",
    ]
    finish(lines, failures, args.out)


if __name__ == "__main__":
    main()
