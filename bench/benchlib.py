"""What the benchmark scripts share: loopback ports, waiting for a server to
listen, /proc readings, the line naming the machine and date, the commit, and
printing the result."""
import datetime
import os
import platform
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what):
    """Wait (at most 60 s) until 127.0.0.1:`port` accepts; exit with a FAIL
    line if `proc` (a Popen, or None) ends first or time runs out."""
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                sys.exit(f"FAIL: {what} did not start")
            time.sleep(0.05)


def vm_kib(pid, field):
    """A /proc/PID/status field in KiB (VmRSS, VmHWM); 0 if absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def machine():
    """'2026-11-22, 2 cores (AMD EPYC), 6.18.44': when and where a figure was measured."""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return f"{datetime.date.today()}, {os.cpu_count()} cores ({cpu}), {platform.release()}"


def head_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "?"


def finish(lines, out):
    """Print the Markdown `lines`, and write them to `out` if given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)
