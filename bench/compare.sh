#!/usr/bin/env bash
# compare.sh: tether against the baseline hub (bench/baseline), same machine, same
# run. For each run and each scenario it starts a fresh server, runs `tether bench`
# against it, and stops it; then prints each figure for both and their ratio.
#
#   bench/compare.sh                  # 2 runs of everything, 10,000 connections
#   RUNS=3 CONNS=2000 bench/compare.sh
#   SCENARIOS="fanout5 saturation" bench/compare.sh
#   SCENARIOS="json5 json5z echo" bench/compare.sh   # compression off and on; echo
#   SCENARIOS="channels chat" bench/compare.sh       # many small channels over HTTP; rooms where clients publish
#   SCENARIOS="batch grpcstream" bench/compare.sh    # tether only: 10,000 publishes/s by /api/batch, by a gRPC stream
#   BEFORE=main bench/compare.sh      # also tether as built from that git revision ("before")
#
# Results: one JSON line per bench run in $OUT (default bench/results/<time>.jsonl).
# Everything listens on 127.0.0.1 only; every run is bounded (tether bench -timeout).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-2}
CONNS=${CONNS:-10000}
SCENARIOS=${SCENARIOS:-"conns fanout5 saturation echo json5 json5z reconnect"}
TETHER_ADDR=${TETHER_ADDR:-127.0.0.1:18080}
BASELINE_ADDR=${BASELINE_ADDR:-127.0.0.1:18090}
GRPC_ADDR=${GRPC_ADDR:-127.0.0.1:19090} # tether's gRPC (the grpcstream scenario)
TCP_ADDR=${TCP_ADDR:-127.0.0.1:17070}   # tether's raw TCP: off the default port, which another server may hold
OUT=${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl}
BIN=$(mktemp -d)
mkdir -p "$(dirname "$OUT")"

go build -o "$BIN/tether" ./cmd/tether
go build -o "$BIN/baseline" ./bench/baseline
if [[ -n "${BEFORE:-}" ]]; then # tether at another revision, for before/after figures in one run
	mkdir "$BIN/before-src"
	git archive "$BEFORE" | tar -x -C "$BIN/before-src"
	(cd "$BIN/before-src" && go build -o "$BIN/before" ./cmd/tether)
fi

server_pid=""
stop_server() {
	if [[ -n "$server_pid" ]]; then
		kill "$server_pid" 2>/dev/null || true
		for _ in $(seq 150); do # graceful shutdown gets 15s, then SIGQUIT (stack dump) and SIGKILL
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$server_pid" 2>/dev/null; then
			echo "compare.sh: server $server_pid did not stop in 15s; dumping its stacks and killing it" >&2
			kill -QUIT "$server_pid" 2>/dev/null || true
			sleep 1
			kill -KILL "$server_pid" 2>/dev/null || true
		fi
		wait "$server_pid" 2>/dev/null || true
		server_pid=""
	fi
}
trap 'stop_server; rm -rf "$BIN"' EXIT

# start_server KIND: a fresh server, waiting until /healthz answers.
start_server() {
	local kind=$1 addr
	if [[ $kind == tether || $kind == before ]]; then
		addr=$TETHER_ADDR
		local extra=()
		# every client comes from this machine: lift the per-address limit where the revision has one
		# (grep without -q: it reads the whole help, so that pipefail never sees a SIGPIPE)
		if "$BIN/$kind" serve -h 2>&1 | grep -- -max-conns-per-ip >/dev/null; then extra=(--max-conns-per-ip 0); fi
		"$BIN/$kind" serve --http-addr "$addr" --grpc-addr "$GRPC_ADDR" --tcp-addr "$TCP_ADDR" --log-level warn "${extra[@]}" &
	else
		addr=$BASELINE_ADDR
		"$BIN/baseline" -addr "$addr" 2>/dev/null &
	fi
	server_pid=$!
	for _ in $(seq 100); do
		curl -fs "http://$addr/healthz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "compare.sh: $kind did not start" >&2
	exit 1
}

