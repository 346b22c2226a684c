#!/usr/bin/env bash
# Builds release, runs every benchmark of issue 7 against a loopback mock server, and
# prints one Markdown table (paste it into BENCHMARKS.md). A few minutes on 2 cores.
#
#   benches/run.sh                 everything
#   benches/run.sh --no-criterion  skip the cargo bench micro-benchmarks
#   benches/run.sh --no-scenarios  only the single-call loopback table (issue 7)
#   benches/run.sh --scenarios     only the scenarios of issue 12 (below)
#
# Then the scenarios of issue 12, each a sibling script that prints its own tables and
# skips with a message where the machine cannot run it: benches/tls.sh (HTTPS against
# curl, start-up over TLS), benches/rtt.sh (a batch over a 50 ms round trip),
# benches/scale.sh (10,000 lines at -j 64, memory) and benches/toolloop.sh (the tool
# loop's own cost per turn). About 8 more minutes.
#
# Wall times are hyperfine medians (installed with apt-get when missing and possible;
# otherwise the bench_probe timing loop). Peak RSS comes from /usr/bin/time. Every
# comparison is against curl measured in the same run: ratios, not absolute times,
# are what carry over between noisy machines.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

criterion=1
single=1
scenarios=1
for arg in "$@"; do
    case "$arg" in
        --no-criterion) criterion=0 ;;
        --no-scenarios) scenarios=0 ;;
        --scenarios) single=0 ;;
        *) echo "usage: benches/run.sh [--no-criterion] [--no-scenarios | --scenarios]" >&2; exit 2 ;;
    esac
done

# The scenarios of issue 12, after the single-call table (or alone).
run_scenarios() {
    [ $scenarios = 1 ] || return 0
    command -v hyperfine >/dev/null || apt_install hyperfine
    [ -x /usr/bin/time ] || apt_install time
    local s
    for s in tls rtt scale toolloop; do
        echo
        echo "### benches/$s.sh"
        "benches/$s.sh"
    done
}

say() { echo "run.sh: $*" >&2; }

# --- tools -----------------------------------------------------------------------
apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing $1 with apt-get"
        { apt-get update -qq && apt-get install -y -qq "$1"; } >/dev/null 2>&1 || true
    fi
}
command -v curl >/dev/null || { say "curl is needed (it is the baseline)"; exit 1; }
command -v hyperfine >/dev/null || apt_install hyperfine
[ -x /usr/bin/time ] || apt_install time
have_hyperfine=0; command -v hyperfine >/dev/null && have_hyperfine=1
have_time=0; [ -x /usr/bin/time ] && have_time=1
[ $have_hyperfine = 1 ] || say "hyperfine not available: using the bench_probe timing loop"
[ $have_time = 1 ] || say "/usr/bin/time not available: peak RSS is not measured"

if [ $single = 0 ]; then
    run_scenarios
    exit 0
fi

say "building release"
cargo build --release --quiet --bin cs-msg
cargo build --release --quiet -p cs-msg-bench --bin mock_server --bin bench_probe
bin=target/release/cs-msg
probe=target/release/bench_probe
work=$(mktemp -d)
mock_pid=
cleanup() {
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# Bounded twice over: by request count and by time.
target/release/mock_server --max-requests 2000 --max-seconds 1200 \
    --log "$work/first-delta.log" >"$work/url" &
mock_pid=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.05; done
base=$(head -1 "$work/url")
[ -n "$base" ] || { say "the mock server did not start"; exit 1; }
say "mock server at $base"

export CS_MSG_API_KEY=sk-cs2-bench NO_PROXY='*' no_proxy='*'
unset HTTPS_PROXY HTTP_PROXY ALL_PROXY https_proxy http_proxy all_proxy
"$bin" --dry-run --no-stdin hi >"$work/stream.json"
"$bin" --dry-run --no-stdin --no-stream hi >"$work/oneshot.json"
curl_post=(curl -sS --fail -H "x-api-key: $CS_MSG_API_KEY"
    -H "anthropic-version: 2023-06-01" -H "content-type: application/json")

# median_ms RUNS WARMUP CMD...: the median wall time in ms, output to /dev/null.
median_ms() {
    local runs=$1 warmup=$2; shift 2
    if [ $have_hyperfine = 1 ]; then
        local quoted; quoted=$(printf '%q ' "$@")
        hyperfine -N --style none --warmup "$warmup" --runs "$runs" \
            --export-csv "$work/h.csv" -- "$quoted" >/dev/null 2>"$work/h.err" \
            || { cat "$work/h.err" >&2; exit 1; }
        awk -F, 'NR == 2 { printf "%.2f", $4 * 1000 }' "$work/h.csv"
    else
        timeout 600 "$probe" time --runs "$runs" --warmup "$warmup" -- "$@" \
            | awk '{ printf "%.2f", $1 }'
    fi
}

# peak_kb RUNS CMD...: the largest maximum RSS over RUNS runs, in kB.
peak_kb() {
    local runs=$1; shift
    [ $have_time = 1 ] || { echo "n/a"; return; }
    local max=0 kb
    for _ in $(seq "$runs"); do
        /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>"$work/err" \
            || { cat "$work/err" >&2; exit 1; }
        kb=$(tail -1 "$work/rss")
        [ "$kb" -gt "$max" ] && max=$kb
    done
    echo "$max"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# verdict VALUE LIMIT: met when VALUE <= LIMIT (or >= with a third argument "min").
verdict() {
    awk -v v="$1" -v l="$2" -v m="${3:-max}" 'BEGIN {
        if (v == "n/a") { print "n/a"; exit }
        ok = (m == "min") ? (v + 0 >= l + 0) : (v + 0 <= l + 0)
        print ok ? "met" : "**missed**" }'
}

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }

