#!/usr/bin/env bash
# Client compatibility: upload users.csv to a real `rosterd serve` on loopback with
# the clients SIS exports embed: curl (libssh2), lftp, rclone (Go), Python paramiko
# (plain put with confirm, and the WinSCP-style .filepart + rename), JSch 0.1.55
# (Java; RSA key in PEM form; also forced to group exchange), PuTTY's psftp (the
# SSH core of WinSCP and FileZilla; .ppk key, .filepart + rename, host key pinned),
# and OpenSSH's sftp limited to each host-key type, checked against the server's
# key files, and libssh 0.10 (a C client compiled here) with RSA, ed25519 and
# ECDSA keys; then what each client shows when the server refuses a broken file
# (one SEEN line each). One PASS/FAIL line per client and a final count; fails if
# any client fails or a published file differs from what it sent. .ci/run
# installs the clients.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl lftp rclone ssh-keygen python3 sqlite3 java psftp puttygen; do
    command -v "$tool" >/dev/null || { echo "compat: $tool is not installed" >&2; exit 1; }
done
python3 -c 'import paramiko' || { echo "compat: python paramiko is not installed" >&2; exit 1; }
JSCH=/usr/share/java/jsch.jar
[ -f "$JSCH" ] || { echo "compat: JSch is not installed ($JSCH; Debian package libjsch-java)" >&2; exit 1; }
JSCH_MAIN=$(realpath tests/compat/JschUpload.java)
LIBSSH_SRC=$(realpath tests/compat/libssh_upload.c)

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
"$BIN" init >/dev/null
"$BIN" tenant add demo --admin-name Demo --admin-email demo@example.org >/dev/null
ssh-keygen -q -t ed25519 -N '' -f key
"$BIN" key add demo key.pub >/dev/null 2>&1
"$BIN" serve 2>serve.log &
PID=$!
for _ in $(seq 100); do grep -q "listening on" serve.log && break; sleep 0.1; done
grep -q "listening on" serve.log || { cat serve.log; exit 1; }

failures=0
clients=0
check() { # name, file sent
    local name=$1 sent=$2
    clients=$((clients + 1))
    if cmp -s "$sent" data/spool/demo/users.csv; then
        echo "PASS $name"
    else
        echo "FAIL $name: the published users.csv differs from what was sent" >&2
        failures=$((failures + 1))
    fi
}
fail() { clients=$((clients + 1)); failures=$((failures + 1)); echo "FAIL $1" >&2; }
payload() { python3 -c "import sys; print('Username,First Name'); [print(f'$1-{i:05d},N{i}') for i in range(int(sys.argv[1]))]" "$2" > "$1.csv"; }
SSH_OPTS="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -i $WORK/key"

payload curl 20000
curl -sS --insecure --key key --pubkey key.pub -T curl.csv "sftp://demo@127.0.0.1:$PORT/users.csv" && check curl curl.csv || fail curl

payload lftp 20000
lftp -c "set sftp:connect-program 'ssh -a -x $SSH_OPTS'; set net:max-retries 1; open -u demo,unused sftp://127.0.0.1:$PORT; put lftp.csv -o users.csv" && check lftp lftp.csv || fail lftp

payload rclone 20000
rclone --config /dev/null copyto rclone.csv :sftp:users.csv --sftp-host 127.0.0.1 --sftp-port "$PORT" --sftp-user demo \
    --sftp-key-file key --sftp-disable-hashcheck --retries 1 --low-level-retries 1 -q && check rclone rclone.csv || fail rclone

payload paramiko 20000
payload filepart 20000
python3 - "$PORT" <<'PY' && { check "paramiko put(confirm=True)" paramiko.csv; } || fail paramiko
import sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username="demo", pkey=paramiko.Ed25519Key.from_private_key_file("key"))
s = paramiko.SFTPClient.from_transport(t)
s.put("paramiko.csv", "users.csv", confirm=True)
t.close()
PY
python3 - "$PORT" <<'PY' && { check "paramiko .filepart + rename" filepart.csv; } || fail "paramiko .filepart"
import sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username="demo", pkey=paramiko.Ed25519Key.from_private_key_file("key"))
s = paramiko.SFTPClient.from_transport(t)
s.put("filepart.csv", "users.csv.filepart", confirm=True)
s.posix_rename("users.csv.filepart", "users.csv")
assert "users.csv" in s.listdir("/"), s.listdir("/")
t.close()
PY

# JSch 0.1.55: no ed25519, so it needs the ECDSA host key; RSA user key in PEM.
ssh-keygen -q -t rsa -b 3072 -m PEM -N '' -f jsch_key
"$BIN" key add demo jsch_key.pub >/dev/null 2>&1
payload jsch 20000
java -cp "$JSCH" "$JSCH_MAIN" "$PORT" demo jsch_key jsch.csv users.csv >jsch.out 2>&1 \
    && check "JSch 0.1.55 ($(cat jsch.out))" jsch.csv || { cat jsch.out >&2; fail "JSch 0.1.55"; }
