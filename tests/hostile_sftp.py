#!/usr/bin/env python3
"""A hostile SFTP client for rosterd's tests (paramiko, raw requests).

Usage: hostile_sftp.py PORT USER KEYFILE

Logs in as USER and tries, against its own SFTP root: every request type with
paths that try to leave it; forged, closed and other sessions' handles; a write
at an offset far past the size limit; thousands of open handles; an SFTP packet
announcing a 2 GiB length. Prints one JSON object: each check's name mapped to
"ok" or to what went wrong. rosterd's test asserts every value is "ok" and then
that the server still serves.
"""
import json
import sys

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_FSTAT, CMD_READ, CMD_WRITE
from paramiko.sftp_client import int64

port, user, keyfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
results = {}


def connect():
    t = paramiko.Transport(("127.0.0.1", port))
    t.connect(username=user, pkey=paramiko.Ed25519Key.from_private_key_file(keyfile))
    return t, paramiko.SFTPClient.from_transport(t)


def refused(name, action):
    try:
        action()
        results[name] = "ALLOWED"
    except (IOError, OSError, paramiko.SFTPError):
        results[name] = "ok"
    except Exception as e:  # a crash of the client library is a finding too
        results[name] = f"unexpected {type(e).__name__}: {e}"


transport, sftp = connect()

hostile_paths = [
    "../users.csv",
    "../../../../etc/passwd",
    "/etc/passwd",
    "/../users.csv",
    "sub/../../users.csv",
    "./../other/users.csv",
    "..",
    "users.csv/../../x",
    "..%2fusers.csv",
    "users.csv\\..\\..\\x",
    "incoming",
    "archive/upload-1.csv",
    "/proc/self/environ",
    "other-district/users.csv",
    "users.csv\x00.txt",
]

for p in hostile_paths:
    refused(f"open for writing {p!r}", lambda p=p: sftp.open(p, "wb").close())
    refused(f"open for reading {p!r}", lambda p=p: sftp.open(p, "rb").read())
    refused(f"remove {p!r}", lambda p=p: sftp.remove(p))
    refused(f"mkdir {p!r}", lambda p=p: sftp.mkdir(p))
    refused(f"rmdir {p!r}", lambda p=p: sftp.rmdir(p))
    refused(f"rename users.csv to {p!r}", lambda p=p: sftp.rename("users.csv", p))
    refused(f"rename {p!r} to users.csv", lambda p=p: sftp.rename(p, "users.csv"))
    refused(f"posix-rename to {p!r}", lambda p=p: sftp.posix_rename("users.csv", p))
    refused(f"symlink {p!r}", lambda p=p: sftp.symlink(p, "link.csv"))
    refused(f"symlink at {p!r}", lambda p=p: sftp.symlink("users.csv", p))
    refused(f"readlink {p!r}", lambda p=p: sftp.readlink(p))
    refused(f"setstat {p!r}", lambda p=p: sftp.chmod(p, 0o777) or sftp.stat(p))
    if p not in ("..", "/../users.csv"):
        refused(f"stat {p!r}", lambda p=p: sftp.stat(p))
        refused(f"lstat {p!r}", lambda p=p: sftp.lstat(p))
        refused(f"listdir {p!r}", lambda p=p: sftp.listdir(p))
    # realpath may answer, but only with a path of the virtual root.
    try:
        real = sftp.normalize(p)
        # A virtual path, clamped at the root: no ".." segment, nothing of
        # the server's real directories.
        virtual = real.startswith("/") and ".." not in real.split("/")
        private = "spool" in real or "/tmp/" in real or "data/" in real
        results[f"realpath {p!r}"] = "ok" if virtual and not private else f"leaked {real!r}"
    except (IOError, OSError):
        results[f"realpath {p!r}"] = "ok"

# Handles that are not this session's own, open ones.
for forged in ["f1", "d1", "f999999", "", "../f1", "x" * 4096]:
    refused(f"write to forged handle {forged[:20]!r}", lambda h=forged: sftp._request(CMD_WRITE, h, int64(0), b"data"))
    refused(f"read from forged handle {forged[:20]!r}", lambda h=forged: sftp._request(CMD_READ, h, int64(0), 10))
    refused(f"fstat of forged handle {forged[:20]!r}", lambda h=forged: sftp._request(CMD_FSTAT, h))
f = sftp.open("users.csv", "wb")
handle = f.handle
f.write(b"Username\nclosed1\n")
f.close()
refused("write to a closed handle", lambda: sftp._request(CMD_WRITE, handle, int64(0), b"more"))
refused("close a closed handle", lambda: sftp._request(CMD_CLOSE, handle))

# Another session's open handle.
other_transport, other = connect()
mine = sftp.open("users.csv", "wb")
refused("write to another session's handle", lambda: other._request(CMD_WRITE, mine.handle, int64(0), b"x"))
mine.close()
other.close()
other_transport.close()

# A write far past the size limit (a sparse-file bomb).
bomb = sftp.open("users.csv.part", "wb")
refused("write at offset 2**62", lambda: sftp._request(CMD_WRITE, bomb.handle, int64(2**62), b"x"))
refused("write at offset 2**40", lambda: sftp._request(CMD_WRITE, bomb.handle, int64(2**40), b"x"))
try:
    bomb.close()
except (IOError, OSError):
    pass

# Thousands of open handles: only a few are granted.
granted, handles = 0, []
for _ in range(2000):
    try:
        handles.append(sftp.open("users.csv", "wb"))
        granted += 1
    except (IOError, OSError):
        pass
results["open handles granted out of 2000"] = "ok" if granted <= 16 else f"{granted} granted"
for h in handles:
    try:
        h.close()
    except (IOError, OSError):
        pass
sftp.close()
transport.close()

# An SFTP packet announcing 2 GiB on a raw channel: refused without
# allocating it; the session's connection goes on working.
t, _ = connect()
chan = t.open_session()
chan.invoke_subsystem("sftp")
chan.sendall(b"\x7f\xff\xff\xff" + b"\x01" * 64)
chan.settimeout(5)
try:
    chan.recv(1024)
except Exception:
    pass
chan.close()
probe = paramiko.SFTPClient.from_transport(t)
results["session works after an oversized packet"] = "ok" if probe.listdir(".") is not None else "failed"
probe.close()
t.close()

print(json.dumps(results))
