#!/usr/bin/env bash
# Measures the broker's RSS per idle subscribed connection for each way a
# client may set up: with and without heart-beats, with and without a
# RECEIPT on SUBSCRIBE, over TCP and WebSocket. Each variant runs against a
# fresh broker (a heap grown by an earlier run would hide the cost).
# Usage: scripts/idle-rss.sh [CONNS] [OUTDIR]   (default 9000 connections)
# Needs an open-file limit above CONNS in this shell (the broker and the
# load tool are two processes, each with CONNS sockets).
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-9000}
out=${2:-$(mktemp -d)}
mkdir -p "$out"
bin=${STOMPICA_BIN:-}
if [ -z "$bin" ]; then
	go build -o "$out/stompica" ./cmd/stompica
	bin="$out/stompica"
fi
bench=${STOMPBENCH_BIN:-}
if [ -z "$bench" ]; then
	go build -o "$out/stompbench" ./cmd/stompbench
	bench="$out/stompbench"
fi
transports=${TRANSPORTS:-tcp ws}

for tr in $transports; do
	for hb in 0 10000; do
		for receipt in yes no; do
			log="$out/stompica-$tr-$hb-$receipt.log"
			"$bin" --host 127.0.0.1 --port 0 --log-level warn 2>"$log" &
			pid=$!
			trap 'kill $pid 2>/dev/null || true' EXIT
			addr=
			for _ in $(seq 200); do
				addr=$(ss -ltnp 2>/dev/null | grep "pid=$pid," | awk '{print $4}' | head -1 || true)
				[ -n "$addr" ] && break
				sleep 0.05
			done
			[ -n "$addr" ] || { echo "stompica did not start"; cat "$log"; kill $pid; exit 1; }
			url=tcp://$addr
			[ "$tr" = ws ] && url=ws://$addr/ws
			# With heart-beats, hold past the broker's first beat (10 s).
			hold=5s args=()
			[ "$hb" != 0 ] && hold=13s args+=(--heart-beat "$hb")
			[ "$receipt" = no ] && args+=(--no-receipt)
			json="$out/conns-$tr-hb$hb-receipt-$receipt.json"
			"$bench" conns --conns "$conns" --hold "$hold" --pid "$pid" "${args[@]}" --json "$url" >"$json" || true
			kill $pid
			wait $pid 2>/dev/null || true
			python3 - "$json" "$tr" "$hb" "$receipt" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:3} heart-beat={sys.argv[3]:>5} receipt={sys.argv[4]:3} status={d.get('status')} "
      f"connected={d.get('connected')} rss_per_conn_kib={round(d.get('broker_rss_per_conn_kb', 0), 2)}")
PY
		done
	done
done
echo "results in $out"
