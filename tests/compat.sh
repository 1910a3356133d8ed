#!/usr/bin/env bash
# Client compatibility: upload users.csv to a real `rosterd serve` on loopback with
# curl (libssh), lftp, rclone and Python paramiko (plain put with confirm, and the
# WinSCP-style .filepart + rename). Fails if any client fails or the published file
# differs from what it sent. .ci/run installs the clients.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl lftp rclone ssh-keygen python3 sqlite3; do
    command -v "$tool" >/dev/null || { echo "compat: $tool is not installed" >&2; exit 1; }
done
python3 -c 'import paramiko' || { echo "compat: python paramiko is not installed" >&2; exit 1; }

cargo build --quiet --locked
BIN=$(realpath "${CARGO_TARGET_DIR:-target}")/debug/rosterd
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '[server]\nlisten = "127.0.0.1:%s"\n' "$PORT" > rosterd.toml
export ROSTERD_CONFIG=$WORK/rosterd.toml
"$BIN" tenant add demo --admin-name Demo --admin-email demo@example.org >/dev/null
ssh-keygen -q -t ed25519 -N '' -f key
"$BIN" key add demo key.pub >/dev/null 2>&1
"$BIN" serve 2>serve.log &
PID=$!
for _ in $(seq 100); do grep -q "listening on" serve.log && break; sleep 0.1; done
grep -q "listening on" serve.log || { cat serve.log; exit 1; }

failures=0
check() { # name, file sent
    local name=$1 sent=$2
    if cmp -s "$sent" data/spool/demo/users.csv; then
        echo "ok   $name"
    else
        echo "FAIL $name: the published users.csv differs from what was sent" >&2
        failures=$((failures + 1))
    fi
}
payload() { python3 -c "import sys; print('Username,First Name'); [print(f'$1-{i:05d},N{i}') for i in range(int(sys.argv[1]))]" "$2" > "$1.csv"; }
SSH_OPTS="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -i $WORK/key"

payload curl 20000
curl -sS --insecure --key key --pubkey key.pub -T curl.csv "sftp://demo@127.0.0.1:$PORT/users.csv" && check curl curl.csv || { echo "FAIL curl" >&2; failures=$((failures + 1)); }

payload lftp 20000
lftp -c "set sftp:connect-program 'ssh -a -x $SSH_OPTS'; set net:max-retries 1; open -u demo,unused sftp://127.0.0.1:$PORT; put lftp.csv -o users.csv" && check lftp lftp.csv || { echo "FAIL lftp" >&2; failures=$((failures + 1)); }

payload rclone 20000
rclone --config /dev/null copyto rclone.csv :sftp:users.csv --sftp-host 127.0.0.1 --sftp-port "$PORT" --sftp-user demo \
    --sftp-key-file key --sftp-disable-hashcheck --retries 1 --low-level-retries 1 -q && check rclone rclone.csv || { echo "FAIL rclone" >&2; failures=$((failures + 1)); }

payload paramiko 20000
payload filepart 20000
python3 - "$PORT" <<'PY' && { check "paramiko put(confirm=True)" paramiko.csv; } || { echo "FAIL paramiko" >&2; failures=$((failures + 1)); }
import sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username="demo", pkey=paramiko.Ed25519Key.from_private_key_file("key"))
s = paramiko.SFTPClient.from_transport(t)
s.put("paramiko.csv", "users.csv", confirm=True)
t.close()
PY
python3 - "$PORT" <<'PY' && { check "paramiko .filepart + rename" filepart.csv; } || { echo "FAIL paramiko .filepart" >&2; failures=$((failures + 1)); }
import sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username="demo", pkey=paramiko.Ed25519Key.from_private_key_file("key"))
s = paramiko.SFTPClient.from_transport(t)
s.put("filepart.csv", "users.csv.filepart", confirm=True)
s.posix_rename("users.csv.filepart", "users.csv")
assert "users.csv" in s.listdir("/"), s.listdir("/")
t.close()
PY

uploads=$(sqlite3 data/rosterd.db "select count(*) from uploads")
echo "uploads recorded: $uploads"
[ "$uploads" -eq 5 ] || { echo "FAIL expected 5 recorded uploads (the .filepart publishes only on rename)" >&2; failures=$((failures + 1)); }
kill -TERM "$PID"; wait "$PID" || { echo "FAIL serve did not exit 0 on SIGTERM" >&2; failures=$((failures + 1)); }
PID=
echo "$((7 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
