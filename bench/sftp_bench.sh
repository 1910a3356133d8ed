#!/usr/bin/env bash
# Upload throughput: the same 256 MiB file uploaded with OpenSSH's sftp client to
# rosterd and to OpenSSH's own sshd (internal-sftp, started here on a spare loopback
# port with its own config), in one run, best of $REPEAT. Then $TENANTS tenants
# upload at once to rosterd; all must succeed; server peak RSS is reported.
# Needs openssh-server (apt-get install openssh-server). Prints Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-256}
REPEAT=${REPEAT:-3}
TENANTS=${TENANTS:-64}
CIPHER=${CIPHER:-}   # e.g. aes128-gcm@openssh.com; empty: the client's default choice
command -v /usr/sbin/sshd >/dev/null || { echo "needs openssh-server" >&2; exit 1; }
cargo build --release --locked -q
BIN=$PWD/target/release/rosterd
WORK=$(mktemp -d /tmp/rosterd-sftp-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

head -c $((SIZE_MIB << 20)) /dev/urandom > big.csv
ssh-keygen -q -t ed25519 -N '' -f key
OPTS=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -i "$WORK/key")
[ -n "$CIPHER" ] && OPTS+=(-o "Ciphers=$CIPHER")

# OpenSSH sshd with internal-sftp, chrooted like rosterd's tenants are not, but
# writing to a plain directory: the fastest path OpenSSH has.
SSHD_PORT=$(free_port)
mkdir -p sshd/up && ssh-keygen -q -t ed25519 -N '' -f sshd/host
cp key.pub sshd/authorized_keys
cat > sshd/config <<CFG
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $WORK/sshd/host
PidFile $WORK/sshd/pid
AuthorizedKeysFile $WORK/sshd/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
CFG
mkdir -p /run/sshd
/usr/sbin/sshd -f sshd/config -E "$WORK/sshd/log"
for _ in $(seq 50); do [ -f sshd/pid ] && break; sleep 0.1; done
PIDS+=("$(cat sshd/pid)")

# rosterd
R_PORT=$(free_port)
printf '[server]\nlisten = "127.0.0.1:%s"\nmax_upload_bytes = %s\nmax_sessions_per_tenant = 4\n[log]\nlevel = "warn"\n' "$R_PORT" $(( (SIZE_MIB + 1) << 20 )) > rosterd.toml
export ROSTERD_CONFIG=$WORK/rosterd.toml
"$BIN" tenant add bench --admin-name B --admin-email b@example.org >/dev/null
"$BIN" key add bench key.pub >/dev/null 2>&1
"$BIN" serve 2>serve.log &
RPID=$!
PIDS+=("$RPID")
for _ in $(seq 100); do grep -q "listening on" serve.log && break; sleep 0.1; done

upload() { # user port remote-path -> seconds
    local start end
    start=$(date +%s.%N)
    echo "put big.csv $3" | sftp "${OPTS[@]}" -P "$2" -b - "$1@127.0.0.1" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}
best() { sort -g | head -1; }
ossh=$(for _ in $(seq "$REPEAT"); do upload "$(id -un)" "$SSHD_PORT" "$WORK/sshd/up/users.csv"; done | best)
rost=$(for _ in $(seq "$REPEAT"); do upload bench "$R_PORT" users.csv; done | best)
cmp -s big.csv data/spool/bench/users.csv || { echo "rosterd stored different bytes" >&2; exit 1; }
cmp -s big.csv sshd/up/users.csv || { echo "sshd stored different bytes" >&2; exit 1; }
rate() { echo "scale=1; $SIZE_MIB / $1" | bc -l; }

# Many tenants at once: 8 MiB each, all started together, bounded count.
head -c $((8 << 20)) /dev/urandom > small.csv
for i in $(seq "$TENANTS"); do "$BIN" tenant add "t$i" --admin-name T --admin-email t@example.org >/dev/null; ssh-keygen -q -t ed25519 -N '' -f "k$i"; "$BIN" key add "t$i" "k$i.pub" >/dev/null 2>&1; done
peak=0
start=$(date +%s.%N)
CLIENTS=()
for i in $(seq "$TENANTS"); do
    (echo "put small.csv users.csv" | timeout 300 sftp -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -i "k$i" -P "$R_PORT" -b - "t$i@127.0.0.1" >/dev/null 2>"err$i" && touch "ok$i") &
    CLIENTS+=($!)
done
running() { for c in "${CLIENTS[@]}"; do kill -0 "$c" 2>/dev/null && return 0; done; return 1; }
while running; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$RPID/status"); [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 0.05
done
for c in "${CLIENTS[@]}"; do wait "$c" || true; done
end=$(date +%s.%N)
ok=$(ls ok* 2>/dev/null | wc -l)
same=0; for i in $(seq "$TENANTS"); do cmp -s small.csv "data/spool/t$i/users.csv" && same=$((same + 1)); done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$RPID/status")

cat <<MD
SFTP upload benchmark: ${SIZE_MIB} MiB of random bytes, OpenSSH $(ssh -V 2>&1 | cut -d, -f1) sftp client, loopback, best of $REPEAT, $(nproc) cores${CIPHER:+, cipher $CIPHER}.

| server | seconds | MiB/s | vs OpenSSH |
|---|---:|---:|---:|
| OpenSSH sshd, internal-sftp | $(printf %.2f "$ossh") | $(rate "$ossh") | 1.00x |
| rosterd | $(printf %.2f "$rost") | $(rate "$rost") | $(echo "scale=2; $ossh / $rost" | bc -l)x |

$TENANTS tenants uploading 8 MiB each at once: $ok/$TENANTS clients succeeded, $same/$TENANTS files published intact, $(printf %.1f "$(echo "$end - $start" | bc -l)") s in all; rosterd RSS peak during the run $((peak / 1024)) MiB (VmHWM since start $((hwm / 1024)) MiB).
MD