# 1. start-up -----------------------------------------------------------------------
say "1/6 start-up"
t_cs=$(median_ms 300 30 "$bin" --version)
t_curl=$(median_ms 300 30 curl --version)
t_true=$(median_ms 300 30 /bin/true)
r_true=$(ratio "$t_cs" "$t_true")
row "start-up: \`--version\` vs \`/bin/true\`" "$t_cs ms" "$t_true ms" "$r_true" "≤ 2.0" "$(verdict "$r_true" 2.0)"
r_curl=$(ratio "$t_cs" "$t_curl")
row "start-up: \`--version\` vs \`curl --version\`" "$t_cs ms" "$t_curl ms" "$r_curl" "< 1.0" "$(verdict "$r_curl" 0.99)"

# 2. one-shot -----------------------------------------------------------------------
say "2/6 one-shot request"
url="$base/deltas=20/size=8"
t_cs=$(median_ms 40 5 "$bin" --no-stdin --no-stream --base-url "$url" hi)
t_curl=$(median_ms 40 5 "${curl_post[@]}" -o /dev/null --data-binary "@$work/oneshot.json" "$url/v1/messages")
r=$(ratio "$t_cs" "$t_curl")
row "one-shot \`--no-stream\` (no server delay)" "$t_cs ms" "$t_curl ms" "$r" "≤ 1.0" "$(verdict "$r" 1.0)"

# 3. streaming 20,000 deltas ----------------------------------------------------------
say "3/6 streaming 20,000 deltas"
url="$base/deltas=20000/size=8"
t_curl=$(median_ms 15 3 "${curl_post[@]}" -N -o /dev/null --data-binary "@$work/stream.json" "$url/v1/messages")
t_text=$(median_ms 15 3 "$bin" --no-stdin --base-url "$url" hi)
t_json=$(median_ms 15 3 "$bin" --no-stdin --json --base-url "$url" hi)
r=$(ratio "$t_text" "$t_curl")
row "stream 20k deltas, text mode" "$t_text ms" "$t_curl ms" "$r" "≤ 1.3" "$(verdict "$r" 1.3)"
r=$(ratio "$t_json" "$t_curl")
row "stream 20k deltas, \`--json\`" "$t_json ms" "$t_curl ms" "$r" "≤ 1.3" "$(verdict "$r" 1.3)"

