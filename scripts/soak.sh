#!/usr/bin/env bash
# Runs the stompbench soak against a fresh stompica on a free loopback port:
# a modest memory budget, so the soak's flood really pauses publishers, and
# 1 s heart-beats, so a client paused too long would be timed out. `make soak`
# builds BIN first and runs this. Exit status: the soak's (0 only when nothing
# was lost or duplicated and the broker came back near its baseline), or 1 when
# the broker did not stop cleanly on SIGTERM.
#
# Usage: scripts/soak.sh [BINDIR] (environment: SOAK_DURATION, SOAK_BUDGET,
# SOAK_HEARTBEAT, SOAK_ARGS for more stompbench flags, e.g. --rate 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-bin}
duration=${SOAK_DURATION:-60s}
budget=${SOAK_BUDGET:-32000000}
hb=${SOAK_HEARTBEAT:-1000}
tmp=$(mktemp -d)
log="$tmp/stompica.log"

"$bin/stompica" --host 127.0.0.1 --port 0 --memory-budget "$budget" --heart-beat "$hb,$hb" --pprof 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 300); do
	grep -q 'msg="stompica listening"' "$log" 2>/dev/null && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.05
done
addr=$(grep 'msg="stompica listening"' "$log" | grep -v 'tls=true' | grep -o 'addr=[0-9.:]*' | head -1 | cut -d= -f2 || true)
if [ -z "$addr" ]; then
	echo "soak: stompica did not start:"
	cat "$log"
	exit 1
fi
echo "soak: stompica pid $pid on $addr, --memory-budget $budget --heart-beat $hb,$hb"

status=0
# shellcheck disable=SC2086 # SOAK_ARGS is split on purpose
"$bin/stompbench" soak --duration "$duration" --pid "$pid" --memory-budget "$budget" --heart-beat "$hb" \
	${SOAK_ARGS:-} "tcp://$addr" || status=$?

kill -TERM $pid
broker=0
wait $pid || broker=$?
trap 'rm -rf "$tmp"' EXIT
# what the broker said, by message, warnings and errors first
echo "soak: broker log ($(wc -l <"$log") lines), by level and message:"
grep -o 'level=[A-Z]* msg="[^"]*"' "$log" | sort | uniq -c | sort -rn | head -20 | sed 's/^/  /'
if [ $broker -ne 0 ]; then
	echo "soak: stompica exited with status $broker after SIGTERM"
	tail -20 "$log"
	[ $status -ne 0 ] || status=1
fi
exit $status
