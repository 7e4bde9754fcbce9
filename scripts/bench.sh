#!/usr/bin/env bash
# Runs the stompbench scenarios of BENCHMARKS.md against stompica and, when
# it is listening (../shared/peers/rabbitmq.sh starts it), RabbitMQ, in one
# sitting on loopback. Usage: scripts/bench.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
go build -o "$out/stompica" ./cmd/stompica
go build -o "$out/stompbench" ./cmd/stompbench
bench="$out/stompbench"

"$out/stompica" --host 127.0.0.1 --port 0 2>"$out/stompica.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q 'stompica listening' "$out/stompica.log" 2>/dev/null && break; sleep 0.05; done
addr=$(grep -o 'addr=[0-9.:]*' "$out/stompica.log" | head -1 | cut -d= -f2)
[ -n "$addr" ] || { echo "stompica did not start"; cat "$out/stompica.log"; exit 1; }

run() { # name stompbench-args...
	local name=$1; shift
	echo "== $name: stompbench $*"
	"$bench" "$@" --json >"$out/$name.json" || true
	python3 - "$out/$name.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
keys = ("status", "deliveries_per_s", "msgs_per_s", "loss", "dups", "p50_us", "p90_us", "p99_us", "p999_us",
        "max_us", "broker_cpu_us_per_delivery", "broker_cpu_us_per_message", "broker_rss_per_conn_kb")
print("   " + "  ".join(f"{k}={round(d[k], 2) if isinstance(d[k], float) else d[k]}" for k in keys if k in d))
PY
}

for target in stompica rabbitmq; do
	if [ $target = stompica ]; then
		tcp=tcp://$addr ws=ws://$addr/ws p=$pid auth=()
	else
		ss -ltn 'sport = :61613' | grep -q LISTEN || { echo "RabbitMQ not listening: skipped"; continue; }
		tcp=tcp://127.0.0.1:61613 ws=ws://127.0.0.1:15674/ws
		p=$(ss -ltnp 'sport = :61613' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
		auth=(--login guest --passcode guest)
	fi
	msgs=100000; [ $target = rabbitmq ] && msgs=20000
	run "$target-fanout-tcp" fanout --subs 75 --msgs $msgs --timeout 300s --pid "$p" "${auth[@]}" "$tcp"
	run "$target-fanout-ws" fanout --subs 75 --msgs $msgs --timeout 300s --pid "$p" "${auth[@]}" "$ws"
	run "$target-queue" queue --producers 4 --consumers 4 --ack client-individual --msgs $((msgs * 4)) --timeout 300s --pid "$p" "${auth[@]}" "$tcp"
	run "$target-latency" latency --rate 1000 --subs 20 --duration 10s --pid "$p" "${auth[@]}" "$tcp"
done
# RSS per connection needs a fresh broker (heap not grown by the runs above).
kill $pid; wait $pid 2>/dev/null || true
"$out/stompica" --host 127.0.0.1 --port 0 2>"$out/stompica2.log" &
pid=$!
for _ in $(seq 100); do grep -q 'stompica listening' "$out/stompica2.log" 2>/dev/null && break; sleep 0.05; done
addr=$(grep -o 'addr=[0-9.:]*' "$out/stompica2.log" | head -1 | cut -d= -f2)
run stompica-conns conns --conns 9000 --hold 5s --pid "$pid" tcp://$addr
echo "results in $out"