# 4. peak RSS -----------------------------------------------------------------------
say "4/6 peak RSS"
url200="$base/deltas=200000/size=8"
m_curl=$(peak_kb 3 "${curl_post[@]}" -N -o /dev/null --data-binary "@$work/stream.json" "$url/v1/messages")
m_text=$(peak_kb 3 "$bin" --no-stdin --base-url "$url" hi)
m_text200=$(peak_kb 3 "$bin" --no-stdin --base-url "$url200" hi)
m_json=$(peak_kb 3 "$bin" --no-stdin --json --base-url "$url" hi)
m_json200=$(peak_kb 3 "$bin" --no-stdin --json --base-url "$url200" hi)
# GNU time reports KiB; the table says MB (10^6 bytes), like the targets.
mb() { awk -v k="$1" 'BEGIN { if (k == "n/a") print "n/a"; else printf "%.1f", k * 1024 / 1e6 }'; }
row "peak RSS, text, 20k deltas" "$(mb "$m_text") MB" "$(mb "$m_curl") MB" "$(ratio "$m_text" "$m_curl")" "≤ 10 MB" "$(verdict "$(mb "$m_text")" 10)"
g=$(ratio "$m_text200" "$m_text")
row "peak RSS, text, 200k / 20k deltas" "$(mb "$m_text200") MB" "$(mb "$m_text") MB" "$g" "≤ 1.10" "$(verdict "$g" 1.10)"
row "peak RSS, \`--json\`, 200k / 20k deltas" "$(mb "$m_json200") MB" "$(mb "$m_json") MB" "$(ratio "$m_json200" "$m_json")" "linear in the answer (0.16 → 1.6 MB of text)" "info"

# 5. added first-token latency ------------------------------------------------------
# Two views of the same runs: the issue's (process start to the first stdout byte,
# minus the server's 1 s pause: includes start-up and sending the request), and the
# latency a token gains on its way through (the server's write of the first delta to
# the first stdout byte, both read from the wall clock of this one machine).
say "5/6 first-token latency (1 s pause, 2 x 10 runs)"
url="$base/deltas=20/size=8/pause=1000"
log="$work/first-delta.log"
read -r l_cs lo_cs hi_cs d_cs dlo_cs dhi_cs < <(timeout 300 "$probe" first-byte --runs 10 \
    --pause-ms 1000 --server-log "$log" -- "$bin" --no-stdin --base-url "$url" hi)
read -r l_curl lo_curl hi_curl d_curl dlo_curl dhi_curl < <(timeout 300 "$probe" first-byte \
    --runs 10 --pause-ms 1000 --server-log "$log" --marker text_delta -- \
    "${curl_post[@]}" -N --data-binary "@$work/stream.json" "$url/v1/messages")
row "first token: process start → first stdout byte − 1 s pause, median (min–max)" "$l_cs ms ($lo_cs–$hi_cs)" "$l_curl ms ($lo_curl–$hi_curl)" "$(ratio "$l_cs" "$l_curl")" "≤ 2 ms" "$(verdict "$l_cs" 2.0)"
row "first token: server writes the delta → first stdout byte, median (min–max)" "$d_cs ms ($dlo_cs–$dhi_cs)" "$d_curl ms ($dlo_curl–$dhi_curl)" "$(ratio "$d_cs" "$d_curl")" "≤ 2 ms" "$(verdict "$d_cs" 2.0)"

# 6. binary size and micro-benchmarks -------------------------------------------------
size=$(stat -c %s "$bin")
row "release binary (stripped)" "$(awk -v s="$size" 'BEGIN { printf "%.2f MB", s / 1e6 }')" "" "" "≤ 8 MB (issue 10: what one pipeline may cost)" "$(verdict "$size" 8000000)"
if [ $criterion = 1 ]; then
    say "6/6 cargo bench --bench parse (about a minute after the build)"
    cargo bench --quiet --bench parse >"$work/criterion" 2>&1 || { cat "$work/criterion" >&2; exit 1; }
    # "thrpt:  [low MiB/s mid MiB/s high MiB/s]" under each benchmark's name.
    mbps() {
        awk -v name="$1" '
            $1 == name { found = 1 }
            found && /thrpt:/ { v = $4; u = $5; if (u ~ /GiB/) v *= 1024; printf "%.0f", v * 1.048576; exit }
        ' "$work/criterion"
    }
    p=$(mbps stream_10MiB/sse_parse)
    pa=$(mbps stream_10MiB/sse_parse+accumulate)
    row "SSE parse (criterion, 10 MB stream)" "$p MB/s" "" "" "" "info"
    row "SSE parse + accumulate (criterion, 10 MB stream)" "$pa MB/s" "" "" "≥ 200 MB/s" "$(verdict "$pa" 200 min)"
fi

echo
echo "$(date -u +%Y-%m-%d), $(nproc) CPUs, $(uname -sr), $(curl --version | head -1 | cut -d' ' -f1-2), $(rustc --version | cut -d' ' -f1-2)"
echo
echo "| benchmark | cs-msg | baseline | ratio | target | |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"

# The mock of the table above is done with; the scenarios start their own.
kill "$mock_pid" 2>/dev/null || true
mock_pid=
run_scenarios
