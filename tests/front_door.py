#!/usr/bin/env python3
"""Clumsy and hostile SSH clients for rosterd's front-door tests (paramiko).

Usage: front_door.py MODE PORT USER KEYFILE [ARG ...]

Each mode does one thing a real client has done to an SFTP server, checks what
it can see from the client side, and prints one JSON object mapping each check
to "ok" or to what went wrong. The Rust test asserts every value is "ok" and
then checks the server's side (what it holds, whether the district can log in
again).

Modes:
  requests        pty-req, x11-req, env (want-reply), shell and exec requests on
                  a session channel: each is answered with a failure, none hangs
  channels N      as many session channels as the server grants (at most N
                  asked), then N open/close cycles of one channel
  stray-data      40 packets of 32 KiB on a channel that never starts a
                  subsystem; a second channel on the same connection must still
                  work; then the connection stays idle until the server closes it
  stray-then-gone the same 40 packets, then the client closes its socket
  pipelined       40 pipelined requests whose replies exceed the client's 64 KiB
                  window, read only after a pause; another channel of the same
                  connection is served meanwhile
  unread          requests whose replies are never read; the server must close
                  the connection
  handles N MAX   opens write handles over two connections and two subsystems
                  each until refused, expecting exactly N; then writes MAX bytes
                  in all and one more (the district's bytes in flight)
  key-list OTHER  paramiko's SSHClient.connect(key_filename=[OTHER, KEYFILE])
  fail-and-stay N N connections whose login with KEYFILE is refused, each
                  left open after failing (as many SIS scripts do); prints
                  "holding" with how many the server closed, then waits for a
                  line on standard input before closing the rest
"""
import json
import socket
import struct
import sys
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

mode, port, user, keyfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
args = sys.argv[5:]
results = {}
KEY = paramiko.Ed25519Key.from_private_key_file(keyfile)


def check(name, ok, detail=""):
    results[name] = "ok" if ok else (detail or "failed")


def transport(window=2 * 1024 * 1024):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    t = paramiko.Transport(sock, default_window_size=window)
    t.connect(username=user, pkey=KEY)
    return t


def sftp_channel(t):
    chan = t.open_session(timeout=10)
    chan.settimeout(30)
    chan.invoke_subsystem("sftp")
    chan.sendall(struct.pack(">IBI", 5, 1, 3))  # SSH_FXP_INIT, version 3
    length = struct.unpack(">I", recv_exact(chan, 4))[0]
    recv_exact(chan, length)
    return chan


def recv_exact(chan, n):
    buf = b""
    while len(buf) < n:
        part = chan.recv(n - len(buf))
        if not part:
            raise EOFError("channel closed")
        buf += part
    return buf


def read_reply(chan):
    length = struct.unpack(">I", recv_exact(chan, 4))[0]
    body = recv_exact(chan, length)
    return body[0], struct.unpack(">I", body[1:5])[0], body


def sftp_string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def request(kind, rid, payload):
    body = bytes([kind]) + struct.pack(">I", rid) + payload
    return struct.pack(">I", len(body)) + body


def realpath(rid, path):
    return request(16, rid, sftp_string(path))  # SSH_FXP_REALPATH


def stat_root_works(chan, rid):
    chan.sendall(request(17, rid, sftp_string("/")))  # SSH_FXP_STAT
    kind, got, _ = read_reply(chan)
    return kind == 105 and got == rid  # SSH_FXP_ATTRS


