#!/usr/bin/env python3
"""Bounded load run: many districts upload users.csv at once to one
`rosterd serve` (each from a loopback address of its own, as the per-address
login limit expects), a few of them large files, all in flight together; the
daemon imports every one and mails every report. Then the soak's checks
(tests/soak/kill_soak.py) prove nothing was lost or duplicated, and the
daemon's RSS, sampled in each phase of each wave, shows memory stays bounded
and does not grow from one wave to the next.

    python3 bench/load.py --binary target/release/rosterd --tenants 100 --rows 20000 \\
        --large 4 --large-rows 1000000 --waves 3 --out bench/out/load.md
"""
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "soak"))
from kill_soak import finish, installation, vm_kib  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import head_commit, machine  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--tenants", type=int, default=100, help="districts uploading at once (bounds the run)")
    ap.add_argument("--rows", type=int, default=20000, help="rows per ordinary file")
    ap.add_argument("--large", type=int, default=4, help="how many of the districts send a large file")
    ap.add_argument("--large-rows", type=int, default=1000000)
    ap.add_argument("--waves", type=int, default=3,
                    help="upload every district's file this many times over, against the same daemon, "
                         "to show memory returns to its level instead of growing")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--commit", help="the commit --binary was built from (default: HEAD)")
    ap.add_argument("--out")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)

    with installation(args, "rosterd-load-") as soak:
        daemon = soak.start_daemon()
        base_rss = vm_kib(daemon.pid, "VmRSS")
        # Peak RSS per phase of each wave: uploads in flight, then imports.
        phase = {"key": None}
        peaks = {}

        def sample():
            while daemon.poll() is None:
                try:
                    rss = vm_kib(daemon.pid, "VmRSS")
                except OSError:
                    return
                if phase["key"]:
                    peaks[phase["key"]] = max(peaks.get(phase["key"], 0), rss)
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()
        waves, failed, total_bytes = [], [], 0
        for wave in range(1, args.waves + 1):
            # New files each wave (every row changed), large ones for the first districts.
            files = [(sub, *soak.make_file(sub, args.large_rows if i < args.large else args.rows))
                     for i, sub in enumerate(soak.tenants)]
            wave_bytes = sum(os.path.getsize(p) for _, p, _ in files)
            total_bytes += wave_bytes
            phase["key"] = (wave, "uploads")
            started = time.monotonic()
            clients = []
            for n, (sub, path, sha) in enumerate(files):
                # Each district from a loopback address of its own, as districts are.
                proc, script = soak.upload(sub, path, 0, source=f"127.0.{1 + n // 250}.{1 + n % 250}")
                proc.stdin.write(script)
                proc.stdin.close()
                clients.append((sub, sha, proc))
            for sub, sha, proc in clients:
                if proc.wait() == 0:
                    soak.completed.append((sub, sha))
                else:
                    failed.append(f"wave {wave}, {sub}: sftp exit {proc.returncode}: {proc.stderr.read().strip()}")
            uploaded = time.monotonic() - started
            phase["key"] = (wave, "imports")
            soak.settle()
            phase["key"] = None
            time.sleep(1)
            waves.append((wave, wave_bytes, uploaded, soak.settled_at - started,
                          vm_kib(daemon.pid, "VmRSS")))
        soak.drain(daemon)  # nothing left to do: notes VmHWM, stops the daemon
        failures = failed + soak.check()

    lines = [
        f"## Load: {args.tenants} districts uploading at once ({args.large} with {args.large_rows:,}-row files, "
        f"the rest {args.rows:,} rows), {args.waves} waves against one `rosterd serve`",
        "",
        f"{args.commit or head_commit()}, {machine()}.",
        "",
        "Every wave uploads a new file for every district (every row changed). RSS sampled every 50 ms.",
        "",
        "| wave | data uploaded | all uploads complete | all imported and reported | "
        "peak RSS, uploads in flight | peak RSS, importing | RSS after the wave |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for wave, size, uploaded, done, after in waves:
        lines.append(
            f"| {wave} | {size / 2**20:.0f} MiB | {uploaded:.1f} s ({size / 2**20 / uploaded:.0f} MiB/s) | "
            f"{done:.1f} s | {peaks.get((wave, 'uploads'), 0) / 1024:.0f} MiB | "
            f"{peaks.get((wave, 'imports'), 0) / 1024:.0f} MiB | {after / 1024:.0f} MiB |")
    lines += [
        "",
        "| measure | value |",
        "|---|---|",
        f"| uploads completed / recorded / imported | {len(soak.completed)} / {soak.stats['uploads recorded']} / {soak.stats['imports']} |",
        f"| reports delivered | {soak.stats['reports delivered']} |",
        f"| daemon RSS at start / peak over all waves (VmHWM) | {base_rss / 1024:.0f} MiB / {soak.peak_rss_kib / 1024:.0f} MiB |",
    ]
    finish(lines, failures, args.out)


if __name__ == "__main__":
    main()
