#!/usr/bin/env bash
# Batch over a real round-trip time (issue 12, item 2); called by benches/run.sh, or
# alone: benches/rtt.sh [RUNS] (runs per mode, default 2).
#
# net_mock serves HTTPS (a CA made here; cs-msg trusts it through SSL_CERT_FILE) and
# answers every request after 100 ms. Between cs-msg and the mock, 25 ms each way:
#
#   netem  (root, `ip netns`, a kernel with sch_netem): the mock runs in its own network
#          namespace behind a veth pair (10.213.0.1 here, 10.213.0.2 there) with
#          `tc qdisc add dev … root netem delay 25ms` on both ends;
#   relay  (otherwise): benches/tools/delay_relay.rs on loopback delays each direction
#          by 25 ms and holds the client's first bytes one round trip for the TCP
#          handshake it does not wait for. The table says which was used.
#
# Then `--batch` of 200 lines at `-j 8`, streamed and `--no-stream`: wall time against
# the ideal 200 / 8 × (0.1 s + one round trip), and the connections and TLS handshakes
# the mock counted. CS_MSG_RTT_MODE=relay skips the netem attempt.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
work=$(mktemp -d)
source benches/common.sh
lines=200 jobs=8 server_ms=100 one_way_ms=25
ns=csmsg-bench-$$ vh=csb$$h vn=csb$$n
netns_made=0
cleanup() {
    stop_mocks
    if [ $netns_made = 1 ]; then
        ip netns del "$ns" 2>/dev/null || true # takes the veth pair with it
        ip link del "$vh" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v curl >/dev/null || skip "curl is needed (to read the mock's counters)"
[ -x /usr/bin/time ] || skip "GNU time (/usr/bin/time) is needed"

build
cargo build --release --quiet -p cs-msg-bench --bin delay_relay
make_ca
export SSL_CERT_FILE=$work/bundle.pem
curl_ca=(--cacert "$work/bundle.pem")

# netem_setup: the namespace, the veth pair and netem on both ends; or why not.
netem_setup() {
    [ "$(id -u)" = 0 ] || { echo "not root"; return 1; }
    command -v ip >/dev/null || { echo "no ip command (iproute2)"; return 1; }
    command -v tc >/dev/null || { echo "no tc command (iproute2)"; return 1; }
    ip netns add "$ns" 2>"$work/ns.err" || { echo "ip netns add failed: $(head -1 "$work/ns.err")"; return 1; }
    netns_made=1
    {
        ip link add "$vh" type veth peer name "$vn" &&
            ip link set "$vn" netns "$ns" &&
            ip addr add 10.213.0.1/24 dev "$vh" && ip link set "$vh" up &&
            ip netns exec "$ns" ip addr add 10.213.0.2/24 dev "$vn" &&
            ip netns exec "$ns" ip link set "$vn" up &&
            ip netns exec "$ns" ip link set lo up
    } 2>"$work/ns.err" || { echo "veth set-up failed: $(head -1 "$work/ns.err")"; return 1; }
    {
        tc qdisc add dev "$vh" root netem delay "${one_way_ms}ms" &&
            ip netns exec "$ns" tc qdisc add dev "$vn" root netem delay "${one_way_ms}ms"
    } 2>"$work/ns.err" || { echo "no netem qdisc (tc: $(head -1 "$work/ns.err"))"; return 1; }
}

mode=relay
if [ "${CS_MSG_RTT_MODE:-}" != relay ]; then
    if why=$(netem_setup); then
        mode=netem
    else
        say "netem is not available ($why): using the loopback delay relay instead"
        if [ $netns_made = 1 ]; then ip netns del "$ns" 2>/dev/null || true; ip link del "$vh" 2>/dev/null || true; netns_made=0; fi
    fi
fi

if [ $mode = netem ]; then
    start_mock srv ip netns exec "$ns" -- --listen 10.213.0.2:0 --tls "$work/server.pem" "$work/server.key" --delay-ms $server_ms --idle-exit 120
    base=$srv_url
    setup="mock in netns $ns behind veth, netem delay ${one_way_ms} ms on both ends"
else
    start_mock srv -- --tls "$work/server.pem" "$work/server.key" --delay-ms $server_ms --idle-exit 120
    target/release/delay_relay --to "127.0.0.1:${srv_url##*:}" --one-way-ms $one_way_ms --idle-exit 120 >"$work/relay" &
    mock_pids+=("$!")
    for _ in $(seq 100); do [ -s "$work/relay" ] && break; sleep 0.05; done
    base="https://$(head -1 "$work/relay")"
    setup="loopback, benches/tools/delay_relay.rs: ${one_way_ms} ms each way (the kernel has no netem)"
fi
say "$setup; base URL $base"

# The round trip as a client sees it: the mean of the last 5 of 6 small requests on one
# connection (curl reuses it; the first pays the handshakes); the mock answers /stats
# at once.
rtt_ms=$(curl -sS "${curl_ca[@]}" -w '%{time_total}\n' $(for _ in 1 2 3 4 5 6; do echo "-o /dev/null $base/stats"; done) \
    | tail -5 | awk '{ s += $1 } END { printf "%.1f", s / NR * 1000 }')
say "measured round trip on a kept-alive connection: $rtt_ms ms"

prompts $lines "$work/in.jsonl"
ideal=$(awk -v n=$lines -v j=$jobs -v s=$server_ms -v r=$((2 * one_way_ms)) 'BEGIN { printf "%.2f", n / j * (s + r) / 1000 }')
rows=()
for flag in "" --no-stream; do
    for run in $(seq "$runs"); do
        reset_stats "$srv_url" "${curl_ca[@]}"
        /usr/bin/time -f '%e %M' -o "$work/time" "$bin" --batch "$work/in.jsonl" -j $jobs $flag \
            --base-url "$base" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
        got=$(grep -c '"message"' "$work/out" || true)
        [ "$got" = $lines ] || { say "only $got of $lines lines answered"; cat "$work/err" >&2; exit 1; }
        read -r secs kb <"$work/time"
        read -r conns hs resumed reqs < <(stats "$srv_url" "${curl_ca[@]}")
        r=$(ratio "$secs" "$ideal")
        rows+=("| \`--batch\` $lines × \`-j $jobs\` ${flag:-(streamed)}, run $run | $secs s | $ideal s | $r | $conns ($hs TLS, $resumed resumed) | $reqs | $(verdict "$conns" $jobs) |")
    done
done

echo
echo "$(machine)"
echo "$setup; mock answers after $server_ms ms; measured round trip $rtt_ms ms"
echo
echo "| benchmark | wall | ideal $lines / $jobs × ($server_ms ms + $((2 * one_way_ms)) ms) | ratio | connections (handshakes) | requests | ≤ \`-j\` connections |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
