#!/usr/bin/env bash
# Scaling runs of leased FULL (bench/README.md), in compare.sh's namespace lab:
#
#  1. Offered load: the generator at rising target rates, then flat out
#     (window), with 1 shard (server on CPU 0) and with 2 shards (server on
#     CPUs 0-1, so it shares CPU 1 with the generator: this machine has 2).
#     The raw responder (leased-bench respond) under the same loads: what
#     this machine's packet path alone gives, leased's figures read against it.
#  2. Active leases: 10k, 100k and 1M leases already in the store while the
#     generator runs flat out; the RSS after recovery and at the peak.
#     They are imported (leased import-leases, Kea CSV) into a parked scope,
#     100.64.0.0/10, whose relay agent never exists: only the store and the
#     cache hold those addresses, no packet carries one (the lab's traffic
#     is 198.18.0.0/15 only, and that range has 131k addresses).
#
# Then `leased-bench scaling DIR` prints both tables and writes DIR/scaling.png.
# Needs root (network namespaces). Every run is bounded by --duration.
#
#   bench/scaling.sh [--duration S] [--window N] [--out DIR] [--rates "R1 R2 ..."] [--active "N1 N2 ..."]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=3
WINDOW=1024
OUT=target/scaling
RATES="5000 10000 20000 30000 40000 50000 60000"
ACTIVE="10000 100000 1000000"
while (($#)); do
    case $1 in
        --duration) DURATION=$2; shift 2 ;;
        --window) WINDOW=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --rates) RATES=$2; shift 2 ;;
        --active) ACTIVE=$2; shift 2 ;;
        *) echo "scaling.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "scaling.sh: needs root (network namespaces)" >&2; exit 2; }

source bench/lab.sh

PARKED='  scope "parked" {
    relay_addresses = ["100.64.0.1"]
    subnet      = "100.64.0.0/10"
    range_start = "100.64.0.10"  range_end = "100.127.255.254"
  }'

# Kea CSV of N bound leases in the parked scope, valid for a day.
parked_leases() { # n file
    awk -v n="$1" -v now="$(date +%s)" 'BEGIN {
        print "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context";
        for (i = 0; i < n; i++) {
            a = i + 10;  # from 100.64.0.10
            printf "100.%d.%d.%d,0a:00:%02x:%02x:%02x:%02x,,86400,%d,2,0,0,,0,\n",
                64 + int(a / 65536), int(a / 256) % 256, a % 256,
                int(i / 16777216) % 256, int(i / 65536) % 256, int(i / 256) % 256, i % 256, now + 86400;
        }
    }' > "$2"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "== offered load: $DURATION s per rate, then flat out (window $WINDOW); $CLIENTS clients"
for shards in 1 2; do
    cpus=0; ((shards == 1)) || cpus=0-1
    EXTRA_SCOPES="" WORKERS=$shards leased_config FULL > "$WORK/sweep-s$shards.hcl"
    rm -rf "$WORK/leased-FULL"
    pid=$(SERVER_CPUS=$cpus start_server "sweep-s$shards" "$LEASED" serve --config "$WORK/sweep-s$shards.hcl")
    wait_bound
    for rate in $RATES; do
        measure "sweep-s$shards-r$rate" "$pid" --rate "$rate"
    done
    measure "sweep-s$shards-flat" "$pid"
    stop_server "$pid"
done

echo "== the raw responder at the same loads: the packet path's own rate and latency"
pid=$(start_server sweep-resp "$BENCH" respond --listen 198.18.0.1:67 --duration 3600)
wait_bound
for rate in $RATES; do
    measure "sweep-resp-r$rate" "$pid" --rate "$rate"
done
measure "sweep-resp-flat" "$pid"
stop_server "$pid"

echo "== active leases: $ACTIVE; then $DURATION s flat out"
for n in $ACTIVE; do
    EXTRA_SCOPES=$PARKED leased_config FULL > "$WORK/active.hcl"
    rm -rf "$WORK/leased-FULL"
    parked_leases "$n" "$WORK/parked.csv"
    "$LEASED" import-leases --config "$WORK/active.hcl" --format kea-csv "$WORK/parked.csv" | sed "s/^/  [active-$n] /"
    rm -f "$WORK/parked.csv"
    pid=$(start_server "active-$n" "$LEASED" serve --config "$WORK/active.hcl")
    wait_bound
    echo "recovered_rss_kb=$(rss_kb "$pid")" > "$OUT/active-$n.recovered"
    measure "active-$n" "$pid"
    stop_server "$pid"
done

"$BENCH" scaling "$OUT" | tee "$OUT/scaling.md"