# RFC 4419: JSch asks for a group of at most 2048 bits (russh alone sent 4096).
payload jschgex 20000
java -cp "$JSCH" "$JSCH_MAIN" "$PORT" demo jsch_key jschgex.csv users.csv diffie-hellman-group-exchange-sha256 >jsch.out 2>&1 \
    && check "JSch 0.1.55 diffie-hellman-group-exchange-sha256" jschgex.csv || { cat jsch.out >&2; fail "JSch group exchange"; }

# RFC 4419 with paramiko, whose bounds can be set: the group received must
# honour them (russh alone sent 4096 bits to a client allowing at most 2048,
# and 2048 to OpenSSH's request for 8192).
for bounds in 1024:2048:2048 2048:8192:8192 2048:3072:8192; do
    clients=$((clients + 1))
    if got=$(python3 - "$PORT" "$bounds" <<'PY' 2>&1
import sys, paramiko
from paramiko.kex_gex import KexGexSHA256
lo, n, hi = map(int, sys.argv[2].split(":"))
KexGexSHA256.min_bits, KexGexSHA256.preferred_bits, KexGexSHA256.max_bits = lo, n, hi
seen = []
parse = KexGexSHA256._parse_kexdh_gex_group
def spy(self, m):
    parse(self, m)
    seen.append(self.p.bit_length())
KexGexSHA256._parse_kexdh_gex_group = spy
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.get_security_options().kex = ("diffie-hellman-group-exchange-sha256",)
t.connect(username="demo", pkey=paramiko.Ed25519Key.from_private_key_file("key"))
t.close()
bits = seen[0]
want = {"1024:2048:2048": 2048, "2048:8192:8192": 8192, "2048:3072:8192": 3072}[sys.argv[2]]
assert bits == want, f"got a {bits}-bit group, expected {want}"
print(bits)
PY
    ); then
        echo "PASS paramiko group exchange min:preferred:max $bounds got a $got-bit group"
    else
        echo "FAIL paramiko group exchange $bounds: $got" >&2; failures=$((failures + 1))
    fi
done

# PuTTY's psftp: a .ppk key, the host key pinned by fingerprint, and WinSCP's
# .filepart + rename (SSH_FXP_RENAME); a wrong pin must be refused.
puttygen key -O private -o key.ppk
ED_FP=$("$BIN" host-key | awk '/\(ED25519\)/ {print $1}')
payload psftp 20000
printf 'put psftp.csv users.csv.filepart\nren users.csv.filepart users.csv\n' > psftp.batch
psftp -batch -P "$PORT" -i key.ppk -hostkey "$ED_FP" -b psftp.batch demo@127.0.0.1 >psftp.out 2>&1 \
    && check "PuTTY psftp (.ppk, pinned host key, .filepart + ren)" psftp.csv || { cat psftp.out >&2; fail "PuTTY psftp"; }
clients=$((clients + 1))
if psftp -batch -P "$PORT" -i key.ppk -hostkey "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" -b psftp.batch demo@127.0.0.1 >psftp.out 2>&1; then
    echo "FAIL PuTTY psftp accepted a host key that does not match its pin" >&2; failures=$((failures + 1))
else
    echo "PASS PuTTY psftp refuses a host key that does not match its pin"
fi

