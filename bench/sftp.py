#!/usr/bin/env python3
"""SFTP upload throughput: the same file uploaded with OpenSSH's `sftp` client
to OpenSSH's own sshd (internal-sftp, started here on a loopback port with its
own config) and to rosterd, in alternating rounds A B A B ... (and a third
server, C, when --baseline names an older rosterd build; the order rotates
each round, B C A, C A B, so no server always follows another). Each round gives a
ratio (OpenSSH's seconds / rosterd's); the table quotes the median of those
ratios with their min-max, so a noisy moment on this shared machine moves one
pair, not the figure. The file is a valid users.csv (rosterd checks each
upload as it arrives and refuses one that is not): rows of about 300 bytes,
so that 256 MiB stays under the importer's 1,000,000 rows.

Then --close-rounds rounds, in the same rotation, upload the same file with
paramiko, writing in order and waiting for every write's answer, and time the
close alone: the wait the client has between its last byte and "OK" (the
fsync of what the background syncs left, the rename, the record and, since
the upload check, its end).

Then --tenants districts upload 8 MiB each at once to each rosterd: all must
succeed; the daemon's peak RSS is reported.

    python3 bench/sftp.py --binary target/release/rosterd --pairs 7 \\
        [--baseline /tmp/base/target/release/rosterd --baseline-commit d1bac18] \\
        [--cipher aes256-gcm@openssh.com] [--close-rounds 7] --out bench/results/sftp.md

With --metrics, the build under test (--binary) also serves its metrics
endpoint on loopback and a scraper fetches /metrics every --scrape-every
seconds through the whole run, as a (keen) Prometheus would: the cost of
counting and of being scraped is in its times. The baseline runs as it is.

Needs openssh-server (/usr/sbin/sshd), the OpenSSH client and paramiko.
Loopback only; every loop is bounded (--pairs and --close-rounds rounds,
--tenants clients, each under a timeout).
"""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import finish, free_port, head_commit, machine, vm_kib, wait_listening

SSH_OPTS = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"]


class OpenSsh:
    name = "OpenSSH sshd, internal-sftp"

    def __init__(self, work, key_pub):
        self.dir = os.path.join(work, "sshd")
        os.makedirs(os.path.join(self.dir, "up"))
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(self.dir, "host")], check=True)
        with open(key_pub) as src, open(os.path.join(self.dir, "authorized_keys"), "w") as dst:
            dst.write(src.read())
        self.port = free_port()
        config = os.path.join(self.dir, "config")
        with open(config, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.dir}/host\nPidFile {self.dir}/pid\n"
                    f"AuthorizedKeysFile {self.dir}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nUsePAM no\nSubsystem sftp internal-sftp\n")
        os.makedirs("/run/sshd", exist_ok=True)
        subprocess.run(["/usr/sbin/sshd", "-f", config, "-E", os.path.join(self.dir, "log")], check=True)
        wait_listening(self.port, None, "sshd")
        self.user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        self.target = os.path.join(self.dir, "up", "users.csv")

    def stop(self):
        try:
            with open(os.path.join(self.dir, "pid")) as f:
                os.kill(int(f.read()), 15)
        except (OSError, ValueError):
            pass


