# The namespace lab of compare.sh and scaling.sh, sourced by both (needs
# OUT, DURATION and WINDOW set): builds the binaries, creates two
# namespaces joined by a veth pair (server 198.18.0.1, generator and relay
# agent 198.18.0.2, 198.18.0.0/15 only), and removes them, with every
# process started here (by PID) and the work directory, on exit.
# CACHE_SIZE, if set, is leased's `database.cache_size` (sled's page cache).
# LEASED_BIN and BENCH_BIN, if set, are the binaries to run instead of this
# tree's (built here otherwise): two builds compared side by side.

if [ -z "${LEASED_BIN:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
    cargo build --release -q -p leased -p leased-bench
fi
LEASED=${LEASED_BIN:-$PWD/target/release/leased}
BENCH=${BENCH_BIN:-$PWD/target/release/leased-bench}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Kea keeps its PID and lock files here instead of /run/kea.
export KEA_PIDFILE_DIR KEA_LOCKFILE_DIR
rm -f "$OUT"/*.json "$OUT"/*.server "$OUT"/*.log "$OUT"/*.perfdhcp "$OUT"/*.recovered "$OUT"/*.png
WORK=$(mktemp -d /tmp/leased-bench.XXXXXX)
KEA_PIDFILE_DIR=$WORK KEA_LOCKFILE_DIR=$WORK
SRV=lbs$$ GEN=lbg$$
# Servers are started in command substitutions (subshells): their PIDs go
# to a file, where the exit trap finds them.
cleanup() {
    if [[ -f $WORK/pids ]]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$WORK/pids"
    fi
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$GEN" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Two namespaces, one link: the server at 198.18.0.1, the generator (a
# relay agent at 198.18.0.2, port 67, where servers send relayed replies).
ip netns add "$SRV"
ip netns add "$GEN"
ip link add s$$ netns "$SRV" type veth peer name g$$ netns "$GEN"
ip -n "$SRV" addr add 198.18.0.1/15 dev s$$
ip -n "$GEN" addr add 198.18.0.2/15 dev g$$
for ns in "$SRV" "$GEN"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set s$$ up
ip -n "$GEN" link set g$$ up
# perfdhcp sees replies to its clients' made-up MACs only in promiscuous mode.
ip -n "$GEN" link set g$$ promisc on
# The generator sends segmented (--segment): the kernel cuts its packets
# into datagrams before the link, as a NIC would, so that the server's
# sockets see (and steer) single datagrams.
ip -n "$GEN" link set g$$ gso_max_segs 1
for ns in "$SRV" "$GEN"; do
    ip netns exec "$ns" sysctl -qw net.core.rmem_max=33554432 net.core.wmem_max=33554432 2>/dev/null || true
done

# The pool: 130k addresses; the generator cycles through 100k clients.
CLIENTS=100000
POOL_START=198.18.1.0 POOL_END=198.19.255.250

leased_config() { # sync_mode
    cat <<EOF
dhcp {
  listen     = ["198.18.0.1:67"]
  relay_port = 67
  workers    = ${WORKERS:-1}
  authoritative = true
  database = { type = "sled"  path = "$WORK/leased-$1"  sync_mode = "$1"${CACHE_SIZE:+  cache_size = $CACHE_SIZE} }
  lease_policies = { default_lease_time = "1h"  max_lease_time = "4h"  min_lease_time = "5m"  offer_hold_time = "30s" }
  scope "bench" {
    relay_addresses = ["198.18.0.2"]
    subnet      = "198.18.0.0/15"
    range_start = "$POOL_START"  range_end = "$POOL_END"
    options = { routers = ["198.18.0.1"]  dns_servers = ["198.18.0.1"] }
  }
${EXTRA_SCOPES:-}
}
EOF
}

# CPU seconds (user + system) of a process and its threads so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

# Starts a server (pinned to SERVER_CPUS, CPU 0 unless set) in the server
# namespace; its PID.
start_server() { # name command...
    local name=$1; shift
    ip netns exec "$SRV" taskset -c "${SERVER_CPUS:-0}" "$@" > "$OUT/$name.log" 2>&1 &
    local pid=$!
    echo "$pid" >> "$WORK/pids"
    echo "$pid"
}

# Runs the generator (pinned to CPU 1; further arguments are its own)
# against the running server and records the server's CPU and peak RSS
# next to the generator's report.
measure() { # name pid [generator arguments...]
    local name=$1 pid=$2 before after
    shift 2
    before=$(cpu_seconds "$pid")
    ip netns exec "$GEN" "$BENCH" run --server 198.18.0.1:67 --relay 198.18.0.2:67 --clients "$CLIENTS" \
        --duration "$DURATION" --window "$WINDOW" --cpu 1 --segment --json "$OUT/$name.json" "$@" | sed "s/^/  [$name] /"
    after=$(cpu_seconds "$pid")
    {
        echo "cpu_seconds=$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')"
        echo "peak_rss_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")"
    } > "$OUT/$name.server"
}

stop_server() { # pid
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}

# Waits until a UDP socket is bound to port 67 in the server namespace.
wait_bound() {
    for _ in $(seq 100); do
        [[ -n $(ip netns exec "$SRV" ss -Hlun 'sport = :67') ]] && return 0
        sleep 0.1
    done
    echo "$0: the server did not bind port 67" >&2
    return 1
}