# OpenSSH limited to each host-key type, trusting only the server's key file
# of that type (so the key it saw is the one `rosterd host-key` printed).
for pair in ssh-ed25519:ssh_host_ed25519_key ecdsa-sha2-nistp256:ssh_host_ecdsa_key \
            rsa-sha2-512:ssh_host_rsa_key rsa-sha2-256:ssh_host_rsa_key; do
    alg=${pair%%:*} file=keys/${pair#*:}
    echo "[127.0.0.1]:$PORT $(ssh-keygen -y -f "$file")" > known_hosts
    payload "openssh-$alg" 2000
    echo "put openssh-$alg.csv users.csv" | sftp -F /dev/null -o StrictHostKeyChecking=yes -o UserKnownHostsFile=known_hosts \
        -o HostKeyAlgorithms="$alg" -o IdentitiesOnly=yes -i key -P "$PORT" -b - demo@127.0.0.1 >/dev/null 2>sftp.err \
        && check "OpenSSH sftp, host key $alg" "openssh-$alg.csv" || { cat sftp.err >&2; fail "OpenSSH sftp, host key $alg"; }
done

uploads=$(sqlite3 data/rosterd.db "select count(*) from uploads")
clients=$((clients + 1))
if [ "$uploads" -eq 12 ]; then
    echo "PASS uploads recorded: $uploads (a .filepart publishes only on rename)"
else
    echo "FAIL expected 12 recorded uploads, got $uploads (a .filepart publishes only on rename)" >&2; failures=$((failures + 1))
fi

# libssh 0.10 (Debian's libssh-dev), through a small C client
# (tests/compat/libssh_upload.c), with each user-key type, each trusting only
# the server's host key of that type. RSA is the case that failed ("The key
# algorithm 'ssh-rsa' is not allowed to be used by PUBLICKEY_ACCEPTED_TYPES"):
# libssh picks the RSA signature from server-sig-algs as soon as it has the
# server's NEWKEYS, and russh sent that list only after the client's NEWKEYS
# (vendored russh patch 0004). A name rosterd refuses must come back as
# libssh's error. Its uploads are counted here, apart from the clients above.
libssh_clients() {
    command -v cc >/dev/null || { echo "compat: cc is not installed" >&2; exit 1; }
    [ -f /usr/include/libssh/libssh.h ] || { echo "compat: libssh is not installed (Debian package libssh-dev)" >&2; exit 1; }
    cc -Wall -Wextra -Werror -o libssh_upload "$LIBSSH_SRC" -lssh
    local before pair type hostkey
    before=$(sqlite3 data/rosterd.db "select count(*) from uploads")
    for pair in rsa:ssh_host_rsa_key ed25519:ssh_host_ed25519_key ecdsa:ssh_host_ecdsa_key; do
        type=${pair%%:*} hostkey=keys/${pair#*:}
        ssh-keygen -q -t "$type" -N '' -f "libssh_$type"
        "$BIN" key add demo "libssh_$type.pub" >/dev/null 2>&1
        echo "[127.0.0.1]:$PORT $(ssh-keygen -y -f "$hostkey")" > libssh_known_hosts
        payload "libssh-$type" 20000
        ./libssh_upload "$PORT" demo "libssh_$type" libssh_known_hosts "libssh-$type.csv" users.csv >libssh.out 2>&1 \
            && check "$(cat libssh.out)" "libssh-$type.csv" || { cat libssh.out >&2; fail "libssh, $type user key"; }
    done
    clients=$((clients + 1))
    if ./libssh_upload "$PORT" demo libssh_ed25519 libssh_known_hosts libssh-ed25519.csv upload.csv >libssh.out 2>&1; then
        echo "FAIL libssh reported success for a name rosterd refuses" >&2; failures=$((failures + 1))
    elif grep -q "permission denied" libssh.out; then
        echo "PASS libssh reports a refused name: $(cat libssh.out)"
    else
        echo "FAIL libssh failed on a refused name without saying why: $(cat libssh.out)" >&2; failures=$((failures + 1))
    fi
    clients=$((clients + 1))
    local uploads
    uploads=$(( $(sqlite3 data/rosterd.db "select count(*) from uploads") - before ))
    if [ "$uploads" -eq 3 ]; then
        echo "PASS libssh uploads recorded: $uploads"
    else
        echo "FAIL expected 3 recorded libssh uploads, got $uploads" >&2; failures=$((failures + 1))
    fi
}

libssh_clients

# Refused files: what each client shows, and its exit status, when the server
# refuses users.csv at a write (a header without a Username column, "early")
# and at the close (more than half of its rows bad, "late"). An early refusal
# must end every job non-zero, and a late one every job whose client reads
# the close's answer (curl 7.88 does not: it exits 0); the published
# users.csv stays as it was, and each refusal is recorded. The README's table
# "What a district's job sees when its file is refused" is these lines.
refused_upload() { # client, file: the client's usual upload of file as users.csv
    local file=$2
    case $1 in
        openssh) echo "put $file users.csv" | sftp -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
                     -o IdentitiesOnly=yes -o LogLevel=ERROR -i key -P "$PORT" -b - demo@127.0.0.1 ;;
        curl) curl -sS --insecure --key key --pubkey key.pub -T "$file" "sftp://demo@127.0.0.1:$PORT/users.csv" ;;
        lftp) lftp -c "set sftp:connect-program 'ssh -a -x $SSH_OPTS'; set net:max-retries 1; open -u demo,unused sftp://127.0.0.1:$PORT; put $file -o users.csv" ;;
        rclone) rclone --config /dev/null copyto "$file" :sftp:users.csv --sftp-host 127.0.0.1 --sftp-port "$PORT" \
                    --sftp-user demo --sftp-key-file key --sftp-disable-hashcheck --retries 1 --low-level-retries 1 -q ;;
        paramiko) python3 - "$PORT" "$file" <<'PY'
import sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username="demo", pkey=paramiko.Ed25519Key.from_private_key_file("key"))
s = paramiko.SFTPClient.from_transport(t)
try:
    s.put(sys.argv[2], "users.csv", confirm=True)
