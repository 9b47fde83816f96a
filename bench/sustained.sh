#!/usr/bin/env bash
# Sustained load (bench/README.md): one leased server, in compare.sh's
# namespace lab, measured in consecutive windows at a fixed rate, so that
# what a 3 s run on a fresh store never shows — the store folding its
# journal and history under load — shows window by window. Per window:
# leases/s, p50 and p99 DORA, p99 REQUEST→ACK, and each thread group's CPU
# (ms) in it. Needs root (network namespaces); every window is bounded by
# --window-seconds, the run by their number.
#
#   bench/sustained.sh [--rate 86000] [--windows 20] [--window-seconds 3] [--mode FULL|NORMAL|OFF]
#                      [--no-history] [--out target/sustained]
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=86000
WINDOWS=20
SECONDS_PER=3
MODE=FULL
HISTORY=yes
OUT=target/sustained
while (($#)); do
    case $1 in
        --rate) RATE=$2; shift 2 ;;
        --windows) WINDOWS=$2; shift 2 ;;
        --window-seconds) SECONDS_PER=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        --no-history) HISTORY=no; shift ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "sustained.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "sustained.sh: needs root (network namespaces)" >&2; exit 2; }
case $MODE in FULL | NORMAL | OFF) ;; *) echo "sustained.sh: --mode is FULL, NORMAL or OFF" >&2; exit 2 ;; esac

DURATION=$SECONDS_PER
WINDOW=4096
source bench/lab.sh

if [[ $HISTORY == no ]]; then
    EXTRA_SCOPES='  persistence = { retention = { client_history = "0s" } }' leased_config "$MODE" > "$WORK/sustained.hcl"
else
    leased_config "$MODE" > "$WORK/sustained.hcl"
fi
pid=$(start_server sustained "$LEASED" serve --config "$WORK/sustained.hcl")
wait_bound

# CPU (ms) so far by thread group: shard-N, the committer, the history
# thread (lease-folder), maintenance, sled's I/O pool, the rest.
threads_ms() {
    for t in /proc/"$pid"/task/*; do
        echo "$(cat "$t/comm") $(awk '{ print $14 + $15 }' "$t/stat")"
    done | awk -v hz="$(getconf CLK_TCK)" '{
        k = $1; sub(/-[0-9]+$/, "", k)
        if (k == "lease-folder") k = "history"; else if (k == "lease-committer") k = "committer"
        else if (k == "lease-maintenan") k = "maintenance"; else if (k !~ /^(shard|sled-io)$/) k = "other"
        ms[k] += $2 * 1000 / hz
    } END { for (k in ms) printf "%s=%d ", k, ms[k]; print "" }'
}

echo "== leased $MODE, client history $HISTORY, $RATE leases/s offered, $WINDOWS windows of $SECONDS_PER s, $CLIENTS clients"
printf "%6s %9s %10s %10s %12s  %s\n" window leases/s "p50 ms" "p99 ms" "ack p99 ms" "CPU ms in the window"
for i in $(seq "$WINDOWS"); do
    before=$(threads_ms)
    measure "window-$i" "$pid" --rate "$RATE" > /dev/null
    after=$(threads_ms)
    python3 - "$OUT/window-$i.json" "$i" "$before" "$after" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
before = dict(kv.split("=") for kv in sys.argv[3].split())
after = dict(kv.split("=") for kv in sys.argv[4].split())
cpu = " ".join(f"{k} {int(after[k]) - int(before.get(k, 0))}" for k in sorted(after))
print(f"{sys.argv[2]:>6} {j['leases_per_second']:>9.0f} {j['dora']['p50_us'] / 1e3:>10.2f} "
      f"{j['dora']['p99_us'] / 1e3:>10.2f} {j['request_ack']['p99_us'] / 1e3:>12.2f}  {cpu}")
PY
done
stop_server "$pid"
