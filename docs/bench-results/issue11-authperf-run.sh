#!/bin/bash
# run.sh BIN MODE SCENARIO OUT: one fresh server, one bench run, a JSON line appended to OUT.
# MODE: plain (connect without token), rs (RS256), hs (HS256). SCENARIO: reconnect or conns.
bin=$1 mode=$2 scen=$3 out=$4
addr=127.0.0.1:18611
S=bench-secret-0123456789-0123456789-0123456789
case $mode in
plain) sargs=(); bargs=(--connect);;
rs) sargs=(--token-public-key /tmp/authperf/keys/pub.pem); bargs=(--token-key /tmp/authperf/keys/priv.pem);;
hs) sargs=(--token-hmac-secret $S); bargs=(--token-hmac-secret $S);;
esac
rm -f /tmp/authperf/line.json
$bin serve --http-addr $addr --max-conns-per-ip 0 --max-conns-per-user 0 "${sargs[@]}" >/tmp/authperf/serve.log 2>&1 &
pid=$!
for i in $(seq 50); do curl -s -o /dev/null http://$addr/healthz && break; sleep 0.1; done
case $scen in
reconnect) python3 /tmp/authperf/sampler.py $pid $addr > /tmp/authperf/storm.json & spid=$!
/tmp/authperf/tether-after bench reconnect -addr $addr -n 10000 -m 60 -rate 5 -json "${bargs[@]}" > /tmp/authperf/line.json 2>/tmp/authperf/bench.err;;
conns) /tmp/authperf/tether-after bench conns -addr $addr -n 10000 -json "${bargs[@]}" > /tmp/authperf/line.json 2>/tmp/authperf/bench.err;;
esac
cpu=$(awk '{print ($14+$15)/100}' /proc/$pid/stat)
load=$(cut -d" " -f1 /proc/loadavg)
kill $pid; wait $pid 2>/dev/null
storm=""; [ $scen = reconnect ] && { wait $spid; storm=$(sed 's/^{//; s/}$/,/' /tmp/authperf/storm.json); }
sed "s/^{/{\"bin\":\"$(basename $bin)\",\"mode\":\"$mode\",\"server_cpu_seconds\":$cpu,\"load\":$load,$storm/" /tmp/authperf/line.json >> $out
tail -1 $out
