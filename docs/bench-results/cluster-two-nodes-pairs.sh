#!/bin/bash
# Fan-out across two nodes on NATS beside one node with memory backends, alternating, in one run.
set -u
B=${TETHER:-./tether} # go build -o tether ./cmd/tether
D=$(mktemp -d)
ulimit -n 200000 2>/dev/null || true
$B serve --http-addr 127.0.0.1:28180 --tcp-addr "" --grpc-addr "" --log-level warn --max-conns-per-ip 0 >/tmp/s.log 2>&1 &
S=$!
$B serve --http-addr 127.0.0.1:28182 --tcp-addr "" --grpc-addr "" --nats embedded --data-dir $D --nats-embedded-port 24222 --log-level warn --max-conns-per-ip 0 >/tmp/b.log 2>&1 &
NB=$!
sleep 2
$B serve --http-addr 127.0.0.1:28181 --tcp-addr "" --grpc-addr "" --nats nats://127.0.0.1:24222 --log-level warn --max-conns-per-ip 0 >/tmp/a.log 2>&1 &
NA=$!
sleep 2
for r in 1 2 3 4; do
  echo "== single-node memory run $r"
  $B bench fanout --addr 127.0.0.1:28180 -n 10000 -m 100 --rate 5 --json
  echo "== cross-node (subscribers on A, publish via B, NATS embedded in B) run $r"
  $B bench fanout --addr 127.0.0.1:28181 --publish-addr 127.0.0.1:28182 -n 10000 -m 100 --rate 5 --json
done
kill $S $NA $NB
wait
