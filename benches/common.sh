# Shared by the benchmark scripts of issue 12 (benches/tls.sh, rtt.sh, scale.sh,
# toolloop.sh); sourced, not run. Expects `work` (a scratch directory) to be set and
# the repository root to be the working directory.

say() { echo "$(basename "$0"): $*" >&2; }

# skip REASON: this benchmark cannot run here; says why and exits 0 (run.sh goes on).
skip() {
    say "SKIPPED: $*"
    exit 0
}

export LC_ALL=C
export CS_MSG_API_KEY=sk-cs2-bench NO_PROXY='*' no_proxy='*'
unset HTTPS_PROXY HTTP_PROXY ALL_PROXY https_proxy http_proxy all_proxy SSL_CERT_FILE SSL_CERT_DIR

bin=${CS_MSG_BIN:-target/release/cs-msg}
mock=target/release/net_mock
system_bundle=/etc/ssl/certs/ca-certificates.crt

# build: the release binaries every script needs.
build() {
    say "building release (cs-msg, net_mock)"
    cargo build --release --quiet --bin cs-msg
    cargo build --release --quiet -p cs-msg-bench --bin net_mock
}

# make_ca: a fresh CA and a server certificate it signed, for 127.0.0.1, localhost
# and 10.213.0.2 (benches/rtt.sh's namespace), in $work; and $work/bundle.pem, the
# system bundle followed by that CA: the roots a user's machine has plus the gateway's.
make_ca() {
    command -v openssl >/dev/null || skip "openssl is needed to make the CA"
    [ -r "$system_bundle" ] || skip "no system CA bundle at $system_bundle"
    (
        cd "$work"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj "/CN=cs-msg bench CA" -keyout ca.key -out ca.pem \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=localhost" -keyout server.key -out server.csr
        printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:10.213.0.2" \
            "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 2 -extfile server.ext -out server.pem
        cat "$system_bundle" ca.pem >bundle.pem
    ) >/dev/null 2>"$work/openssl.err" || { cat "$work/openssl.err" >&2; exit 1; }
}

# start_mock NAME [PREFIX...] -- ARGS...: starts net_mock (under PREFIX, e.g.
# `ip netns exec NS`) with ARGS, waits for its URL and sets ${NAME}_url and ${NAME}_pid.
start_mock() {
    local name=$1; shift
    local prefix=()
    while [ "$1" != "--" ]; do prefix+=("$1"); shift; done
    shift
    "${prefix[@]}" "$mock" "$@" >"$work/$name.url" 2>"$work/$name.err" &
    local pid=$!
    mock_pids+=("$pid")
    for _ in $(seq 200); do [ -s "$work/$name.url" ] && break; sleep 0.05; done
    local url; url=$(head -1 "$work/$name.url")
    [ -n "$url" ] || { cat "$work/$name.err" >&2; say "net_mock did not start"; exit 1; }
    printf -v "${name}_url" '%s' "$url"
    printf -v "${name}_pid" '%s' "$pid"
}
mock_pids=()
stop_mocks() {
    local p
    for p in "${mock_pids[@]}"; do kill "$p" 2>/dev/null || true; done
}

# stats URL [CURL-ARGS...]: the mock's counters as "C H S R" (connections, TLS handshakes, resumed ones,
# requests).
stats() {
    local url=$1; shift
    curl -sS "$@" "$url/stats" | awk '{ v[$1] = $2 } END { print v["connections"], v["handshakes"], v["resumed"], v["requests"] }'
}
reset_stats() {
    local url=$1; shift
    curl -sS "$@" -o /dev/null "$url/reset"
}

# median_ms RUNS WARMUP CMD...: the hyperfine median wall time in ms (stdout to
# /dev/null). hyperfine is installed by run.sh when missing.
median_ms() {
    local runs=$1 warmup=$2; shift 2
    local quoted; quoted=$(printf '%q ' "$@")
    hyperfine -N --style none --warmup "$warmup" --runs "$runs" \
        --export-csv "$work/h.csv" -- "$quoted" >/dev/null 2>"$work/h.err" \
        || { cat "$work/h.err" >&2; exit 1; }
    awk -F, 'NR == 2 { printf "%.2f", $4 * 1000 }' "$work/h.csv"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# verdict VALUE LIMIT [min]: met when VALUE <= LIMIT (>= with "min").
verdict() {
    awk -v v="$1" -v l="$2" -v m="${3:-max}" 'BEGIN {
        if (v == "n/a") { print "n/a"; exit }
        ok = (m == "min") ? (v + 0 >= l + 0) : (v + 0 <= l + 0)
        print ok ? "met" : "**not met**" }'
}

# prompts N FILE: N batch lines {"id":"qI","prompt":"prompt number I"}.
prompts() {
    awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i++) printf "{\"id\":\"q%d\",\"prompt\":\"prompt number %d\"}\n", i, i }' >"$2"
}

machine() {
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -sr), cs-msg $(git describe --always --dirty 2>/dev/null || echo '?')"
}
