#!/usr/bin/env bash
# Datapath benchmark (not a CI test). As root, on a machine set up by scripts/bootstrap.sh --test.
#
#   bench/datapath.sh [REPEATS=5] [SECONDS=5]
#
# 1. Per-packet cost of each program through BPF_PROG_TEST_RUN (1e6 repeats, 7 interleaved runs),
#    against a do-nothing program measured in the same run (bench/DatapathBench).
# 2. Throughput over a veth between the host and a namespace (iperf3, TCP and 64-byte UDP), with
#    the real daemon's programs attached and without them, alternating in the same run. The
#    daemon attaches and exits before the "with" runs (its links stay pinned), so the figure is
#    the programs' cost alone, not a starting .NET process competing for CPU.
# Prints medians and the cost ratio. Targets: <= 30 ns/packet, <= 3 % throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-5}; T=${2:-5}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root"; exit 1; }

bash scripts/bootstrap.sh --test >/dev/null
dotnet build bench/DatapathBench -c Release -nologo -v quiet >/dev/null
reaper=src/Reaper/bin/Release/net10.0/socketreaper

echo "== per-packet cost"
dotnet bench/DatapathBench/bin/Release/net10.0/DatapathBench.dll 1000000 7

echo
echo "== veth throughput, iperf3 from a namespace to the host, ${T}s per run, $R runs each"
tag=srb$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
ns=$tag; dev=${tag}h; pins=/sys/fs/bpf/$tag; out=$(mktemp -d)
daemon=""; server=""
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  [ -d "$pins" ] && { "$reaper" datapath detach --pin-root "$pins" >/dev/null || true; rm -rf "$pins"; }
  ip link del "$dev" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT

ip netns add "$ns"
ip link add "$dev" type veth peer name eth0 netns "$ns"
ip addr add 10.97.0.1/24 dev "$dev"; ip link set "$dev" up
ip -n "$ns" addr add 10.97.0.2/24 dev eth0; ip -n "$ns" link set eth0 up; ip -n "$ns" link set lo up
iperf3 -s -B 10.97.0.1 -p 5299 >/dev/null 2>&1 &
server=$!
sleep 0.5

start_daemon() {
  SOCKETREAPER__Datapath__Devices="$dev" SOCKETREAPER__Datapath__AllNetkit=false SOCKETREAPER__Datapath__PinRoot="$pins" \
  SOCKETREAPER__DBus__Enabled=false SOCKETREAPER__Metrics__Enabled=false "$reaper" run >"$out/daemon.log" 2>&1 &
  daemon=$!
  for _ in $(seq 100); do
    "$reaper" datapath status --pin-root "$pins" 2>/dev/null | grep -q '^2 link(s), 0 detached' && return 0
    sleep 0.1
  done
  echo "bench: the daemon did not attach"; cat "$out/daemon.log"; exit 1
}
stop_daemon() {
  kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=""
}
# TCP: received bits/s. UDP: 64-byte datagrams the server received per second.
run() {
  if [ "$1" = tcp ]; then
    ip netns exec "$ns" iperf3 -c 10.97.0.1 -p 5299 -t "$T" -J >"$out/r.json"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"])' "$out/r.json"
  else
    ip netns exec "$ns" iperf3 -c 10.97.0.1 -p 5299 -u -b 0 -l 64 -t "$T" -J >"$out/r.json"
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["end"]["sum"]; print((s["packets"]-s["lost_packets"])/s["seconds"])' "$out/r.json"
  fi
}

for proto in tcp udp; do
  : >"$out/$proto.without"; : >"$out/$proto.with"
done
for ((r = 1; r <= R; r++)); do
  for proto in tcp udp; do
    run "$proto" >>"$out/$proto.without"
  done
  start_daemon
  stop_daemon
  "$reaper" datapath status --pin-root "$pins" | grep -q '^2 link(s), 0 detached' || { echo "bench: links gone with the daemon"; exit 1; }
  for proto in tcp udp; do
    run "$proto" >>"$out/$proto.with"
  done
  "$reaper" datapath detach --pin-root "$pins" >/dev/null
  echo "bench: run $r/$R done"
done

python3 - "$out" <<'PY'
import statistics, sys
out = sys.argv[1]
for proto, unit, scale in (("tcp", "Gbit/s", 1e9), ("udp", "kpkt/s (64 B)", 1e3)):
    without = [float(x) for x in open(f"{out}/{proto}.without")]
    with_ = [float(x) for x in open(f"{out}/{proto}.with")]
    a, b = statistics.median(without), statistics.median(with_)
    print(f"{proto.upper()}: without programs {a/scale:.2f} {unit}, with {b/scale:.2f} {unit} (medians); cost {100*(1-b/a):+.1f} %")
PY