# bench KIND ARGS...: one bench run against a fresh server of KIND.
bench() {
	local kind=$1; shift
	local addr=$TETHER_ADDR
	[[ $kind == baseline ]] && addr=$BASELINE_ADDR
	start_server "$kind"
	local target=$kind
	[[ $kind == before ]] && target=tether # same endpoints; labelled "before" below
	"$BIN/tether" bench "$@" --target "$target" --addr "$addr" --json --timeout 4m | jq -c --arg k "$kind" '.target = $k' | tee -a "$OUT" || true
	stop_server
	sleep 2 # let TIME_WAIT and the CPU settle between runs
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT.txt"
for run in $(seq "$RUNS"); do
	for sc in $SCENARIOS; do
		# alternate the order so that neither side always goes first
		kinds="tether baseline"
		(( run % 2 == 0 )) && kinds="baseline tether"
		[[ -n "${BEFORE:-}" ]] && kinds="$kinds before"
		[[ $sc == reconnect ]] && kinds="tether${BEFORE:+ before}" # the baseline has no recovery
		[[ $sc == batch || $sc == grpcstream ]] && kinds="tether" # tether's own endpoints, new here
		for kind in $kinds; do
			echo "run $run: $sc on $kind" >&2
			case $sc in
			conns) bench "$kind" conns -n "$CONNS" ;;
			fanout5) bench "$kind" fanout -n "$CONNS" -m 50 -rate 5 -payload 64 ;;
			saturation) bench "$kind" fanout -n "$CONNS" -m 200 -rate 200 -payload 64 -drain 60s ;;
			echo) bench "$kind" echo -c 1000 -d 10s ;;
			json5) bench "$kind" fanout -n "$CONNS" -m 50 -rate 5 -payload 1500 -data json ;;
			json5z) bench "$kind" fanout -n "$CONNS" -m 50 -rate 5 -payload 1500 -data json -compress ;;
			reconnect) bench "$kind" reconnect -n "$CONNS" -m 60 -rate 5 ;;
			channels) bench "$kind" channels -n 2000 -rate 500 -m 10000 ;;
			batch) bench "$kind" channels -n 10000 -rate 10000 -m 150000 -batch 100 ;;
			grpcstream) bench "$kind" channels -n 10000 -rate 10000 -m 150000 -grpc "$GRPC_ADDR" ;;
			chat) bench "$kind" chat -n 2000 -room 10 -rate 2000 -m 40000 ;;
			*) echo "compare.sh: unknown scenario $sc" >&2; exit 2 ;;
			esac
		done
	done
done

# Summary: for each scenario and figure, tether, baseline and the ratio, per run
# (and, with BEFORE, tether before and the ratio after/before).
jq -rs '
  def r: if type == "number" then (. * 100 | round / 100) else . end;
  def key: if (.bench | startswith("channels")) or .bench == "chat" then .bench elif .bench == "fanout" then (if .json then (if .compress then "json5z" else "json5" end) elif .rate >= 100 or .rate == 0 then "saturation" else "fanout5" end) else .bench end;
  def figs: if .bench == "conns" then {rss_per_conn_kib, connect_p99_ms: .connect.p99_ms, open}
    elif .bench == "fanout" or (.bench | startswith("channels")) or .bench == "chat" then {deliveries_per_cpu_sec, deliveries_per_sec, p50_ms: .latency.p50_ms, p99_ms: .latency.p99_ms, lost, health_max_ms, kept_schedule, wire_bytes_per_delivery}
    elif .bench == "reconnect" then {all_back_seconds, resubscribe_p99_ms: .resubscribe.p99_ms, recovered_ok, recovered_failed, lost, duplicated}
    else {round_trips_per_cpu_sec, round_trips_per_sec, p50_ms: .latency.p50_ms, p99_ms: .latency.p99_ms} end;
  group_by(key) | .[] | . as $g | ($g | map(select(.target == "tether"))) as $t | ($g | map(select(.target == "baseline"))) as $b |
  ($g | map(select(.target == "before"))) as $o |
  "== \($g[0] | key)",
  (if ($b | length) == 0 then ($t | to_entries[] | "  run \(.key+1)  tether only: \(.value | figs | map_values(r) | tostring)") else empty end),
  (range(0; [($t|length), ($b|length)] | min) as $i |
    ($t[$i] | figs) as $tf | ($b[$i] | figs) as $bf |
    ($tf | keys_unsorted[]) as $k |
    (($o[$i] // {}) | figs) as $of |
    "  run \($i+1)  \($k): tether \($tf[$k] | r)  baseline \($bf[$k] | r)" +
    (if ($tf[$k] | type) == "number" and ($bf[$k] | type) == "number" and $bf[$k] != 0 then "  ratio \(($tf[$k] / $bf[$k]) * 100 | round / 100)" else "" end) +
    (if ($o | length) > $i then "  before \($of[$k] | r)" + (if ($tf[$k] | type) == "number" and ($of[$k] | type) == "number" and $of[$k] != 0 then "  after/before \(($tf[$k] / $of[$k]) * 100 | round / 100)" else "" end) else "" end)),
  (if ($b | length) == 0 and ($o | length) > 0 then (range(0; [($t|length), ($o|length)] | min) as $i | ($t[$i] | figs) as $tf | ($o[$i] | figs) as $of | ($tf | keys_unsorted[]) as $k |
    "  run \($i+1)  \($k): tether \($tf[$k] | r)  before \($of[$k] | r)" + (if ($tf[$k] | type) == "number" and ($of[$k] | type) == "number" and $of[$k] != 0 then "  after/before \(($tf[$k] / $of[$k]) * 100 | round / 100)" else "" end)) else empty end),
  (if ($t + $b + $o | map(.limit // empty) | length) > 0 then "  LIMITS HIT: \($t + $b + $o | map(select(.limit) | "\(.target): \(.limit)") | join("; "))" else empty end)
' "$OUT" | tee -a "$OUT.txt"
echo "results: $OUT ($OUT.txt)"
