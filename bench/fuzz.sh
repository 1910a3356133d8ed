#!/usr/bin/env bash
# Run every fuzz target (or those named as arguments) for SECONDS_PER_TARGET
# (default 600) each, two at a time on the two
# cores, growing fuzz/corpus/<target>/; then minimise each corpus and write the
# figures (time, executions, corpus size, crashes) to bench/out/fuzz.md.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# A crash is saved under fuzz/artifacts/<target>/; copy it to
# fuzz/regressions/<target>/ once fixed, so `cargo test` replays it forever.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${SECONDS_PER_TARGET:-600}
targets=(csv_import field_rules public_keys)
[ $# -gt 0 ] && targets=("$@")
mkdir -p ../bench/out logs
[ -d corpus/csv_import ] || ./seed.sh
cargo +nightly fuzz build -O >/dev/null

run() {
  local t=$1
  : > "logs/$t.log"
  # -rss_limit_mb bounds memory; libFuzzer stops at the first crash.
  if cargo +nightly fuzz run -O "$t" corpus/"$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"logs/$t.log" 2>&1; then
    echo ok >"logs/$t.status"
  else
    echo CRASH >"logs/$t.status"
  fi
}
for t in "${targets[@]}"; do
  run "$t" &
  # two at a time
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 1; done
done
wait

{
  echo "Fuzzing, $seconds s per target, two targets at a time on 2 cores ($(date -u +%Y-%m-%d))."
  echo
  echo "| target | executions | exec/s | coverage (edges) | corpus before cmin | corpus after cmin | result |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  for t in "${targets[@]}"; do
    log=logs/$t.log
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    before=$(ls corpus/"$t" | wc -l)
    cargo +nightly fuzz cmin -O "$t" corpus/"$t" >"logs/$t.cmin.log" 2>&1
    after=$(ls corpus/"$t" | wc -l)
    echo "| $t | $execs | $rate | $cov | $before | $after | $(cat logs/$t.status) |"
  done
} | tee ../bench/out/fuzz.md
