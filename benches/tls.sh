#!/usr/bin/env bash
# HTTPS single calls and start-up over TLS (issue 12, items 2 and 3); called by
# benches/run.sh, or alone: benches/tls.sh [RUNS] (hyperfine runs per row, default 60).
#
# net_mock (benches/tools/net_mock.rs) serves TLS on 127.0.0.1 with a certificate from
# a CA made here with openssl. cs-msg and curl are measured in the same run, both
# trusting the system bundle plus that CA: cs-msg through SSL_CERT_FILE=bundle.pem,
# curl through --cacert bundle.pem (bundle.pem = /etc/ssl/certs/ca-certificates.crt +
# the CA), so each parses the same ~150 roots, as on a user's machine.
#
# Prints Markdown tables (paste into BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-60}
work=$(mktemp -d)
source benches/common.sh
trap 'stop_mocks; rm -rf "$work"' EXIT
command -v hyperfine >/dev/null || skip "hyperfine is needed (apt-get install hyperfine)"
command -v curl >/dev/null || skip "curl is needed (it is the baseline)"

build
make_ca
bundle=$work/bundle.pem
start_mock tls -- --tls "$work/server.pem" "$work/server.key" --idle-exit 60
start_mock plain -- --idle-exit 60
say "TLS mock at $tls_url, plain mock at $plain_url"

"$bin" --dry-run --no-stdin hi >"$work/stream.json"
"$bin" --dry-run --no-stdin --no-stream hi >"$work/oneshot.json"
curl_post=(curl -sS --fail -H "x-api-key: $CS_MSG_API_KEY" -H "anthropic-version: 2023-06-01"
    -H "content-type: application/json" -o /dev/null)

# Both see SSL_CERT_FILE (curl ignores it when given --cacert); hyperfine passes the
# environment on, so no `env` process is timed.
export SSL_CERT_FILE=$bundle
# A wrong CA must fail: the measurement is of verified connections.
if SSL_CERT_FILE=$system_bundle "$bin" --no-stdin --no-stream --max-retries 0 \
    --base-url "$tls_url" hi >/dev/null 2>"$work/untrusted"; then
    say "cs-msg accepted a certificate from an untrusted CA"; exit 1
fi
"$bin" --no-stdin --no-stream --base-url "$tls_url" hi >/dev/null

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }

for round in 1 2; do
    say "round $round/2: HTTPS one-shot and streamed, cs-msg and curl ($runs runs each)"
    cs1=$(median_ms "$runs" 5 "$bin" --no-stdin --no-stream --base-url "$tls_url" hi)
    cu1=$(median_ms "$runs" 5 "${curl_post[@]}" --cacert "$bundle" --data-binary "@$work/oneshot.json" "$tls_url/v1/messages")
    cs2=$(median_ms "$runs" 5 "$bin" --no-stdin --base-url "$tls_url" hi)
    cu2=$(median_ms "$runs" 5 "${curl_post[@]}" -N --cacert "$bundle" --data-binary "@$work/stream.json" "$tls_url/v1/messages")
    r1=$(ratio "$cs1" "$cu1"); r2=$(ratio "$cs2" "$cu2")
    row "HTTPS one-shot \`--no-stream\` (round $round)" "$cs1 ms" "$cu1 ms" "$r1" "≤ 0.35" "$(verdict "$r1" 0.35)"
    row "HTTPS streamed (round $round)" "$cs2 ms" "$cu2 ms" "$r2" "≤ 0.35" "$(verdict "$r2" 0.35)"
done
say "plain HTTP one-shot, for reference"
cs3=$(median_ms "$runs" 5 "$bin" --no-stdin --no-stream --base-url "$plain_url" hi)
cu3=$(median_ms "$runs" 5 "${curl_post[@]}" --data-binary "@$work/oneshot.json" "$plain_url/v1/messages")
row "HTTP one-shot \`--no-stream\` (same mock, no TLS)" "$cs3 ms" "$cu3 ms" "$(ratio "$cs3" "$cu3")" "" "info"

# Item 3: the roots are read only for a TLS connection, and once per process.
say "start-up: --dry-run with and without SSL_CERT_FILE"
d_with=$(median_ms 300 30 "$bin" --dry-run --no-stdin hi)
d_without=$(median_ms 300 30 env -u SSL_CERT_FILE "$bin" --dry-run --no-stdin hi)
d_env=$(median_ms 300 30 env -u SSL_CERT_FILE /bin/true)
d_with2=$(median_ms 300 30 env "$bin" --dry-run --no-stdin hi)
srows=()
srows+=("| \`--dry-run\`, SSL_CERT_FILE set (through \`env\`) | $d_with2 ms |")
srows+=("| \`--dry-run\`, SSL_CERT_FILE unset (through \`env -u\`) | $d_without ms |")
srows+=("| \`--dry-run\`, SSL_CERT_FILE set (direct) | $d_with ms |")
srows+=("| \`env -u SSL_CERT_FILE /bin/true\` (the cost of \`env\`) | $d_env ms |")

opens() { # opens CMD...: how often the process opened bundle.pem, ca-certificates or /etc/ssl/certs.
    strace -f -qq -e trace=openat,open -o "$work/strace" "$@" >/dev/null 2>&1 || true
    grep -cE 'bundle\.pem|ca-certificates|/etc/ssl/certs' "$work/strace" || true
}
orows=()
if command -v strace >/dev/null; then
    prompts 20 "$work/in20.jsonl"
    orows+=("| \`--dry-run\` | $(opens "$bin" --dry-run --no-stdin hi) |")
    orows+=("| plain HTTP call | $(opens "$bin" --no-stdin --base-url "$plain_url" hi) |")
    orows+=("| HTTPS call | $(opens "$bin" --no-stdin --base-url "$tls_url" hi) |")
    orows+=("| HTTPS \`--batch\` of 20 lines, \`-j 4\` | $(opens "$bin" --batch "$work/in20.jsonl" -j 4 --base-url "$tls_url") |")
    orows+=("| HTTPS call, SSL_CERT_FILE unset (the platform's defaults) | $(opens env -u SSL_CERT_FILE "$bin" --no-stdin --max-retries 0 --base-url "$tls_url" hi 2>/dev/null) (fails: the CA is not in the system store) |")
    cp "$work/strace" "$work/strace-default"
    ndir=$(grep -c '/etc/ssl/certs/' "$work/strace-default" || true)
else
    say "strace not available: not counting CA store reads"
fi

echo
echo "$(machine)"
echo
echo "| benchmark | cs-msg | curl | ratio | target | |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "| start-up (hyperfine median, 300 runs) | time |"
echo "|---|---|"
printf '%s\n' "${srows[@]}"
if [ ${#orows[@]} -gt 0 ]; then
    echo
    echo "| CA store reads (strace: opens of the bundle or /etc/ssl/certs) | opens |"
    echo "|---|---|"
    printf '%s\n' "${orows[@]}"
    echo
    echo "(without SSL_CERT_FILE, $ndir opens under /etc/ssl/certs/)"
fi
