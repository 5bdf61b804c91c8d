#!/usr/bin/env bash
# Soak WaddleBot on this machine: a three-node JetStream cluster (streams at
# Replicas 3), a throw-away PostgreSQL database, and R replicas of each part
# (router, action core, collector console) as separate processes, for each R
# in $REPLICAS; then `waddlebot bench soak` against it. Figures are recorded
# in docs/benchmarks.md; nothing here is gated.
#
#   deploy/soak/run.sh                       # R = 1 2 3, 2 minutes each, 200 events/s
#   SOAK_FOR=5m SOAK_RATE=300 REPLICAS="2" deploy/soak/run.sh
#
# Needs PostgreSQL at $PG_URL (a server URL; a database per run is created
# and dropped) and Go. Output goes to $OUT (default: a temporary directory).
set -euo pipefail

cd "$(dirname "$0")/../.."
REPLICAS=${REPLICAS:-"1 2 3"}
SOAK_FOR=${SOAK_FOR:-2m}
SOAK_RATE=${SOAK_RATE:-200}
SOAK_CHANNELS=${SOAK_CHANNELS:-50}
SOAK_USERS=${SOAK_USERS:-2000}
SOAK_EVERY=${SOAK_EVERY:-10s}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
BASE_PORT=${BASE_PORT:-24000}
OUT=${OUT:-$(mktemp -d /tmp/waddlebot-soak.XXXXXX)}
mkdir -p "$OUT/bin"

echo "soak: building into $OUT/bin"
go build -o "$OUT/bin/waddlebot" ./cmd/waddlebot
go build -o "$OUT/bin/soakcluster" ./tests/bench/cmd/soakcluster
WB="$OUT/bin/waddlebot"

pids=()
stop_all() {
	# Only the processes this script started, newest first.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}
trap stop_all EXIT

wait_http() { # url
	for _ in $(seq 1 300); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	echo "soak: $1 did not answer" >&2
	return 1
}

for R in $REPLICAS; do
	run="$OUT/r$R"
	mkdir -p "$run"
	c=$((BASE_PORT + R * 100))
	urls="nats://127.0.0.1:$c,nats://127.0.0.1:$((c + 1)),nats://127.0.0.1:$((c + 2))"
	for n in 0 1 2; do
		routes=""
		for m in 0 1 2; do
			[ "$m" = "$n" ] || routes="$routes,nats://127.0.0.1:$((c + 10 + m))"
		done
		"$OUT/bin/soakcluster" --name "n$n" --port $((c + n)) --cluster-port $((c + 10 + n)) \
			--routes "${routes#,}" --store "$run/js$n" >"$run/nats$n.log" 2>&1 &
		pids+=($!)
	done

	export WADDLEBOT_NATS_URL="$urls"
	export WADDLEBOT_DATABASE_URL="$PG_URL/waddlebot_soak_r$R?sslmode=disable"
	export WADDLEBOT_STREAM_REPLICAS=3
	export WADDLEBOT_CONSOLE_ENABLED=true
	export WADDLEBOT_DATA_DIR="$run/data"
	export WADDLEBOT_LOG_LEVEL=warn
	export WADDLEBOT_LOG_FORMAT=text

	# A new meta group can refuse the first stream creations while peers join.
	for try in $(seq 1 30); do
		"$WB" streams apply >"$run/streams.log" 2>&1 && break
		[ "$try" = 30 ] && { cat "$run/streams.log"; exit 1; }
		sleep 1
	done
	WADDLEBOT_CREATE_DATABASE=true "$WB" migrate >"$run/migrate.log" 2>&1

	metrics=""
	port=$((c + 50))
	for i in $(seq 1 "$R"); do
		for part in router "action core" "collector console"; do
			name="${part%% *}$i"
			[ "$part" = "action core" ] && name="core$i"
			[ "$part" = "collector console" ] && name="sender$i"
			# shellcheck disable=SC2086
			WADDLEBOT_HTTP_ADDR="127.0.0.1:$port" "$WB" $part >"$run/$name.log" 2>&1 &
			pids+=($!)
			metrics="$metrics,$name=http://127.0.0.1:$port"
			wait_http "http://127.0.0.1:$port/readyz"
			port=$((port + 1))
		done
	done

	echo "soak: R=$R ready ($urls); soaking $SOAK_FOR at $SOAK_RATE events/s"
	"$WB" bench soak --for "$SOAK_FOR" --rate "$SOAK_RATE" --channels "$SOAK_CHANNELS" --users "$SOAK_USERS" \
		--every "$SOAK_EVERY" --metrics "${metrics#,}" | tee "$run/soak.txt" || echo "soak: R=$R FAILED (see $run)"

	stop_all
	psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS waddlebot_soak_r$R WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf "$run"/js?
done
echo "soak: reports in $OUT/r*/soak.txt"
