#!/usr/bin/env bash
# Instructions executed by an import, counted by valgrind's callgrind: unlike
# seconds, the count repeats (to about 0.1% here) whatever else this shared
# machine is doing, so it shows a change's CPU cost that timings drown in noise.
# It does not count I/O waits.
#
#   bash bench/import_instructions.sh BINARY [BASELINE] [ROWS]
#
# For each binary: a fresh data directory, a first import of ROWS users
# (gen_users.py, default 50,000) and a re-import with every row changed, each
# under callgrind; prints the counts and, with a baseline, the ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=${3:-50000}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/gen_users.py" "$rows" "$work/base.csv"
python3 "$here/gen_users.py" "$rows" "$work/changed.csv" --variant 1
count() { # binary file dir
    valgrind --tool=callgrind --callgrind-out-file="$3/cg.out" \
        "$1" --config "$3/rosterd.toml" import users bench "$2" >/dev/null 2>"$3/vg.err" || true
    awk '/Collected/ {print $4}' "$3/vg.err"
}
declare -A first changed
for b in "$1" ${2:+"$2"}; do
    d=$(mktemp -d -p "$work")
    printf '[log]\nlevel = "warn"\n[storage]\ndatabase = "%s/rosterd.db"\nspool = "%s/spool"\nfingerprint_key = "%s/fp.key"\n' "$d" "$d" "$d" > "$d/rosterd.toml"
    # Builds since 2a47c46 create the database only in `init` (or `serve`).
    if "$b" init --help >/dev/null 2>&1; then "$b" --config "$d/rosterd.toml" init >/dev/null; fi
    "$b" --config "$d/rosterd.toml" tenant add bench --admin-name B --admin-email b@example.org >/dev/null
    { echo Name; for i in 0 1 2 3 4 5 6 7; do echo "School $i"; done; } > "$d/schools.csv"
    "$b" --config "$d/rosterd.toml" school import bench "$d/schools.csv" >/dev/null
    first[$b]=$(count "$b" "$work/base.csv" "$d")
    changed[$b]=$(count "$b" "$work/changed.csv" "$d")
    echo "$b: first import ${first[$b]} instructions, every row changed ${changed[$b]}"
done
if [ -n "${2:-}" ]; then
    python3 -c "import sys; f1,c1,f2,c2=map(int,sys.argv[1:]); print(f'against the baseline: first import {f1/f2:.3f}x, every row changed {c1/c2:.3f}x')" \
        "${first[$1]}" "${changed[$1]}" "${first[$2]}" "${changed[$2]}"
fi
