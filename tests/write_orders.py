#!/usr/bin/env python3
"""Uploads whose writes do not simply run from the first byte to the last, for
rosterd's tests (paramiko). The server hashes an upload as it is written and
must still record the SHA-256 of exactly the bytes it published.

Usage: write_orders.py MODE PORT USER KEYFILE

MODE is one of:
  out-of-order   users.csv written middle first, then the start, then the end
  overwrite      users.csv written whole, then its first bytes written again
  staged-swap    users.csv.part closed in one session, replaced by another
                 session's users.csv.part, then renamed to users.csv by the first

Prints, as its last line, the hex SHA-256 of what users.csv must now hold.
"""
import hashlib
import sys

import paramiko

mode, port, user, keyfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def connect():
    t = paramiko.Transport(("127.0.0.1", port))
    t.connect(username=user, pkey=paramiko.Ed25519Key.from_private_key_file(keyfile))
    return t, paramiko.SFTPClient.from_transport(t)


def rows(first, count):
    return "".join(f"user{i},First{i}\n" for i in range(first, first + count)).encode()


def put_at(f, offset, data):
    f.seek(offset)
    f.write(data)
    f.flush()


t, sftp = connect()
if mode == "out-of-order":
    head = b"Username,First Name\n" + rows(0, 3000)
    middle, tail = rows(3000, 3000), rows(6000, 3000)
    with sftp.open("users.csv", "w") as f:
        put_at(f, len(head), middle)
        put_at(f, 0, head)
        put_at(f, len(head) + len(middle), tail)
    body = head + middle + tail
elif mode == "overwrite":
    first = b"Username,First Name\n" + rows(0, 6000)
    again = b"Username,First Name\n" + rows(90000, 1000)
    with sftp.open("users.csv", "w") as f:
        put_at(f, 0, first)
        put_at(f, 0, again)
    body = again + first[len(again):]
elif mode == "staged-swap":
    with sftp.open("users.csv.part", "w") as f:
        f.write(b"Username,First Name\n" + rows(0, 2000))
    t2, other = connect()
    body = b"Username,First Name\n" + rows(50000, 2000)
    with other.open("users.csv.part", "w") as f:
        f.write(body)
    other.close()
    t2.close()
    sftp.posix_rename("users.csv.part", "users.csv")
else:
    sys.exit(f"unknown mode {mode}")
sftp.close()
t.close()
print(hashlib.sha256(body).hexdigest())
