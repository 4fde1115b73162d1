#!/usr/bin/env bash
# A sweep of a namespace with more than a million sockets (a benchmark, not a CI test: minutes).
# As root, on a machine set up by scripts/bootstrap.sh, after a Release build.
#
#   bench/million.sh [HELPERS=56] [PER_HELPER=19000]
#   SOCKETREAPER=path/to/socketreaper bench/million.sh     (another build, e.g. an older one)
#
# Makes a throwaway namespace, fills it with HELPERS x PER_HELPER bound, unconnected UDP sockets
# (each helper process holds PER_HELPER of them, under the per-process descriptor limit), plus
# three connected TCP and three connected UDP target sockets to 127.0.0.250, then sweeps that
# namespace for the targets and prints: the sockets in the namespace (its /proc/net/sockstat),
# the sweep's scanned count, matched/destroyed, its duration, and whether it completed without a
# failed namespace.
#
# Why it needs a million: read(2) of a BPF iterator answers EAGAIN once one read has visited a
# million objects without the program writing anything. The UDP iterator walks the kernel's
# address+port hash, bucket by bucket from 0: bucket = (hash(address, netns) ^ port) & mask. So
# that the walk meets a million silent sockets before any UDP target, a probe first finds the
# target address's hash: one connected socket per bucket (16384 ports in a row), a dry-run
# sweep lists them in walk order, and the first one's port is the hash; the targets then take
# the ports of the last three buckets.
#
# Needs: fs.file-max above the socket count (checked), the hard descriptor limit above PER_HELPER
# (checked), ~1 KiB of kernel memory per socket (~1.1 GiB for the default), two cores for about
# a minute to fill the namespace. Everything it made goes on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
HELPERS=${1:-56}; PER_HELPER=${2:-19000}
reaper=${SOCKETREAPER:-src/Reaper/bin/Release/net10.0/socketreaper}
[ "$(id -u)" -eq 0 ] || { echo "million: run as root"; exit 1; }
[ -x "$reaper" ] || { echo "million: $reaper not found: build first (dotnet build SocketReaper.sln -c Release) or set SOCKETREAPER"; exit 1; }
PORTS=1000
ADDRESSES=$(( (PER_HELPER + PORTS - 1) / PORTS ))
[ "$HELPERS" -le 250 ] && [ "$ADDRESSES" -le 250 ] || { echo "million: at most 250 helpers of 250000 sockets"; exit 1; }
total=$(( HELPERS * PER_HELPER ))
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -gt $(( PER_HELPER + 64 )) ] || { echo "million: the hard descriptor limit ($hard) is below $PER_HELPER sockets per helper: pass a smaller PER_HELPER"; exit 1; }
read -r open_files _ file_max </proc/sys/fs/file-nr
[ $(( file_max - open_files )) -gt $(( total + 10000 )) ] || { echo "million: fs.file-max $file_max leaves too few descriptors for $total sockets; raise it (sysctl fs.file-max)"; exit 1; }
ulimit -n "$hard"

ns=srbench-million-$$
work=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  # Whatever still runs in the namespace is ours (a helper behind a wrapper that did not exec).
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip -n "$ns" link set lo up

# Each filler helper binds PER_HELPER UDP sockets to 127.1.H.A, ports 20000..20999, says
# "ready" and sleeps until it is killed.
cat >"$work/filler.py" <<'PY'
import resource, socket, sys, time
helper, count, ports = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((f"127.1.{helper}.{i // ports + 1}", 20000 + i % ports))
    held.append(s)
print("ready", flush=True)
while True:
    time.sleep(3600)
PY

# The probe: a UDP socket on each of the ports 32768..32768+BUCKETS-1 of 127.0.0.251, connected
# to 127.0.0.250:7779, so that every bucket of the hash holds one.
cat >"$work/probe.py" <<'PY'
import resource, socket, sys, time
buckets = int(sys.argv[1])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for i in range(buckets):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.251", 32768 + i))
    u.connect(("127.0.0.250", 7779))
    held.append(u)
print("ready", flush=True)
while True:
    time.sleep(3600)
PY

# The targets: a listener on 127.0.0.250:7777 with three clients from 127.0.0.251, and three UDP
# sockets on 127.0.0.251 in the hash's last three buckets, connected to 127.0.0.250:7778.
cat >"$work/targets.py" <<'PY'
import socket, sys, time
first, buckets = int(sys.argv[1]), int(sys.argv[2])
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.250", 7777))
listener.listen(16)
held = [listener]
for i in range(3):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.bind(("127.0.0.251", 0))
    c.connect(("127.0.0.250", 7777))
    held += [c, listener.accept()[0]]
