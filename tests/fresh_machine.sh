#!/usr/bin/env bash
# The README's two commands, run as a newcomer runs them: in a clean clone of
# the committed tree, with Python's test packages (paramiko, aiosmtpd) absent
# (a new virtual environment is first on PATH), so the test command has to
# install what it needs by itself; then the daemon's command, until it takes
# SSH connections, stopped with SIGTERM.
#
# Honest about what is not fresh: OpenSSH's clients stay installed (hiding them
# from PATH would make tests/setup's apt-get a no-op, not a test), and cargo's
# build cache is shared through CARGO_TARGET_DIR when it is set, which saves
# rebuilding dependencies; the clone's own code is built afresh either way.
#
#   bash tests/fresh_machine.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
daemon=
cleanup() {
    [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null
    rm -rf "$scratch"
}
trap cleanup EXIT

git clone -q "$repo" "$scratch/rosterd"
cd "$scratch/rosterd"

# The two commands exactly as the README gives them: its first two ```sh
# blocks, one line each.
mapfile -t commands < <(awk '
    /^```sh$/ { inside = 1; next }
    /^```$/   { if (inside) { inside = 0; if (++blocks == 2) exit } next }
    inside
' README.md)
if [ ${#commands[@]} -ne 2 ]; then
    echo "fresh_machine: expected the README's first two sh blocks to be one command each, found:" >&2
    printf '  %s\n' "${commands[@]}" >&2
    exit 1
fi
daemon_command=${commands[0]}
test_command=${commands[1]}
echo "fresh_machine: daemon command: $daemon_command"
echo "fresh_machine: test command:   $test_command"

# Python without the test packages.
if ! python3 -m venv "$scratch/python" 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$scratch/python"
fi
export PATH="$scratch/python/bin:$PATH"
for module in paramiko aiosmtpd; do
    if python3 -c "import $module" 2>/dev/null; then
        echo "fresh_machine: $module is importable in the new environment; the check would prove nothing" >&2
        exit 1
    fi
done

started=$(date +%s)
bash -c "$test_command"
echo "fresh_machine: the test command passed in a clean clone in $(($(date +%s) - started)) s"

started=$(date +%s)
bash -c "exec $daemon_command" >"$scratch/daemon.log" 2>&1 &
daemon=$!
until grep -q "rosterd is listening on 127.0.0.1:2222" "$scratch/daemon.log"; do
    if ! kill -0 "$daemon" 2>/dev/null || [ $(($(date +%s) - started)) -gt 1200 ]; then
        echo "fresh_machine: the daemon did not start; its output:" >&2
        cat "$scratch/daemon.log" >&2
        exit 1
    fi
    sleep 1
done
# A real SSH server answers with its version line.
banner=$(timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2222; head -c 8 <&3')
if [ "$banner" != "SSH-2.0-" ]; then
    echo "fresh_machine: port 2222 answered ${banner@Q}, not an SSH version line" >&2
    exit 1
fi
echo "fresh_machine: the daemon command took SSH connections after $(($(date +%s) - started)) s"
kill -TERM "$daemon"
if ! wait "$daemon"; then
    echo "fresh_machine: the daemon did not stop cleanly on SIGTERM; its output:" >&2
    cat "$scratch/daemon.log" >&2
    exit 1
fi
daemon=
echo "fresh_machine: the daemon stopped on SIGTERM; both README commands work in a clean clone"
