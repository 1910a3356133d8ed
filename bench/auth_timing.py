#!/usr/bin/env python3
"""Auth-timing check: every kind of refused login takes as long as the others,
so a client cannot tell from the reply's timing whether a district or a key
exists. For each kind (an unknown username; a district's unregistered key; a
revoked key; a disabled district) it times paramiko's `auth_publickey` from
request to refusal, after the key exchange, on a fresh connection each time,
the kinds interleaved round by round; then the same from an address that a
spray of unknown usernames has throttled, where every refusal waits its turn.

For each binary given (rosterd as built now, and optionally a baseline build,
in alternating rounds A B A B, each with an installation of its own), it
reports the median and spread of each kind in milliseconds.

    python3 bench/auth_timing.py --binary target/release/rosterd \\
        --baseline /tmp/base/target/release/rosterd --rounds 15 \\
        --out bench/results/auth-timing.md

Bounded: --rounds connections per kind and binary, each under a 30 s
timeout. Needs paramiko and ssh-keygen. Loopback only.
"""
import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time

import paramiko

from benchlib import finish, free_port, head_commit, machine, wait_listening

KINDS = ["unknown username", "unregistered key", "revoked key", "disabled district"]


class Installation:
    """Two districts (one disabled) with keys, in a directory of their own."""

    def __init__(self, work, binary):
        self.work, self.binary = work, binary
        self.port = free_port()
        self.config = os.path.join(work, "rosterd.toml")
        with open(self.config, "w") as f:
            # Throttle only where the run asks for it: after 5 failures.
            f.write(f'[server]\nlisten = "127.0.0.1:{self.port}"\nhost_key = "keys/host"\n'
                    'auth_failures_before_ban = 5\n[log]\nlevel = "error"\n')
        self.keys = {}
        for name in ("lincoln", "revoked", "stray", "closed"):
            path = os.path.join(work, name)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
            self.keys[name] = path
        # Builds since 2a47c46 create the database only in `init` (or `serve`);
        # an older build being compared creates it at its first command.
        if subprocess.run([self.binary, "init", "--help"], capture_output=True).returncode == 0:
            self.cli(["init"])
        for argv in (["tenant", "add", "lincoln", "--admin-name", "A", "--admin-email", "a@example.org"],
                     ["key", "add", "lincoln", self.keys["lincoln"] + ".pub"],
                     ["key", "add", "lincoln", self.keys["revoked"] + ".pub"],
                     ["tenant", "add", "closed", "--admin-name", "A", "--admin-email", "a@example.org"],
                     ["key", "add", "closed", self.keys["closed"] + ".pub"],
                     ["tenant", "disable", "closed"]):
            self.cli(argv)
        fp = subprocess.run(["ssh-keygen", "-lf", self.keys["revoked"] + ".pub"], capture_output=True,
                            text=True, check=True).stdout.split()[1]
        self.cli(["key", "revoke", "lincoln", fp])
        self.daemon = None

    def cli(self, argv):
        subprocess.run([self.binary, "--config", self.config, *argv], cwd=self.work, check=True,
                       capture_output=True)

    def start(self):
        self.daemon = subprocess.Popen([self.binary, "--config", self.config, "serve"], cwd=self.work,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        wait_listening(self.port, self.daemon, "the daemon")

    def stop(self):
        self.daemon.terminate()
        self.daemon.wait(timeout=60)

    def attempt(self, kind, source):
        """Milliseconds from the auth request to its refusal, from `source`."""
        user, key = {
            "unknown username": ("nobody", "lincoln"),
            "unregistered key": ("lincoln", "stray"),
            "revoked key": ("lincoln", "revoked"),
            "disabled district": ("closed", "closed"),
        }[kind]
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30, source_address=(source, 0))
        t = paramiko.Transport(sock)
        try:
            t.start_client(timeout=30)
            pkey = paramiko.Ed25519Key.from_private_key_file(self.keys[key])
            start = time.monotonic()
            try:
                t.auth_publickey(user, pkey)
                raise SystemExit(f"FAIL: {kind} logged in")
            except paramiko.AuthenticationException:
                return (time.monotonic() - start) * 1000
        finally:
            t.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--commit", help="the commit --binary was built from (default: HEAD)")
    ap.add_argument("--baseline")
    ap.add_argument("--baseline-commit", default="?")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out")
    args = ap.parse_args()
    binaries = [("rosterd", os.path.abspath(args.binary), args.commit or head_commit())]
    if args.baseline:
        binaries.append(("baseline", os.path.abspath(args.baseline), args.baseline_commit))
    times = {(b, k): [] for b, _, _ in binaries for k in KINDS}
    with tempfile.TemporaryDirectory(prefix="rosterd-auth-") as work:
        insts = {}
        for name, binary, _ in binaries:
            os.makedirs(os.path.join(work, name))
            insts[name] = Installation(os.path.join(work, name), binary)
        n = 0
        for rnd in range(args.rounds):
            for name, _, _ in binaries:
                inst = insts[name]
                inst.start()
                order = KINDS[rnd % len(KINDS):] + KINDS[:rnd % len(KINDS)]
                for kind in order:
                    # A fresh address each time: nothing is throttled here.
                    n += 1
                    source = f"127.0.{1 + n // 250}.{1 + n % 250}"
                    times[(name, kind)].append(inst.attempt(kind, source))
                inst.stop()
        # A throttled address: unknown names sprayed from 127.9.9.9 first
        # (rosterd as built now only: the baseline banned the address instead).
        slowed = {}
        inst = insts["rosterd"]
        inst.start()
        for _ in range(6):
            inst.attempt("unknown username", "127.9.9.9")
        time.sleep(0.5)
        for kind in KINDS:
            slowed[kind] = [inst.attempt(kind, "127.9.9.9") for _ in range(3)]
        inst.stop()
    lines = [
        f"Auth timing: paramiko `auth_publickey` from request to refusal, after the key exchange, a fresh "
        f"connection and address each; {args.rounds} rounds, kinds rotated, binaries alternating. {machine()}.",
        "",
        "| binary | commit | refusal | median ms | min ms | max ms |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, _, commit in binaries:
        for kind in KINDS:
            v = times[(name, kind)]
            lines.append(f"| {name} | {commit} | {kind} | {statistics.median(v):.0f} | {min(v):.0f} | {max(v):.0f} |")
    lines += ["", "From an address throttled by a spray of unknown usernames (rosterd only; 3 in a row each, "
              "paced a second apart):", "", "| refusal | ms, in order |", "|---|---|"]
    for kind in KINDS:
        lines.append(f"| {kind} | {', '.join(f'{x:.0f}' for x in slowed[kind])} |")
    finish(lines, args.out)


if __name__ == "__main__":
    main()
