#!/usr/bin/env bash
# Side-by-side comparison on this machine, in one invocation (bench/README.md):
# the raw responder, the same holding each ACK until a commit to a file
# is on the disk (the floor of a durable server), leased with sync_mode
# FULL, NORMAL and OFF, and Kea
# (Debian's kea-dhcp4-server, memfile with persistence), each driven by
# leased-bench with the same pool, duration and load, server pinned to CPU 0
# and generator to CPU 1; then perfdhcp against Kea and leased as an outside
# cross-check. Prints one table (also written to $OUT/table.md).
#
# With --rounds N the generator-driven servers run N times, interleaved
# (responder, durable responder, FULL, NORMAL, OFF, Kea; again), each on fresh data: the table
# shows each server's median round and the median of its per-round ratios,
# so that the machine's drifts during a run do not decide a ratio.
# Then leased FULL and the responders run at half of FULL's maximum rate
# (the latency target's load), as many rounds, in a second table; the
# durable one also spending leased's own CPU on each request, and leased
# NORMAL (its ACKs wait for no sync).
#
# Needs root (network namespaces). Everything runs inside two namespaces
# created here, joined by a veth pair, with addresses from 198.18.0.0/15;
# every process started here is stopped by PID, the namespaces are removed.
#
#   bench/compare.sh [--duration SECONDS] [--window N] [--rounds N] [--out DIR] [--only NAMES]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10
WINDOW=4096
OUT=target/compare
ONLY=""
ROUNDS=1
while (($#)); do
    case $1 in
        --duration) DURATION=$2; shift 2 ;;
        --window) WINDOW=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds needs a positive number" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "compare.sh: needs root (network namespaces)" >&2; exit 2; }

# Kea and perfdhcp from Debian's packages, installed without starting anything.
if ! command -v kea-dhcp4 >/dev/null || ! command -v perfdhcp >/dev/null; then
    [[ -e /usr/sbin/policy-rc.d ]] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kea-dhcp4-server kea-admin >/dev/null
fi
source bench/lab.sh

