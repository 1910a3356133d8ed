#!/usr/bin/env python3
"""Uploads of a users.csv rosterd may refuse, for its tests (paramiko), saying
exactly where the refusal came and what the client was told.

Usage: refused_upload.py MODE FILE PORT USER KEYFILE

MODE is one of:
  writes        FILE written as users.csv one 32 KiB write at a time, each
                write's answer awaited before the next, then closed: the
                request that was refused and its message
  out-of-order  the same, its second half written before its first (as
                clients with several writes in flight may)
  filepart      FILE written to users.csv.part as in `writes`, then renamed
                to users.csv (WinSCP's way)
  put           paramiko's own SFTPClient.put(FILE, "users.csv"), as a
                district's script calls it: what it raises, if anything

Prints one JSON object: {"refused": "write N" | "close" | "rename" | null,
"message": the status text or exception, "writes": writes answered OK}.
"""
import json
import sys

import paramiko

mode, path, port, user, keyfile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
STEP = 32 * 1024

with open(path, "rb") as f:
    data = f.read()

t = paramiko.Transport(("127.0.0.1", port))
t.connect(username=user, pkey=paramiko.Ed25519Key.from_private_key_file(keyfile))
sftp = paramiko.SFTPClient.from_transport(t)
result = {"refused": None, "message": None, "writes": 0}


def write_close(name, pieces):
    """Write each (offset, bytes) awaiting its answer, then close; the
    request refused, if any."""
    f = sftp.open(name, "wb", bufsize=0)
    try:
        for i, (offset, piece) in enumerate(pieces):
            f.seek(offset)
            try:
                f.write(piece)
            except IOError as e:
                result["refused"], result["message"] = f"write {i + 1}", str(e)
                return False
            result["writes"] += 1
    finally:
        # SFTPFile.close() swallows a failed close: send it as a request of
        # our own to see the server's answer.
        f._closed = True
        try:
            sftp._request(paramiko.sftp.CMD_CLOSE, f.handle)
        except IOError as e:
            if result["refused"] is None:
                result["refused"], result["message"] = "close", str(e)
                return False
    return result["refused"] is None


pieces = [(o, data[o:o + STEP]) for o in range(0, len(data), STEP)] or [(0, b"")]
if mode == "writes":
    write_close("users.csv", pieces)
elif mode == "out-of-order":
    half = len(pieces) // 2
    write_close("users.csv", pieces[half:] + pieces[:half])
elif mode == "filepart":
    if write_close("users.csv.part", pieces):
        try:
            sftp.posix_rename("users.csv.part", "users.csv")
        except IOError as e:
            result["refused"], result["message"] = "rename", str(e)
elif mode == "put":
    try:
        sftp.put(path, "users.csv", confirm=True)
    except IOError as e:
        result["refused"], result["message"] = "put", str(e)
else:
    sys.exit(f"unknown mode {mode}")
t.close()
print(json.dumps(result))
