#!/usr/bin/env python3
"""Front-door load: N districts log in and upload at the same moment, as a
hosted SIS exports every district it hosts from a few shared addresses at the
scheduled minute. Each client is OpenSSH's `sftp -b` putting a small
users.csv for its own district. Run once with every client on 127.0.0.1 (one
shared egress address) and once spread over many loopback addresses.

For each binary given (rosterd as built now, and optionally a baseline build
to compare with), in alternating rounds A B A B, it reports how many clients
succeeded, how many files arrived intact, the time until every client was
done, and the daemon's peak RSS and open file descriptors while it ran.

    python3 bench/logins.py --binary target/release/rosterd \\
        --baseline /tmp/base/target/release/rosterd --clients 1000 --rounds 2 \\
        --out bench/results/logins.md

Bounded: --clients processes per round, each under `timeout 180`. Needs
OpenSSH's sftp and ssh-keygen. Loopback only.
"""
import argparse
import concurrent.futures
import datetime
import os
import subprocess
import tempfile
import threading
import time

from benchlib import finish, free_port, head_commit, machine, vm_kib, wait_listening

SSH_OPTS = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"]




def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Installation:
    """Districts and keys in a temp directory, shared by every binary: each
    round starts the binary's daemon on the same database and spool."""

    def __init__(self, work, clients):
        self.work = work
        self.port = free_port()
        self.config = os.path.join(work, "rosterd.toml")
        # A window far from now: uploads wait, so only the front door is measured.
        now = datetime.datetime.now(datetime.timezone.utc)
        start = (now + datetime.timedelta(hours=12)).strftime("%H:%M")
        end = (now + datetime.timedelta(hours=12, minutes=1)).strftime("%H:%M")
        with open(self.config, "w") as f:
            f.write(f'[server]\nlisten = "127.0.0.1:{self.port}"\nhost_key = "keys/host"\n'
                    f'[schedule]\ntimezone = "UTC"\nwindow = "{start}-{end}"\n[log]\nlevel = "warn"\n')
        self.tenants = [f"d{i:04d}" for i in range(clients)]
        self.body = b"Username,First Name\r\n" + b"".join(b"u%d,First\r\n" % i for i in range(200))
        with open(os.path.join(work, "users.csv"), "wb") as f:
            f.write(self.body)

    def setup(self, binary):
        def one(sub):
            key = os.path.join(self.work, f"{sub}_key")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
            return sub, key

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            keys = list(pool.map(one, self.tenants))
        # Builds since 2a47c46 create the database only in `init` (or `serve`);
        # an older build being compared creates it at its first command.
        if subprocess.run([binary, "init", "--help"], capture_output=True).returncode == 0:
            subprocess.run([binary, "--config", self.config, "init"], cwd=self.work, check=True,
                           capture_output=True)
        for sub, key in keys:
            for argv in (["tenant", "add", sub, "--admin-name", "A", "--admin-email", f"a@{sub}.example.org"],
                         ["key", "add", sub, key + ".pub"]):
                subprocess.run([binary, "--config", self.config, *argv], cwd=self.work, check=True,
                               capture_output=True)

    def round(self, binary, sources):
        spool = os.path.join(self.work, "data", "spool")
        for sub in self.tenants:
            try:
                os.remove(os.path.join(spool, sub, "users.csv"))
            except FileNotFoundError:
                pass
        log = open(os.path.join(self.work, "daemon.log"), "a")
        daemon = subprocess.Popen([binary, "--config", self.config, "serve"], cwd=self.work,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        wait_listening(self.port, daemon, "the daemon (see daemon.log)")
        time.sleep(0.5)  # let that probe connection's slot come back
        peak = {"rss": 0, "fds": 0}
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    peak["rss"] = max(peak["rss"], vm_kib(daemon.pid, "VmRSS"))
                    peak["fds"] = max(peak["fds"], fds(daemon.pid))
                except OSError:
                    return
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        start = time.monotonic()
        procs = []
        for i, sub in enumerate(self.tenants):
            source = f"127.0.{(i % sources) // 250}.{(i % sources) % 250 + 1}"
            p = subprocess.Popen(
                ["timeout", "180", "sftp", *SSH_OPTS, "-i", os.path.join(self.work, f"{sub}_key"),
                 "-o", f"BindAddress={source}", "-P", str(self.port), "-b", "-", f"{sub}@127.0.0.1"],
                cwd=self.work, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(p)
        for p in procs:
            try:
                p.stdin.write(b"put users.csv\n")
                p.stdin.close()
            except BrokenPipeError:
                pass  # the client already gave up (refused, or dropped): counted below
        ok, errors = 0, {}
        for p in procs:
            err = p.stderr.read().decode(errors="replace").strip().splitlines()
            if p.wait() == 0:
                ok += 1
            else:
                key = err[-1] if err else f"exit {p.returncode}"
                errors[key] = errors.get(key, 0) + 1
        seconds = time.monotonic() - start
        done.set()
        sampler.join()
        intact = 0
        for sub in self.tenants:
            try:
                with open(os.path.join(spool, sub, "users.csv"), "rb") as f:
                    intact += f.read() == self.body
            except FileNotFoundError:
                pass
        hwm = vm_kib(daemon.pid, "VmHWM")
        daemon.terminate()
        daemon.wait(timeout=60)
        return {"ok": ok, "intact": intact, "seconds": seconds, "rss": peak["rss"], "hwm": hwm,
                "fds": peak["fds"], "errors": errors}




def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="rosterd to measure")
    ap.add_argument("--commit", help="the commit --binary was built from (default: this checkout's HEAD)")
    ap.add_argument("--baseline", help="a second rosterd build to compare with, in alternating rounds")
    ap.add_argument("--baseline-commit", default="?", help="the commit --baseline was built from")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--sources", type=int, default=250, help="addresses in the many-address run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    binaries = [("rosterd", os.path.abspath(args.binary), args.commit or head_commit())]
    if args.baseline:
        binaries.append(("baseline", os.path.abspath(args.baseline), args.baseline_commit))
    lines = [
        f"Front-door load: {args.clients} districts, each OpenSSH `sftp -b` putting a {{size}}-byte users.csv, "
        f"all started at once. {machine()}; "
        f"rounds alternate {' / '.join(n for n, _, _ in binaries)}.",
        "",
        "| binary | commit | addresses | round | clients ok | files intact | seconds until all done | peak RSS MiB | peak fds | failures |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="rosterd-logins-") as work:
        # One installation per binary: a build may not open a database that
        # a newer one migrated.
        insts = {}
        for name, binary, _ in binaries:
            os.makedirs(os.path.join(work, name))
            insts[name] = Installation(os.path.join(work, name), args.clients)
            insts[name].setup(binary)
        lines[0] = lines[0].replace("{size}", str(len(insts[binaries[0][0]].body)))
        for sources in (1, args.sources):
            for rnd in range(1, args.rounds + 1):
                for name, binary, commit in binaries:
                    r = insts[name].round(binary, sources)
                    errs = "; ".join(f"{n}× {e[:60]}" for e, n in sorted(r["errors"].items(), key=lambda x: -x[1])[:3])
                    line = (f"| {name} | {commit} | {sources} | {rnd} | {r['ok']}/{args.clients} | "
                            f"{r['intact']}/{args.clients} | {r['seconds']:.1f} | {r['rss'] // 1024} | {r['fds']} | {errs} |")
                    print(line, flush=True)
                    lines.append(line)
    finish(lines, args.out)


if __name__ == "__main__":
    main()