kea_config() {
    cat <<EOF
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ "s$$/198.18.0.1" ], "dhcp-socket-type": "udp" },
    "lease-database": { "type": "memfile", "persist": true, "name": "$WORK/kea-leases4.csv", "lfc-interval": 0 },
    "control-socket": { "socket-type": "unix", "socket-name": "$WORK/kea.sock" },
    "valid-lifetime": 3600,
    "subnet4": [ { "id": 1, "subnet": "198.18.0.0/15",
                   "pools": [ { "pool": "$POOL_START - $POOL_END" } ],
                   "option-data": [ { "name": "routers", "data": "198.18.0.1" },
                                    { "name": "domain-name-servers", "data": "198.18.0.1" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$WORK/kea.log" } ], "severity": "WARN" } ]
} }
EOF
}

wanted() { [[ -z $ONLY || ",$ONLY," == *",$1,"* ]]; }

echo "== $DURATION s per server, window $WINDOW, $CLIENTS clients, pool $POOL_START-$POOL_END; server on CPU 0, generator on CPU 1; $ROUNDS round(s)"

# A round's file name: NAME alone for a single round, else NAME.rK.
run_name() { # name round
    if ((ROUNDS == 1)); then echo "$1"; else echo "$1.r$2"; fi
}

# Starts a server, measures it once it is bound, stops it.
# RATE (a fixed rate) and WARM (a 1 s warm-up first) from the environment.
run_server() { # run command...
    local run=$1 pid
    shift
    pid=$(start_server "$run" "$@")
    wait_bound
    if [[ -n ${WARM:-} ]]; then
        CLIENTS=20000 DURATION=1 measure warm "$pid" --first-client 200001 --rate 20000 > /dev/null
    fi
    measure "$run" "$pid" ${RATE:+--rate "$RATE"}
    stop_server "$pid"
}

# The responder (plain, or `durable`: holding each ACK for its commit;
# WORK_NS from the environment: CPU it spends on each request).
responder() { # run [durable]
    run_server "$1" "$BENCH" respond --listen 198.18.0.1:67 --duration 3600 ${2:+--commit-log "$WORK/commit.log"} \
        --work-ns "${WORK_NS:-0}"
    if [[ -n ${WORK_NS:-} ]]; then echo "work_ns=$WORK_NS" >> "$OUT/$1.server"; fi
}

for round in $(seq "$ROUNDS"); do
    if wanted responder; then
        responder "$(run_name responder "$round")"
    fi
    if wanted responder-durable; then
        responder "$(run_name responder-durable "$round")" durable
    fi

    for mode in FULL NORMAL OFF; do
        name=leased-$(echo "$mode" | tr 'A-Z' 'a-z')
        wanted "$name" || continue
        leased_config "$mode" > "$WORK/$name.hcl"
        run_server "$(run_name "$name" "$round")" "$LEASED" serve --config "$WORK/$name.hcl"
        # Every round starts from an empty store.
        rm -rf "$WORK/leased-$mode"
    done

    if wanted kea; then
        kea_config > "$WORK/kea.json"
        ip netns exec "$SRV" kea-dhcp4 -t "$WORK/kea.json" > /dev/null
        run_server "$(run_name kea "$round")" kea-dhcp4 -c "$WORK/kea.json"
        rm -f "$WORK"/kea-leases4.csv*
    fi
done

# The latency target's load: leased FULL and the responders at half of
# FULL's (median) maximum, the same fixed rate for all, each after a 1 s
# warm-up with 20k other clients (a fresh store's first flushes are slow;
# a serving store is warm). The durable responder is the floor there of
# any server that syncs its disk before it acknowledges; spending leased's
# own CPU per request (leased NORMAL's above the responder's, flat out) on
# each, it is the floor of leased's work with a perfect commit path.
# leased NORMAL there is leased's work without the sync wait.
if wanted leased-full && wanted responder; then
    half=$(awk -v r="$("$BENCH" table --median-rate leased-full "$OUT")" 'BEGIN { printf "%d", r / 2 }')
    work=""
    if wanted leased-normal && wanted responder-durable; then
        work=$("$BENCH" table --own-work-ns "$OUT")
    fi
    echo "== p99 at half of leased FULL's maximum: $half leases/s${work:+; the floor with leased own work: $work ns a request}"
    leased_config FULL > "$WORK/leased-full.hcl"
    leased_config NORMAL > "$WORK/leased-normal.hcl"
    for round in $(seq "$ROUNDS"); do
        RATE=$half WARM=1 responder "$(run_name responder-half "$round")"
        if wanted responder-durable; then
            RATE=$half WARM=1 responder "$(run_name responder-durable-half "$round")" durable
        fi
        if [[ -n $work ]]; then
            RATE=$half WARM=1 WORK_NS=$work responder "$(run_name responder-durable-work-half "$round")" durable
        fi
        if wanted leased-normal; then
            RATE=$half WARM=1 run_server "$(run_name leased-normal-half "$round")" "$LEASED" serve --config "$WORK/leased-normal.hcl"
            rm -rf "$WORK/leased-NORMAL"
        fi
        RATE=$half WARM=1 run_server "$(run_name leased-full-half "$round")" "$LEASED" serve --config "$WORK/leased-full.hcl"
        rm -rf "$WORK/leased-FULL"
    done
    rm -f "$OUT"/warm.*
fi

# perfdhcp as an outside check: directly on the link (no relay), at a rate
# it can keep (it saturates its own core near 17k exchanges/s here).
perfdhcp_check() { # name
    ip netns exec "$GEN" taskset -c 1 perfdhcp -4 -l g$$ -r 10000 -p "$DURATION" -R "$CLIENTS" \
        > "$OUT/$1.perfdhcp" 2>&1 || true
    grep -E "^(Rate:|sent packets|received packets|drops ratio|avg delay:)" "$OUT/$1.perfdhcp" | sed "s/^/  [perfdhcp → $1] /" || true
}
if wanted perfdhcp; then
    # Direct clients: the server listens on the link itself.
    sed -e "s|listen     = \\[\"198.18.0.1:67\"\\]|listen     = [\"s$$\"]|" \
        -e "s|relay_addresses = \\[\"198.18.0.2\"\\]|interface = \"s$$\"|" \
        <(leased_config FULL) > "$WORK/leased-direct.hcl"
    sed -i "s|$WORK/leased-FULL|$WORK/leased-direct|" "$WORK/leased-direct.hcl"
    pid=$(start_server leased-direct "$LEASED" serve --config "$WORK/leased-direct.hcl")
    wait_bound
    perfdhcp_check leased
    stop_server "$pid"
    # Clients without an address need Kea's raw sockets.
    kea_config | sed -e "s|kea-leases4.csv|kea-direct.csv|" -e 's|"dhcp-socket-type": "udp"|"dhcp-socket-type": "raw"|' \
        > "$WORK/kea-direct.json"
    pid=$(start_server kea-direct kea-dhcp4 -c "$WORK/kea-direct.json")
    wait_bound
    perfdhcp_check kea
    stop_server "$pid"
fi

if compgen -G "$OUT/*.json" > /dev/null; then
    "$BENCH" table "$OUT" | tee "$OUT/table.md"
fi
