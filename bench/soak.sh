#!/usr/bin/env bash
# The long SIGKILL soak (tests/soak/kill_soak.py) on a release build: ROUNDS
# rounds (default 200) with seed SEED (default 7); figures to bench/out/soak.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
mkdir -p bench/out
python3 tests/soak/kill_soak.py --binary "${CARGO_TARGET_DIR:-target}/release/rosterd" \
    --rounds "${ROUNDS:-200}" --seed "${SEED:-7}" --tenants 6 --rows 150000 --max-delay 2.5 \
    --throttle-kbit 80000 --out bench/out/soak.md