except IOError as e:
    sys.exit(f"IOError: {e}")
finally:
    t.close()
PY
        ;;
        jsch) java -cp "$JSCH" "$JSCH_MAIN" "$PORT" demo jsch_key "$file" users.csv ;;
        psftp) printf 'put %s users.csv.filepart\nren users.csv.filepart users.csv\n' "$file" > refused.batch
               psftp -batch -P "$PORT" -i key.ppk -hostkey "$ED_FP" -b refused.batch demo@127.0.0.1 ;;
        libssh) ./libssh_upload "$PORT" demo libssh_ed25519 libssh_known_hosts "$file" users.csv ;;
    esac
}
refused_try() { # client, early|late, what its output must show
    local client=$1 when=$2 want=$3 out code
    if out=$(refused_upload "$client" "refused-$when.csv" 2>&1); then code=0; else code=$?; fi
    out=$(printf '%s' "$out" | sed -e '/^Using username/d; /^Remote working directory/d; /^local:/d; /^sftp> /d' \
        | tr '\n' ' ' | sed 's/  */ /g; s/ $//' | cut -c1-240)
    clients=$((clients + 1))
    echo "SEEN $client, refused $when: exit $code: $out"
    if ! cmp -s refused-before.csv data/spool/demo/users.csv; then
        echo "FAIL $client ($when): the refused file replaced users.csv" >&2; failures=$((failures + 1))
    elif [[ $out != *"$want"* ]]; then
        echo "FAIL $client ($when): expected its output to show \"$want\"" >&2; failures=$((failures + 1))
    elif [ "$code" -eq 0 ] && ! { [ "$client" = curl ] && [ "$when" = late ]; }; then
        echo "FAIL $client ($when): the job ended with status 0" >&2; failures=$((failures + 1))
    else
        echo "PASS $client refused $when: exit $code"
    fi
}
refused_pass() {
    python3 -c "print('Username,First Name'); [print(f'before-{i:03d},N{i}') for i in range(50)]" > refused-before.csv
    echo "put refused-before.csv users.csv" | sftp -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o IdentitiesOnly=yes -o LogLevel=ERROR -i key -P "$PORT" -b - demo@127.0.0.1 >/dev/null
    python3 -c "print('Student ID,First,Last'); [print(f'{i},Ann,Lee') for i in range(300)]" > refused-early.csv
    python3 -c "print('Username,Graduation Year'); [print(f'user{i:05d},{2031 if i % 3 == 0 else 1900}') for i in range(300)]" > refused-late.csv
    local refused_before
    refused_before=$(sqlite3 data/rosterd.db "select count(*) from uploads where state = 'refused'")
    refused_try openssh early 'write remote "/users.csv": Failure'
    refused_try openssh late 'close remote: Failure'
    refused_try curl early 'curl: (79) Error in the SSH layer'
    refused_try curl late ''
    refused_try lftp early 'Access failed: users.csv refused: no Username column (header: "Student ID,First,Last")'
    refused_try lftp late 'Access failed: users.csv refused: more than half of the data rows (200 of 300) have errors'
    refused_try rclone early 'Update ReadFrom failed: sftp: "users.csv refused: no Username column'
    refused_try rclone late 'Update Close failed: sftp: "users.csv refused: more than half of the data rows'
    refused_try paramiko early 'IOError: size mismatch in put!'
    refused_try paramiko late 'IOError: size mismatch in put!'
    refused_try jsch early 'SftpException 4: users.csv refused: no Username column'
    refused_try jsch late 'SftpException 4: users.csv refused: more than half of the data rows'
    refused_try psftp early 'error while writing: failure'
    refused_try psftp late 'error while closing: failure'
    refused_try libssh early 'sftp_write failed: SFTP server: users.csv refused: no Username column'
    refused_try libssh late 'sftp_close failed: SFTP server: users.csv refused: more than half of the data rows'
    clients=$((clients + 1))
    local refused=0
    for _ in $(seq 100); do
        refused=$(( $(sqlite3 data/rosterd.db "select count(*) from uploads where state = 'refused'") - refused_before ))
        [ "$refused" -ge 16 ] && break
        sleep 0.1
    done
    if [ "$refused" -eq 16 ]; then
        echo "PASS refused uploads recorded: $refused"
    else
        echo "FAIL expected 16 refused uploads recorded, got $refused" >&2; failures=$((failures + 1))
    fi
}
refused_pass
clients=$((clients + 1))
if kill -TERM "$PID" && wait "$PID"; then
    echo "PASS serve exits 0 on SIGTERM"
else
    echo "FAIL serve did not exit 0 on SIGTERM" >&2; failures=$((failures + 1))
fi
PID=
echo "$((clients - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
