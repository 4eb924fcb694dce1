# sampler.py PID ADDR: polls the server's CPU and its connection and recovery
# counts every 50 ms; prints the CPU seconds from the first dropped
# connection until 10,000 recoveries, as JSON.
import sys, time, urllib.request, json, re
pid, addr = sys.argv[1], sys.argv[2]
def cpu():
    f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / 100
def metrics():
    b = urllib.request.urlopen(f'http://{addr}/metrics', timeout=2).read().decode()
    conns = sum(float(m) for m in re.findall(r'^tether_connections\{[^}]*\} (\S+)', b, re.M))
    rec = sum(float(m) for m in re.findall(r'^tether_recoveries_total\{[^}]*\} (\S+)', b, re.M))
    return conns, rec
peak = 0; start = None; t0 = None
while True:
    try:
        c, ok = metrics(); u = cpu()
    except Exception:
        break
    peak = max(peak, c)
    if start is None and peak >= 9000 and c < peak:
        start, t0 = u, time.time()
    if start is not None and ok >= peak - 20:  # a few may fail to reopen on a loaded machine
        print(json.dumps({"storm_cpu_seconds": round(u - start, 2), "storm_wall_seconds": round(time.time() - t0, 2)}))
        sys.stdout.flush()
        break
    time.sleep(0.05)
