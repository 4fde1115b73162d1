#!/usr/bin/env bash
# Reaction-latency benchmark of automatic reaping (not a CI test). As root, on a machine set up by
# scripts/bootstrap.sh --test.
#
#   bench/reap.sh [EVENTS=200] [CLIENTS=200]
#   env: CHILD_EHASH=N gives each namespace the run makes a TCP hash table of N buckets (bench/child-ehash.sh)
#
# A host with CLIENTS client namespaces and EVENTS (+5 warm-up) endpoints, each a namespace and a
# veth with a host /32 route to its 10.97.x.y address, as a routing CNI makes them; all made after
# the daemon started. Each address is talked to by 5 random client namespaces and by the host (one
# connected UDP socket each). An event deletes one endpoint's host veth (RTM_DELLINK from the
# bench); its latency runs to the destruction of the last of its sockets (a pending receive
# failing with ECONNABORTED), from just before the delete request and from the kernel's RTM_DELLINK
# notification (what the daemon reacts to; a veth takes the kernel tens of ms to delete before
# it is announced). Events go one at a time.
# Two modes in the same run, the daemon restarted between them with fresh endpoints:
# Reaping.Targeted on (visit the namespaces that contacted the address) and off (visit all).
# Prints per mode p50/p99/max latency, the daemon's median sweep time and namespaces visited, and
# the full/targeted ratios (bench/ReapBench), and the daemon's VmHWM and VmRSS (sampled once a
# second) over each mode. Target: p99 <= 10 ms (targeted, from the kernel's notice; from the delete
# request too where the kernel deletes a veth quickly enough).
# The breakdown: the daemon logs each automatic sweep's stages at Debug (event 505: notice received,
# target queued, scope computed, engine started and finished, CLOCK_MONOTONIC like the bench's own
# stamps); per mode the median and p99 of each step from the bench's notice to the last socket
# destroyed, and of the sweep itself, so that a regression shows where it sits.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/child-ehash.sh
E=${1:-200}; C=${2:-200}; W=5
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root"; exit 1; }
(( 2 * (E + W) <= 1000 )) || { echo "bench: at most 495 events (device names have 15 characters)"; exit 1; }

bash scripts/bootstrap.sh --test >/dev/null
dotnet build bench/ReapBench -c Release -nologo -v quiet >/dev/null
reaper=src/Reaper/bin/Release/net10.0/socketreaper
ulimit -n 65536 2>/dev/null || true

tag=srb$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
pins=/sys/fs/bpf/$tag; out=$(mktemp -d)
# A state directory of the run's own: the history and saved services of a host daemon are not ours.
mkdir -p "$out/state"
daemon=""; bench=""; sampler=""
# Ours: links and namespaces named $tag*; the host routes go with their links.
ours_links() { ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$tag" || true; }
ours_netns() { ip netns list | awk '{print $1}' | grep "^$tag${1:-}" || true; }
del_netns() { ours_netns "${1:-}" | sed 's/^/netns del /' | ip -force -batch - >/dev/null 2>&1 || true; }
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null || true
  [ -n "$bench" ] && kill "$bench" 2>/dev/null && wait "$bench" 2>/dev/null || true
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  [ -d "$pins" ] && { "$reaper" datapath detach --pin-root "$pins" >/dev/null || true; rm -rf "$pins"; }
  ours_links | sed 's/^/link del /' | ip -force -batch - >/dev/null 2>&1 || true
  del_netns
  rm -rf "$out"
}
trap cleanup EXIT
child_ehash_apply bench "$tag"

