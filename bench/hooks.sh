#!/usr/bin/env bash
# What the socket hooks cost a TCP connection (not a CI test). As root, on a machine set up by
# scripts/bootstrap.sh --test.
#
#   bench/hooks.sh [CONNECTIONS=20000] [REPEATS=5]
#
# Three modes, each REPEATS times, interleaved (so a change in the machine's speed touches them
# alike), each run in a fresh namespace of the run's own: no daemon; the NativeAOT daemon with its
# socket hooks but no TCP index (Reaping.TcpIndex false); and with the index (the default). A run
# makes CONNECTIONS TCP connections on loopback one after another (bench/hooks/connloop.c:
# connect, accept, close both ends, so each socket goes through every state a hook may be called
# for). Prints per mode the median connections a second and its ratio to no daemon, and, from the
# kernel's BPF run-time statistics (bench/bpf_stats.py holds them on while a run goes; the host's
# sysctl is never written), the daemon's sockops program's median time per call and its calls per
# connection, and what the hooks and the index each add to a connection in microseconds (no target:
# the figures are for docs/benchmarks.md, and to see a change). Everything it makes carries a random
# srh… tag and is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}; R=${2:-5}
[ "$(id -u)" -eq 0 ] || { echo "hooks: run as root"; exit 1; }
(( N >= 1000 && R >= 1 )) || { echo "hooks: CONNECTIONS at least 1000, REPEATS at least 1"; exit 1; }

bash scripts/bootstrap.sh --test >/dev/null
aot=artifacts/aot/socketreaper
if [ ! -x "$aot" ] || [ -n "$(find src bpf Directory.Build.props Directory.Packages.props -newer "$aot" -type f \
    -not -path '*/bin/*' -not -path '*/obj/*' -print -quit 2>/dev/null)" ]; then
  echo "hooks: publishing the NativeAOT daemon to artifacts/aot"
  dotnet publish src/Reaper/Reaper.csproj -c Release -r linux-x64 -p:PublishAot=true -o artifacts/aot -nologo -v quiet >/dev/null
fi

tag=srh$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
pins=/sys/fs/bpf/$tag; out=$(mktemp -d)
daemon=""
stop_daemon() {
  [ -n "$daemon" ] && { kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true; }
  daemon=""
  [ -d "$pins" ] && { "$aot" datapath detach --pin-root "$pins" >/dev/null 2>&1 || true; rm -rf "$pins"; }
  return 0
}
cleanup() {
  stop_daemon
  ip netns list | awk '{print $1}' | grep "^$tag" | sed 's/^/netns del /' | ip -force -batch - >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

clang -O2 -Wall -o "$out/connloop" bench/hooks/connloop.c

start_daemon() { # INDEX(true|false)
  mkdir -p "$out/state"
  cat >"$out/daemon.json" <<EOF
{"DBus":{"Enabled":false},"Metrics":{"Enabled":false},"State":{"Directory":"$out/state"},"Datapath":{"Enabled":false,"PinRoot":"$pins"},"Reaping":{"TcpIndex":$1}}
EOF
  "$aot" run --config "$out/daemon.json" >"$out/daemon.log" 2>&1 &
  daemon=$!
  for _ in $(seq 300); do
    kill -0 "$daemon" 2>/dev/null || break
    grep -q ' ready: ' "$out/daemon.log" && return 0
    sleep 0.1
  done
  echo "hooks: the daemon did not start"; cat "$out/daemon.log"; exit 1
}

# The daemon's sockops program: "id run_time_ns run_cnt".
sockops() {
  local id
  id=$(bpftool -j link show pinned "$pins/hooks/cgroup_sockops" | python3 -c 'import json,sys; print(json.load(sys.stdin)["prog_id"])')
  bpftool -j prog show id "$id" | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["id"], p.get("run_time_ns", 0), p.get("run_cnt", 0))'
}

run_once() { # MODE RUN
  local ns=$tag$2 before after rate
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  # Every connection leaves a TIME_WAIT socket: room for them all.
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
  [ "$1" = none ] || before=$(sockops)
  rate=$(python3 bench/bpf_stats.py ip netns exec "$ns" "$out/connloop" "$N")
  [ "$1" = none ] || after=$(sockops)
  ip netns del "$ns"
  if [ "$1" = none ]; then
    echo "$1 $rate 0 0" >>"$out/results"
  else
    read -r _ t0 c0 <<<"$before"; read -r _ t1 c1 <<<"$after"
    echo "$1 $rate $((t1 - t0)) $((c1 - c0))" >>"$out/results"
  fi
}

echo "hooks: tag $tag; $N connections a run, $R runs a mode, modes interleaved"
run=0
for r in $(seq "$R"); do
  run_once none $((run++))
  start_daemon false; run_once hooks $((run++)); stop_daemon
  start_daemon true; run_once index $((run++)); stop_daemon
done

python3 - "$out/results" "$N" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
n = int(sys.argv[2])
by = {}
for mode, rate, ns, calls in rows:
    by.setdefault(mode, []).append((float(rate), int(ns), int(calls)))
med = {m: statistics.median(r for r, _, _ in v) for m, v in by.items()}
print(f"\n{'mode':34} {'connections/s (median)':>24} {'vs none':>8} {'sockops ns/call':>16} {'calls/conn':>11}")
names = {"none": "no daemon", "hooks": "socket hooks, no TCP index", "index": "socket hooks and TCP index"}
for m in ("none", "hooks", "index"):
    v = by[m]
    per_call = statistics.median(ns / calls for _, ns, calls in v) if m != "none" and all(c for _, _, c in v) else 0
    per_conn = statistics.median(calls / n for _, _, calls in v) if m != "none" else 0
    runs = ", ".join(f"{r:.0f}" for r, _, _ in v)
    print(f"{names[m]:34} {med[m]:24.0f} {med[m] / med['none']:7.3f}x {per_call:16.0f} {per_conn:11.2f}   ({runs})")
us = lambda m: 1e6 / med[m]
print(f"\na connection (both ends) on loopback: {us('none'):.1f} us without the daemon; the socket hooks add {us('hooks') - us('none'):.1f} us "
      f"({(1 - med['hooks'] / med['none']) * 100:.1f} % of the rate), the TCP index {us('index') - us('hooks'):.1f} us more "
      f"({(1 - med['index'] / med['hooks']) * 100:.1f} % of the rate with the hooks alone)")
PY
