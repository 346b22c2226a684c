#!/usr/bin/env bash
# Batch-mode benchmark (a measurement, not a test; CI does not run it).
#
# A loopback mock (benches/tools/batch_mock.rs) answers every request after a fixed 100 ms.
# Targets (issue 5): 200 prompts with -j 8 finish within 1.2 x the ideal
# 200 / 8 x 100 ms = 2.5 s, and peak memory stays flat from 200 to 2,000 lines.
#
#   benches/batch.sh [RUNS]      # from anywhere; RUNS of the 200-line case (default 3)
#
# Needs GNU time (/usr/bin/time) for the peak RSS. The mock stops by itself once idle.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
[ -x /usr/bin/time ] || { echo "benches/batch.sh: needs GNU time (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet --bin cs-msg
cargo build --release --quiet -p cs-msg-bench --bin batch_mock
work=$(mktemp -d)
mock=
cleanup() { [ -n "$mock" ] && kill "$mock" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

target/release/batch_mock --delay-ms 100 --idle-exit 20 --max-secs 300 >"$work/url" &
mock=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.05; done
url=$(head -1 "$work/url")

for n in 200 2000; do
  for i in $(seq "$n"); do printf '{"id":"q%d","prompt":"prompt number %d"}\n' "$i" "$i"; done >"$work/in$n.jsonl"
done

# run N J: one batch; prints a result row and checks the output.
run() {
  local n=$1 j=$2 secs kib lines ideal
  /usr/bin/time -f '%e %M' -o "$work/time" \
    env CS_MSG_API_KEY=bench target/release/cs-msg --batch "$work/in$n.jsonl" -j "$j" \
    --base-url "$url" >"$work/out.jsonl" 2>"$work/err"
  read -r secs kib <"$work/time"
  lines=$(grep -c '"message"' "$work/out.jsonl" || true)
  [ "$lines" -eq "$n" ] || { echo "only $lines of $n lines answered:" >&2; cat "$work/err" >&2; exit 1; }
  ideal=$(awk -v n="$n" -v j="$j" 'BEGIN { printf "%.2f", n / j * 0.1 }')
  awk -v n="$n" -v j="$j" -v s="$secs" -v i="$ideal" -v k="$kib" \
    'BEGIN { printf "%6d lines  -j %-2d  %6.2f s  ideal %6.2f s  %.2fx  peak RSS %6d KiB\n", n, j, s, i, s / i, k }'
}

echo "cs-msg $(git describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores, mock delay 100 ms"
for _ in $(seq "$runs"); do run 200 8; done
run 2000 8