start_daemon() { # MODE TARGETED
  cat >"$out/$1.json" <<EOF
{"DBus":{"Enabled":false},"Metrics":{"Enabled":false},"State":{"Directory":"$out/state"},"Datapath":{"PinRoot":"$pins","Devices":["${tag}e*"],"AllNetkit":false},"Reaping":{"Targeted":$2}}
EOF
  env SOCKETREAPER_Logging__LogLevel__SocketReaper.Reaping.AutoReaper=Debug \
    "$reaper" run --config "$out/$1.json" >"$out/$1.log" 2>&1 &
  daemon=$!
  for _ in $(seq 300); do
    kill -0 "$daemon" 2>/dev/null || break
    grep -q ' ready: ' "$out/$1.log" && grep -Eq 'Datapath on [0-9]+ device' "$out/$1.log" && return 0
    sleep 0.1
  done
  echo "bench: the daemon did not start"; cat "$out/$1.log"; exit 1
}
# The daemon's VmRSS (KiB) once a second while it runs, to see whether the automatic path's memory
# levels off over a mode's events.
sample_rss() { # PID FILE
  while kill -0 "$1" 2>/dev/null; do
    awk '/^VmRSS/{print $2}' "/proc/$1/status" >>"$2" 2>/dev/null || true
    sleep 1
  done
}
report_rss() { # MODE FILE
  awk -v mode="$1" '{v[NR]=$1} END{q=int(NR/4); if (q < 1) q = 1;
    printf "%s: daemon VmRSS over the run (a sample a second, %d samples): at 1/4 %.1f MiB, 1/2 %.1f, 3/4 %.1f, end %.1f\n",
      mode, NR, v[q]/1024, v[2*q]/1024, v[3*q]/1024, v[NR]/1024}' "$2"
}
stop_daemon() {
  kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=""
}

first=0
for mode in targeted full; do
  [ "$mode" = targeted ] && targeted=true || targeted=false
  start_daemon "$mode" "$targeted"
  sample_rss "$daemon" "$out/$mode.rss" &
  sampler=$!
  dotnet bench/ReapBench/bin/Release/net10.0/ReapBench.dll "$mode" "$tag" "$first" $((E + W)) "$W" "$C" \
    "$reaper" "$pins" "$out/$mode.log" "$out/results" &
  bench=$!
  wait "$bench" || { bench=""; echo "bench: $mode failed; daemon log:"; tail -20 "$out/$mode.log"; exit 1; }
  bench=""
  awk '/^VmHWM/{printf "%s: daemon VmHWM at the end %.1f MiB\n", m, $2/1024}' m="$mode" "/proc/$daemon/status"
  stop_daemon
  wait "$sampler" 2>/dev/null || true; sampler=""
  report_rss "$mode" "$out/$mode.rss"
  del_netns p  # this mode's endpoint namespaces; the clients stay for the next
  first=$((first + E + W))
done

python3 - "$out/results" <<'PY'
import sys
r = {l.split()[0]: [float(x) for x in l.split()[1:]] for l in open(sys.argv[1])}
t, f = r["targeted"], r["full"]
# events failed p50 p99 max sweep_ms visited known, then p50 p99 max from the RTM_DELLINK notification
print(f"\n{'':9} {'':13} {'from delete request':>26}   {'from RTM_DELLINK notice':>26}")
print(f"{'mode':9} {'events':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'sweep ms':>9} {'visited':>11}")
for name, v in (("targeted", t), ("full", f)):
    print(f"{name:9} {v[0]:6.0f} {v[1]:6.0f} {v[2]:8.2f} {v[3]:8.2f} {v[4]:8.2f}   {v[8]:8.2f} {v[9]:8.2f} {v[10]:8.2f} {v[5]:9.2f} {v[6]:5.0f} of {v[7]:3.0f}")
print(f"full/targeted: sweep time {f[5]/t[5]:.1f}x; latency from the notice p50 {f[8]/t[8]:.1f}x, p99 {f[9]/t[9]:.1f}x")
# then median and p99 of each stage (ms): notice -> received -> queued -> scoped -> started -> last destroyed; sweep
stages = ["notice>recv", "recv>queued", "queued>scope", "scope>start", "start>last", "sweep"]
print(f"\nbreakdown, median / p99 ms (the daemon's stamps, event 505)")
print(f"{'mode':9} " + " ".join(f"{n:>15}" for n in stages))
for name, v in (("targeted", t), ("full", f)):
    if len(v) >= 23:
        print(f"{name:9} " + " ".join(f"{v[11 + 2 * i]:6.2f} / {v[12 + 2 * i]:6.2f}" for i in range(len(stages))))
verdict = lambda p99: "met" if p99 <= 10 and t[1] == 0 else "NOT met"
print(f"target p99 <= 10 ms (targeted): from the notice {t[9]:.2f} ms, {verdict(t[9])}; from the request {t[3]:.2f} ms, {verdict(t[3])}")
PY
