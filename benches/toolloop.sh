#!/usr/bin/env bash
# The tool loop's own cost (issue 12, item 4); called by benches/run.sh, or alone:
# benches/toolloop.sh [RUNS] (hyperfine runs per row, default 40).
#
# Two net_mocks answer after a fixed 20 ms: one with `tool_use` (tool `noop`) until the
# conversation holds 4 tool results, then text (so one `--exec` loop is 5 requests and
# 4 tool runs); one with text at once (1 request). The tool is /bin/true. With T5 and
# T1 the two hyperfine medians and t the median of `/bin/true` itself:
#
#   cs-msg's own time per turn = (T5 - T1 - 4 × 20 ms - 4 × t) / 4
#
# T1 carries start-up, the first connection and the last answer's output, so what is
# left is what one more turn costs beyond the server and the tool. Target: ≤ 2 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}
work=$(mktemp -d)
source benches/common.sh
trap 'stop_mocks; rm -rf "$work"' EXIT
command -v hyperfine >/dev/null || skip "hyperfine is needed (apt-get install hyperfine)"
command -v curl >/dev/null || skip "curl is needed (to read the mock's counters)"
[ -x /bin/true ] || skip "no /bin/true"

build
delay=20
start_mock loop -- --delay-ms $delay --tool-turns 4 --idle-exit 60
start_mock once -- --delay-ms $delay --idle-exit 60
echo '[{"name":"noop","description":"Does nothing.","input_schema":{"type":"object","properties":{}}}]' >"$work/tools.json"
run=("$bin" --no-stdin --tools "$work/tools.json" --exec noop=/bin/true)

# One loop, checked: 5 requests on one connection, exit 0, the final text printed.
"${run[@]}" --base-url "$loop_url" hi >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
read -r conns _ _ reqs < <(stats "$loop_url")
[ "$reqs" = 5 ] || { say "expected 5 requests for one loop, the mock saw $reqs"; exit 1; }
say "one loop: $reqs requests on $conns connection(s)"

rows=()
for round in 1 2; do
    for flag in "" --no-stream; do
        name=${flag:-streamed}
        say "round $round, $name"
        t5=$(median_ms "$runs" 3 "${run[@]}" $flag --base-url "$loop_url" hi)
        t1=$(median_ms "$runs" 3 "${run[@]}" $flag --base-url "$once_url" hi)
        tt=$(median_ms 200 20 /bin/true)
        own=$(awk -v a="$t5" -v b="$t1" -v d=$delay -v t="$tt" 'BEGIN { printf "%.2f", (a - b - 4 * d - 4 * t) / 4 }')
        rows+=("| 5-turn loop, $name (round $round) | $t5 ms | $t1 ms | $tt ms | $own ms | $(verdict "$own" 2.0) |")
    done
done
read -r conns _ _ reqs < <(stats "$loop_url")

echo
echo "$(machine)"
echo "server delay $delay ms per request; tool /bin/true; the loop mock saw $reqs requests on $conns connections over all runs"
echo
echo "| benchmark | T5 (5 requests, 4 tools) | T1 (1 request) | t (/bin/true) | own time per turn | ≤ 2 ms |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