for i in range(3):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.251", 32768 + ((first ^ (buckets - 1 - i)) & (buckets - 1))))
    u.connect(("127.0.0.250", 7778))
    held.append(u)
print("ready", flush=True)
while True:
    time.sleep(3600)
PY

wait_ready() {
  local deadline=$(( SECONDS + 600 )) f
  for f in "$@"; do
    until grep -q ready "$f"; do
      if grep -q -i error "$f"; then echo "million: a helper failed:"; cat "$f"; exit 1; fi
      [ "$SECONDS" -lt "$deadline" ] || { echo "million: the helpers were not ready within 10 minutes"; exit 1; }
      sleep 0.2
    done
  done
}

# The UDP hash's size is the host's (dmesg: "UDP hash table entries"); a namespace made with
# net.ipv4.udp_child_hash_entries set has its own, which this bench does not handle.
buckets=$(dmesg 2>/dev/null | sed -n 's/.*UDP hash table entries: \([0-9]*\).*/\1/p' | head -1)
buckets=${buckets:-16384}
ip netns exec "$ns" python3 "$work/probe.py" "$buckets" >"$work/probe.out" 2>&1 &
probe=$!
pids+=("$probe")
wait_ready "$work/probe.out"
"$reaper" sweep --direct --json --dry-run --limit 1000000 --netns "$ns" --dst 127.0.0.250 --dport 7779 >"$work/probe.json"
first=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("type") == "socket" and d["proto"] == "udp":
        print(int(d["local"].rsplit(":", 1)[1]) - 32768); break' "$work/probe.json")
kill "$probe"; wait "$probe" 2>/dev/null || true
echo "million: the UDP hash has $buckets buckets; 127.0.0.251's first bucket is port $((32768 + first))"

echo "million: filling namespace $ns with $HELPERS x $PER_HELPER UDP sockets"
started=$EPOCHREALTIME
ip netns exec "$ns" python3 "$work/targets.py" "$first" "$buckets" >"$work/targets.out" 2>&1 &
pids+=($!)
for ((h = 0; h < HELPERS; h++)); do
  ip netns exec "$ns" python3 "$work/filler.py" "$h" "$PER_HELPER" "$PORTS" >"$work/filler.$h" 2>&1 &
  pids+=($!)
done
wait_ready "$work/targets.out" "$work"/filler.*
fill_s=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$started" "$EPOCHREALTIME")

sockstat=$(ip netns exec "$ns" cat /proc/net/sockstat)
tcp_inuse=$(awk '/^TCP:/{print $3}' <<<"$sockstat")
udp_inuse=$(awk '/^UDP:/{print $3}' <<<"$sockstat")
echo "million: namespace filled in ${fill_s} s: $tcp_inuse TCP and $udp_inuse UDP sockets"

set +e
"$reaper" sweep --direct --json --netns "$ns" --dst 127.0.0.250 --dport 7777,7778 >"$work/sweep.json" 2>"$work/sweep.err"
rc=$?
set -e

python3 - "$work/sweep.json" "$work/sweep.err" "$rc" "$tcp_inuse" "$udp_inuse" "$reaper" <<'PY'
import json, sys
out, err, rc, tcp, udp, reaper = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
lines = [json.loads(l) for l in open(out) if l.strip()]
summary = next((l for l in lines if l.get("type") == "summary"), None)
print(f"\nsweep of one namespace with {tcp + udp} sockets ({tcp} TCP, {udp} UDP); {reaper}")
print(f"  exit code                {rc}")
if summary is None:
    print("  completed                no: the sweep failed as a whole")
    print("  error                    " + open(err).read().strip().replace("\n", "\n                           "))
    sys.exit(0)
failed = summary.get("namespaces_failed", 0)
print(f"  scanned                  {summary['scanned_tcp']} TCP, {summary['scanned_udp']} UDP "
      f"({'equal to' if (summary['scanned_tcp'], summary['scanned_udp']) == (tcp, udp) else 'NOT equal to'} the namespace's sockets)")
print(f"  matched / destroyed      {summary['matched']} / {summary['destroyed']} (6 targets)")
print(f"  duration                 {summary['duration_ms']:.1f} ms (the engine's), peak RSS {summary['peak_rss_kib'] / 1024:.1f} MiB")
print(f"  completed                {'yes, no failed namespace' if failed == 0 and rc == 0 else 'no'}")
for f in summary.get("namespace_failures", []):
    print(f"  failure                  {f}")
PY
