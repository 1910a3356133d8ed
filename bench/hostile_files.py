#!/usr/bin/env python3
"""Peak memory of imports of hostile file shapes: one line without a break,
one huge quoted cell, a quote that never closes, a line of commas, and tiny
rows past the row limit. Each file is imported with `rosterd import users`
(the same importer the daemon runs) by each binary given, in alternating
order (A B A B), and the peak RSS of that process is read from the kernel
(wait4's ru_maxrss), along with the time and the outcome.

    python3 bench/hostile_files.py --binary target/release/rosterd --size-mib 1024
    python3 bench/hostile_files.py --binary target/release/rosterd --size-mib 256 \\
        --baseline /tmp/base/target/release/rosterd --baseline-commit d1bac18 --out bench/results/hostile.md

Bounded: each import runs under `timeout` (--timeout seconds) and an address
space cap (--max-gib, via prlimit), so a runaway build fails its row instead
of the machine. Files are written to a temp directory and deleted after.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchlib import finish, head_commit, machine

CHUNK = 1 << 20


def write_shape(path, shape, size):
    """Write `size` bytes (about) of `shape` to `path`."""
    with open(path, "wb") as f:
        def fill(unit, total):
            block = unit * (CHUNK // len(unit))
            written = 0
            while written + len(block) <= total:
                f.write(block)
                written += len(block)
        if shape == "single line":
            f.write(b"Username,First Name,")
            fill(b"abcdefgh ", size)
        elif shape == "one huge cell":
            f.write(b"Username,First Name\njdoe,\"")
            fill(b"abcdefgh ", size)
            f.write(b"\"\n")
        elif shape == "unclosed quote":
            f.write(b"Username,First Name\njdoe,\"never closed\n")
            fill(b"asmith,Al\n", size)
        elif shape == "line of commas":
            f.write(b"Username,First Name\n")
            fill(b",,,,,,,,", size)
            f.write(b"\n")
        elif shape == "tiny rows":
            f.write(b"Username\n")
            written, i = 0, 0
            while written < size:
                rows = b"".join(b"u%08d\n" % n for n in range(i, i + 10000))
                f.write(rows)
                written += len(rows)
                i += 10000
        else:
            raise ValueError(shape)


SHAPES = ["single line", "one huge cell", "unclosed quote", "line of commas", "tiny rows"]


class Install:
    def __init__(self, work, name, binary):
        self.binary = binary
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.config = os.path.join(self.dir, "rosterd.toml")
        with open(self.config, "w") as f:
            f.write('[log]\nlevel = "warn"\n')
        # Builds since 2a47c46 create the database only in `init` (or `serve`);
        # an older build being compared creates it at its first command.
        if subprocess.run([binary, "init", "--help"], capture_output=True).returncode == 0:
            self.run(["init"], check=True)
        self.run(["tenant", "add", "bench", "--admin-name", "B", "--admin-email", "b@example.org"], check=True)

    def run(self, argv, check=False, timeout=600, max_gib=16):
        cmd = ["prlimit", f"--as={max_gib << 30}", "timeout", str(timeout), self.binary, "--config", self.config, *argv]
        start = time.monotonic()
        p = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        err = p.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - start
        if check and p.returncode != 0:
            sys.exit(f"FAIL: {' '.join(argv)}: {err}")
        return p.returncode, err, usage.ru_maxrss // 1024, seconds


def outcome(code, err):
    line = next((l for l in err.splitlines() if l.startswith("error: ")), "")
    if code == 124:
        return "timed out"
    if code < 0 or code > 128:
        return f"killed (exit {code}): {line[:80]}"
    return f"exit {code}: {line[7:90]}" if line else f"exit {code}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--commit", help="the commit --binary was built from (default: HEAD)")
    ap.add_argument("--baseline")
    ap.add_argument("--baseline-commit", default="?")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--max-gib", type=int, default=16, help="address-space cap of each import")
    ap.add_argument("--out")
    args = ap.parse_args()
    commit = args.commit or head_commit()
    lines = [
        f"Hostile file shapes, {args.size_mib} MiB each, imported with `rosterd import users`; peak RSS of the "
        f"import process (wait4 ru_maxrss). {machine()}; binaries alternate per shape; each import capped at "
        f"{args.max_gib} GiB of address "
        f"space and {args.timeout} s.",
        "",
        "| shape | binary | commit | peak RSS MiB | seconds | outcome |",
        "|---|---|---|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="rosterd-hostile-") as work:
        installs = [("rosterd", commit, Install(work, "now", os.path.abspath(args.binary)))]
        if args.baseline:
            installs.append(("baseline", args.baseline_commit, Install(work, "base", os.path.abspath(args.baseline))))
        for shape in args.shapes.split(","):
            path = os.path.join(work, "users.csv")
            write_shape(path, shape, args.size_mib << 20)
            for name, c, inst in installs:
                code, err, rss, secs = inst.run(["import", "users", "bench", path], timeout=args.timeout,
                                                max_gib=args.max_gib)
                line = f"| {shape} | {name} | {c} | {rss} | {secs:.1f} | {outcome(code, err)} |"
                print(line, flush=True)
                lines.append(line)
            os.remove(path)
    finish(lines, args.out)


if __name__ == "__main__":
    main()