def wait_closed(t, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not t.is_active():
            return True
        time.sleep(0.1)
    return False


def refused(name, action):
    """`action` must raise (a refusal), and within 10 s (no hang)."""
    start = time.time()
    try:
        action()
        check(name, False, "accepted")
    except (paramiko.SSHException, EOFError, OSError) as e:
        took = time.time() - start
        check(name, took < 10, f"refused only after {took:.1f}s: {e}")


def env_with_reply(chan):
    # paramiko's set_environment_variable does not ask for a reply; this does.
    m = paramiko.Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("env")
    m.add_boolean(True)
    m.add_string("LC_ALL")
    m.add_string("C")
    chan._event_pending()
    chan.transport._send_user_message(m)
    chan._wait_for_event()


if mode == "requests":
    t = transport()
    t.sock.settimeout(10)
    for name, action in [
        ("pty-req", lambda c: c.get_pty()),
        ("x11-req", lambda c: c.request_x11(single_connection=True)),
        ("env", env_with_reply),
        ("shell", lambda c: c.invoke_shell()),
        ("exec", lambda c: c.exec_command("id")),
    ]:
        chan = t.open_session(timeout=10)
        refused(f"{name} is answered with a failure", lambda: action(chan))
        chan.close()
    # After all that, the same connection still runs SFTP.
    chan = sftp_channel(t)
    check("sftp still works after refused requests", stat_root_works(chan, 1))
    t.close()

elif mode == "channels":
    n = int(args[0])
    t = transport()
    granted = []
    try:
        for _ in range(n):
            granted.append(t.open_session(timeout=10))
    except paramiko.ChannelException as e:
        results["refusal"] = f"ok: {e}"
    check("a channel past the limit is refused", len(granted) < n, f"all {n} granted")
    print(json.dumps({"granted": len(granted)}), file=sys.stderr)
    results["granted"] = len(granted)
    for c in granted:
        c.close()
    time.sleep(0.5)
    failures = 0
    for _ in range(n):
        try:
            c = t.open_session(timeout=10)
            c.close()
        except paramiko.SSHException:
            failures += 1
            time.sleep(0.05)
    check(f"{n} open/close cycles all granted", failures == 0, f"{failures} refused")
    chan = sftp_channel(t)
    check("sftp works after the cycles", stat_root_works(chan, 1))
    t.close()

elif mode in ("stray-data", "stray-then-gone"):
    t = transport()
    chan = t.open_session(timeout=10)
    chan.settimeout(20)
    start = time.time()
    try:
        for _ in range(40):
            chan.sendall(b"x" * 32768)
    except OSError:
        pass  # the server may close a channel that only sends stray data
    check("40 packets of stray data do not block", time.time() - start < 15)
    if mode == "stray-then-gone":
        t.sock.close()
        t.close()
    else:
        other = sftp_channel(t)
        check("another channel of the connection is served", stat_root_works(other, 1))
        print("idle", file=sys.stderr, flush=True)
        closed = wait_closed(t, float(args[0]) if args else 60)
        check("the server closes the idle connection", closed)

elif mode == "pipelined":
    t = transport(window=65536)
    chan = sftp_channel(t)
    path = "/" + "/".join(["abcdefgh"] * 500)  # replies of about 9 KiB each
    for rid in range(1, 41):
        chan.sendall(realpath(rid, path))
    time.sleep(2)
    other = sftp_channel(t)
    check("another channel is served while replies wait", stat_root_works(other, 1))
    ids = [read_reply(chan)[1] for _ in range(40)]
    check("every reply arrives, in order", ids == list(range(1, 41)), str(ids))
    check("the channel still answers", stat_root_works(chan, 41))
    t.close()

elif mode == "unread":
    t = transport(window=65536)
    chan = sftp_channel(t)
    path = "/" + "/".join(["abcdefgh"] * 500)
    chan.settimeout(5)
    try:
        for rid in range(1, 401):
            chan.sendall(realpath(rid, path))
    except (socket.timeout, OSError, EOFError):
        pass  # the server stopped reading: expected once its budget is spent
    print("sent", file=sys.stderr, flush=True)
    closed = wait_closed(t, float(args[0]) if args else 60)
    check("the server closes a connection that never reads", closed)

elif mode == "handles":
    expected, budget = int(args[0]), int(args[1])
    conns = [transport(), transport()]
    chans = [sftp_channel(t) for t in conns for _ in range(2)]
    handles = []
    rid = 0
    refusal = ""
    for i in range(expected + 8):
        chan = chans[i % len(chans)]
        rid += 1
        # SSH_FXP_OPEN users.csv.part for writing (WRITE|CREAT|TRUNC), no attrs.
        chan.sendall(request(3, rid, sftp_string("users.csv.part") + struct.pack(">II", 0x1A, 0)))
        kind, _, body = read_reply(chan)
        if kind != 102:  # SSH_FXP_HANDLE
            refusal = body[13:].decode(errors="replace")
            break
        handles.append((chan, sftp_string(body[9:])))
    check(f"exactly {expected} handles over all sessions", len(handles) == expected, f"got {len(handles)}: {refusal}")
    check("the refusal says why", "too many open files for this district" in refusal, refusal)
    # Bytes in flight: fill the budget over two handles, then one byte more.
    chunk = 32768
    sent = 0
    ok = True
    for n, (chan, raw) in enumerate(handles[:2]):
        for off in range(0, budget // 2, chunk):
            rid += 1
            chan.sendall(request(6, rid, raw + struct.pack(">Q", off) + sftp_string(b"x" * chunk)))
            kind, _, body = read_reply(chan)
            code = struct.unpack(">I", body[5:9])[0]
            ok &= kind == 101 and code == 0
            sent += chunk
    check(f"{budget} bytes in flight are accepted", ok and sent == budget, f"sent {sent}")
    chan, raw = handles[2]
    rid += 1
    chan.sendall(request(6, rid, raw + struct.pack(">Q", 0) + sftp_string(b"y")))
    kind, _, body = read_reply(chan)
    message = body[13:].decode(errors="replace")
    check("one byte past the district's budget is refused", struct.unpack(">I", body[5:9])[0] != 0, message)
    check("the refusal names the budget", "uploads in progress together exceed" in message, message)
    print("holding", file=sys.stderr, flush=True)
    sys.stdin.readline()  # the test uploads for another district meanwhile
    for t in conns:
        t.close()

elif mode == "key-list":
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    start = time.time()
    try:
        client.connect(
            "127.0.0.1",
            port=port,
            username=user,
            key_filename=[args[0], keyfile],
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
            auth_timeout=20,
        )
        sftp = client.open_sftp()
        sftp.listdir("/")
        check("logs in with the second key of its list", True)
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        check("logs in with the second key of its list", False, f"{type(e).__name__}: {e}")
    check("within a few seconds", time.time() - start < 10, f"took {time.time() - start:.1f}s")
    client.close()

elif mode == "fail-and-stay":
    n = int(args[0])
    held, closed_by_server, accepted = [], 0, 0
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        t = paramiko.Transport(sock)
        try:
            t.start_client(timeout=20)
            t.auth_publickey(user, KEY)
            accepted += 1
        except paramiko.AuthenticationException:
            pass  # refused, as expected: the connection stays open
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the server closed it
        if t.is_active():
            held.append(t)
        else:
            closed_by_server += 1
    check("every login was refused", accepted == 0, f"{accepted} accepted")
    results["held"] = len(held)
    results["closed_by_server"] = closed_by_server
    print(f"holding {len(held)}", file=sys.stderr, flush=True)
    sys.stdin.readline()
    check("the connections still open are still open", all(t.is_active() for t in held),
          f"{sum(not t.is_active() for t in held)} of {len(held)} closed")
    for t in held:
        t.close()

else:
    sys.exit(f"unknown mode {mode}")

print(json.dumps(results))