class Rosterd:
    def __init__(self, work, label, binary, commit, key_pub, size_mib, metrics=False):
        self.name = f"rosterd {label} ({commit})"
        self.binary, self.commit = binary, commit
        self.dir = os.path.join(work, label)
        os.makedirs(self.dir)
        self.port = free_port()
        now = datetime.datetime.now(datetime.timezone.utc)
        # A window far from now: uploads wait, so only the transfer is measured.
        start = (now + datetime.timedelta(hours=12)).strftime("%H:%M")
        end = (now + datetime.timedelta(hours=12, minutes=1)).strftime("%H:%M")
        self.config = os.path.join(self.dir, "rosterd.toml")
        with open(self.config, "w") as f:
            f.write(f'[server]\nlisten = "127.0.0.1:{self.port}"\nmax_upload_bytes = {(size_mib + 1) << 20}\n'
                    f'max_sessions_per_tenant = 4\n[schedule]\ntimezone = "UTC"\nwindow = "{start}-{end}"\n'
                    '[log]\nlevel = "warn"\n')
            self.metrics_port = free_port() if metrics else None
            if metrics:
                f.write(f'[metrics]\nlisten = "127.0.0.1:{self.metrics_port}"\n')
        # Builds since 2a47c46 create the database only in `init` (or `serve`);
        # an older build being compared creates it at its first command.
        if subprocess.run([binary, "init", "--help"], capture_output=True).returncode == 0:
            self.cli("init")
        self.cli("tenant", "add", "bench", "--admin-name", "B", "--admin-email", "b@example.org")
        self.cli("key", "add", "bench", key_pub)
        log = open(os.path.join(self.dir, "serve.log"), "a")
        self.proc = subprocess.Popen([binary, "--config", self.config, "serve"], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        wait_listening(self.port, self.proc, self.name)
        self.user = "bench"
        self.target = "users.csv"

    def cli(self, *argv):
        subprocess.run([self.binary, "--config", self.config, *argv], cwd=self.dir, check=True, capture_output=True)

    def stored(self, sub):
        return os.path.join(self.dir, "data", "spool", sub, "users.csv")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


class Scraper:
    """Fetches /metrics from `port` every `every` seconds until stopped;
    counts the answers and keeps the last one."""

    def __init__(self, port, every):
        self.url, self.every = f"http://127.0.0.1:{port}/metrics", every
        self.ok, self.failed, self.last = 0, 0, ""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.wait(self.every):
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    self.last = r.read().decode()
                    self.ok += r.status == 200
            except OSError:
                self.failed += 1

    def stop(self):
        self.done.set()
        self.thread.join()

    def value(self, series):
        for line in self.last.splitlines():
            if line.startswith(series + " "):
                return line.split(" ")[1]
        return "?"


def upload(server, key, local, cipher, timeout=600):
    return sftp_batch(server, key, f"put {local} {server.target}\n", cipher, timeout)


def sftp_batch(server, key, batch, cipher, timeout=600):
    """Seconds for one `sftp -b` run of `batch` against `server`."""
    opts = SSH_OPTS + ["-i", key] + (["-o", f"Ciphers={cipher}"] if cipher else [])
    start = time.monotonic()
    p = subprocess.run(["timeout", str(timeout), "sftp", *opts, "-P", str(server.port), "-b", "-",
                        f"{server.user}@127.0.0.1"], input=batch.encode(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.monotonic() - start
    if p.returncode != 0:
        sys.exit(f"FAIL: sftp to {server.name}: {p.stderr.decode(errors='replace').strip()}")
    return seconds


def users_csv(path, size_mib):
    """A valid users.csv of about `size_mib` MiB: students and staff with
    names long enough (about 300 bytes a row) that 256 MiB is some 880,000
    rows, under the importer's 1,000,000."""
    grades = ["K", "1", "2nd", "3", "4th grade", "5", "6", "Grade 7", "8", "9", "10", "11", "12", "PK"]
    pad = "abcdefghij" * 8  # a name of at most 100 characters, the rule
    target = size_mib << 20
    written = 0
    with open(path, "w", newline="") as f:
        head = "Username,Password,Email Address,First Name,Last Name,School,Graduation Year,Access Type\r\n"
        f.write(head)
        written += len(head)
        i = 0
        while written < target:
            staff = i % 20 == 0
            user = f"user{i:07d}@bench-district.example.org"
            grade = "" if staff else grades[i % len(grades)]
            access = "Manager" if staff and i % 100 == 0 else ""
            row = f"{user},Pw-{i:07d}-x,{user},First{i} {pad},Last{i} {pad},School {i % 8},{grade},{access}\r\n"
            f.write(row)
            written += len(row)
            i += 1


def close_seconds(server, key, local, timeout=600):
    """Upload `local` to `server` with paramiko, in order, waiting for every
    write's answer; the seconds its close alone took."""
    import paramiko
    t = paramiko.Transport(("127.0.0.1", server.port))
    t.banner_timeout = t.auth_timeout = 60
    try:
        t.connect(username=server.user, pkey=paramiko.Ed25519Key.from_private_key_file(key))
        sftp = paramiko.SFTPClient.from_transport(t)
        sftp.get_channel().settimeout(timeout)
        f = sftp.open(server.target, "wb", bufsize=1 << 20)
        f.set_pipelined(True)
        with open(local, "rb") as src:
            while True:
                block = src.read(1 << 20)
                if not block:
                    break
                f.write(block)
        f.flush()
        # Answered after every write before it: the server has them all.
        f.stat()
        f._closed = True
        start = time.monotonic()
        sftp._request(paramiko.sftp.CMD_CLOSE, f.handle)
        return time.monotonic() - start
    finally:
        t.close()


def same_bytes(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        while True:
            x, y = f.read(1 << 20), g.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def concurrent(server, work, tenants, small):
    """`tenants` districts upload `small` at once; returns (ok, intact, seconds, peak RSS MiB)."""
    keys = []
    for i in range(tenants):
        sub = f"t{i}"
        key = os.path.join(work, f"k{i}")
        if not os.path.exists(key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        server.cli("tenant", "add", sub, "--admin-name", "T", "--admin-email", "t@example.org")
        server.cli("key", "add", sub, key + ".pub")
        keys.append((sub, key))
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], vm_kib(server.proc.pid, "VmRSS"))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.monotonic()
    procs = [subprocess.Popen(["timeout", "300", "sftp", *SSH_OPTS, "-i", key, "-P", str(server.port), "-b", "-",
                               f"{sub}@127.0.0.1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for sub, key in keys]
    for p in procs:
        try:
            p.stdin.write(f"put {small} users.csv\n".encode())
            p.stdin.close()
        except BrokenPipeError:
            pass
    ok = sum(p.wait() == 0 for p in procs)
    seconds = time.monotonic() - start
    done.set()
    sampler.join()
    intact = sum(os.path.exists(server.stored(sub)) and same_bytes(small, server.stored(sub)) for sub, _ in keys)
    return ok, intact, seconds, peak[0] // 1024


def spread(values):
    return f"{statistics.median(values):.2f}x ({min(values):.2f}–{max(values):.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--commit", help="the commit --binary was built from (default: HEAD)")
    ap.add_argument("--baseline", help="an older rosterd build, measured in the same rounds")
    ap.add_argument("--baseline-commit", default="?")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--cipher", help="e.g. aes256-gcm@openssh.com (default: the client's first choice)")
    ap.add_argument("--tenants", type=int, default=64)
    ap.add_argument("--metrics", action="store_true",
                    help="the build under test serves metrics, scraped every --scrape-every seconds")
    ap.add_argument("--scrape-every", type=float, default=1.0)
    ap.add_argument("--close-rounds", type=int, default=3,
                    help="rounds timing the close alone, with paramiko (0: none)")
    ap.add_argument("--out")
    args = ap.parse_args()
    commit = args.commit or head_commit()
    client = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.split(",")[0].strip()
    with tempfile.TemporaryDirectory(prefix="rosterd-sftp-bench-") as work:
        key = os.path.join(work, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        big = os.path.join(work, "big.csv")
        users_csv(big, args.size_mib)
        servers = []
        try:
            servers.append(OpenSsh(work, key + ".pub"))
            servers.append(Rosterd(work, "now", os.path.abspath(args.binary), commit, key + ".pub", args.size_mib,
                                   metrics=args.metrics))
            scraper = Scraper(servers[1].metrics_port, args.scrape_every) if args.metrics else None
            if args.baseline:
                servers.append(Rosterd(work, "baseline", os.path.abspath(args.baseline), args.baseline_commit,
                                       key + ".pub", args.size_mib))
            seconds = {s.name: [] for s in servers}
            setup = {s.name: [] for s in servers}
            for i in range(args.pairs):
                # The order rotates from round to round: an upload can leave
                # the disk busy for the one after it (OpenSSH's sshd does not
                # fsync, so its 256 MiB are still being written out), and no
                # server should always be the one that follows.
                for s in servers[i % len(servers):] + servers[:i % len(servers)]:
                    # A session that only says bye first: what the same
                    # client spends on connecting, logging in and starting
                    # SFTP, so the transfer alone can be told apart. (Not a
                    # tiny upload: its close would wait for the disk to
                    # flush whatever the previous upload left.)
                    setup[s.name].append(sftp_batch(s, key, "bye\n", args.cipher))
                    t = upload(s, key, big, args.cipher)
                    seconds[s.name].append(t)
                    print(f"pair {i + 1}: {s.name} {t:.2f} s (connect only {setup[s.name][-1]:.2f} s)",
                          file=sys.stderr, flush=True)
            for s in servers:
                stored = s.target if os.path.isabs(s.target) else s.stored("bench")
                if not same_bytes(big, stored):
                    sys.exit(f"FAIL: {s.name} stored different bytes")
            closes = {s.name: [] for s in servers}
            for i in range(args.close_rounds):
                for s in servers[i % len(servers):] + servers[:i % len(servers)]:
                    closes[s.name].append(close_seconds(s, key, big))
                    print(f"close round {i + 1}: {s.name} {closes[s.name][-1] * 1000:.1f} ms",
                          file=sys.stderr, flush=True)
            small = os.path.join(work, "small.csv")
            users_csv(small, 8)
            crowd = {s.name: concurrent(s, work, args.tenants, small) for s in servers[1:]}
            if scraper:
                scraper.stop()
        finally:
            for s in servers:
                s.stop()
    ref = seconds[servers[0].name]
    lines = [
        f"SFTP upload: a valid users.csv of {args.size_mib} MiB, {client} `sftp` client, "
        f"cipher {args.cipher or 'the client default'}, loopback. {machine()}. "
        f"{args.pairs} rounds, each uploading once to every "
        "server in turn, the order rotating by one each round; ratio = OpenSSH's seconds / the server's, per round; median (min–max).",
        "",
        "Each round also times, just before each upload, a session to the same server that only connects, "
        "logs in, starts SFTP and says bye; \"transfer alone\" is the upload's time minus that.",
        "",
        "| server | median seconds | median MiB/s | vs OpenSSH, median of rounds (min–max) "
        "| connect only, median s | transfer alone vs OpenSSH |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ref_setup = setup[servers[0].name]
    for s in servers:
        times = seconds[s.name]
        ratios = [r / t for r, t in zip(ref, times)]
        transfer = [(r - rs) / max(t - ts, 1e-3) for r, rs, t, ts in zip(ref, ref_setup, times, setup[s.name])]
        med = statistics.median(times)
        lines.append(f"| {s.name} | {med:.2f} | {args.size_mib / med:.1f} | {spread(ratios)} "
                     f"| {statistics.median(setup[s.name]):.2f} | {spread(transfer)} |")
    if len(servers) == 3:
        ratios = [b / a for a, b in zip(seconds[servers[1].name], seconds[servers[2].name])]
        lines += ["", f"rosterd {commit} against {args.baseline_commit}, per round: {spread(ratios)}."]
    if args.close_rounds:
        lines += ["", f"The close alone, {args.size_mib} MiB written in order by paramiko, every write answered first; "
                      f"{args.close_rounds} rounds, the order rotating:", "",
                  "| server | median close, ms | min–max, ms |", "|---|---:|---:|"]
        for s in servers:
            ms = [c * 1000 for c in closes[s.name]]
            lines.append(f"| {s.name} | {statistics.median(ms):.1f} | {min(ms):.1f}–{max(ms):.1f} |")
        if len(servers) == 3:
            added = [(a - b) * 1000 for a, b in zip(closes[servers[1].name], closes[servers[2].name])]
            lines += ["", f"rosterd {commit}'s close minus {args.baseline_commit}'s, per round: median "
                          f"{statistics.median(added):+.1f} ms ({min(added):+.1f} to {max(added):+.1f})."]
    lines.append("")
    if args.metrics:
        uploads = scraper.value("rosterd_uploads_total")
        logins = scraper.value('rosterd_logins_total{outcome="accepted"}')
        lines += [f"{servers[1].name} served its metrics endpoint throughout, scraped every {args.scrape_every:g} s: "
                  f"{scraper.ok} scrapes answered, {scraper.failed} failed; its last counted {uploads} uploads "
                  f"and {logins} logins.", ""]
    for name, (ok, intact, secs, rss) in crowd.items():
        lines.append(f"{args.tenants} districts uploading 8 MiB each at once to {name}: {ok}/{args.tenants} clients "
                     f"succeeded, {intact}/{args.tenants} files intact, {secs:.1f} s in all, peak RSS {rss} MiB.")
    finish(lines, args.out)


if __name__ == "__main__":
    main()
