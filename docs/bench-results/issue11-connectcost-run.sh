#!/bin/bash
# As issue11-authperf-run.sh, without the storm sampler (BENCH: the bench binary, tether at 0847bab in these runs); mode hsnp: HS256 with nopres.yaml, a "" namespace without presence.
# run.sh BIN MODE SCENARIO OUT: one fresh server, one bench run, a JSON line appended to OUT.
# MODE: plain (connect without token), rs (RS256), hs (HS256). SCENARIO: reconnect or conns.
bin=$1 mode=$2 scen=$3 out=$4
addr=127.0.0.1:18711
S=bench-secret-0123456789-0123456789-0123456789
case $mode in
plain) sargs=(); bargs=(--connect);;
rs) sargs=(--token-public-key /tmp/cc/keys/pub.pem); bargs=(--token-key /tmp/cc/keys/priv.pem);;
hs) sargs=(--token-hmac-secret $S); bargs=(--token-hmac-secret $S);;
hsnp) sargs=(--token-hmac-secret $S --config /tmp/cc/nopres.yaml); bargs=(--token-hmac-secret $S);;
esac
rm -f /tmp/cc/line.json
$bin serve --http-addr $addr --max-conns-per-ip 0 --max-conns-per-user 0 "${sargs[@]}" >/tmp/cc/serve.log 2>&1 &
pid=$!
for i in $(seq 50); do curl -s -o /dev/null http://$addr/healthz && break; sleep 0.1; done
case $scen in
reconnect)
$BENCH bench reconnect -addr $addr -n 10000 -m 60 -rate 5 -json "${bargs[@]}" > /tmp/cc/line.json 2>/tmp/cc/bench.err;;
conns) $BENCH bench conns -addr $addr -n 10000 -json "${bargs[@]}" > /tmp/cc/line.json 2>/tmp/cc/bench.err;;
esac
cpu=$(awk '{print ($14+$15)/100}' /proc/$pid/stat)
load=$(cut -d" " -f1 /proc/loadavg)
kill $pid; wait $pid 2>/dev/null
storm=""
sed "s/^{/{\"bin\":\"$(basename $bin)\",\"mode\":\"$mode\",\"server_cpu_seconds\":$cpu,\"load\":$load,$storm/" /tmp/cc/line.json >> $out
tail -1 $out
