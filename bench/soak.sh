#!/usr/bin/env bash
# Soak benchmark of automatic reaping (not a CI test). As root, on a machine set up by
# scripts/bootstrap.sh --test.
#
#   bench/soak.sh [MINUTES=30]
#   env: WINDOW_MINUTES=5  ENDPOINTS=20  CLIENTS=6  EVENT_SECONDS=2  SOAK_SAMPLES=FILE (memory every 30 s)
#        KEEP_LOGS=DIR (keeps the daemon's log there)
#        CHILD_EHASH=N (a TCP hash table of N buckets for each namespace the run makes: bench/child-ehash.sh)
#        SWEEP_THREADS=N (the daemon's Sweep.Threads; its default otherwise, one per core)
#
# The NativeAOT daemon (published to artifacts/aot, again only when src/ changed) and, after it,
# ENDPOINTS endpoints made as a routing CNI makes them (namespace, veth, /32 address in 10.99.0.0/16,
# host route), each with a TCP and a UDP echo server, and CLIENTS client namespaces that reach them
# through the host (a veth and a /32 each; proxy ARP and forwarding on our host-side veths only).
# Each endpoint address gets a TCP and a connected UDP client from 2 random client namespaces and
# from the host. For MINUTES, one event every EVENT_SECONDS, alternately:
#   - deletion: an endpoint's host veth is deleted (RTM_DELLINK); its clients must die;
#   - move: one endpoint's address is moved to another endpoint (`ip route replace ADDR/32 dev B`,
#     and the address on B's side), which the daemon reaps as ip_reused; the clients born before
#     the move must die; new clients of the address at B are innocents until B goes.
# A deleted or emptied endpoint is replaced by a fresh one, so the population stays constant.
# Per window (WINDOW_MINUTES) it prints: events, sockets that had to die, those that did not within
# 2 s (missed), innocent sockets that died or did not answer a ping (every 5 s), the reaction from
# the kernel's notice (RTM_DELLINK, or for moves RTM_NEWROUTE, as the bench received it) to the
# last socket destroyed (p50/p99/max), and the daemon's VmRSS, managed heap (its
# dotnet_total_memory_bytes), threads and open fds; at the end, the daemon's own stages of every
# automatic sweep (from its Debug stamps, event 505), so a slow tail shows where it sits, and the
# targets: 0 missed, 0 innocents killed or silent, p99 <= 10 ms in every window, VmRSS's low point
# (each window's minimum, a sample after every event) growing < 5 % from the second window to the
# last, open fds flat (within +2 of the first window's max);
# exit 1 if one is missed. Everything it makes carries a random srs… tag and is removed on exit, also on failure
# or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/child-ehash.sh
M=${1:-30}; WM=${WINDOW_MINUTES:-5}; N=${ENDPOINTS:-20}; C=${CLIENTS:-6}; EVERY=${EVENT_SECONDS:-2}; NET=10.99
[ "$(id -u)" -eq 0 ] || { echo "soak: run as root"; exit 1; }
(( C >= 2 && C <= 200 && N >= 3 )) || { echo "soak: CLIENTS must be 2..200 and ENDPOINTS at least 3"; exit 1; }

bash scripts/bootstrap.sh --test >/dev/null
dotnet build bench/ReapBench -c Release -nologo -v quiet >/dev/null
aot=artifacts/aot/socketreaper
if [ ! -x "$aot" ] || [ -n "$(find src Directory.Build.props Directory.Packages.props -newer "$aot" -type f \
    -not -path '*/bin/*' -not -path '*/obj/*' -print -quit 2>/dev/null)" ]; then
  echo "soak: publishing the NativeAOT daemon to artifacts/aot"
  dotnet publish src/Reaper/Reaper.csproj -c Release -r linux-x64 -p:PublishAot=true -o artifacts/aot -nologo -v quiet >/dev/null
fi
ulimit -n 65536 2>/dev/null || true

# 9 characters: device names ${tag}e<index> stay within 15 for 100,000 endpoints.
tag=srs$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
pins=/sys/fs/bpf/$tag; out=$(mktemp -d)
# A state directory of the run's own: the history and saved services of a host daemon are not ours.
mkdir -p "$out/state"
daemon=""; bench=""
ours_links() { ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$tag" || true; }
cleanup() {
  [ -n "${KEEP_LOGS:-}" ] && { mkdir -p "$KEEP_LOGS"; cp "$out"/daemon.log "$KEEP_LOGS"/ 2>/dev/null || true; }
  [ -n "$bench" ] && kill "$bench" 2>/dev/null && wait "$bench" 2>/dev/null || true
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  [ -d "$pins" ] && { "$aot" datapath detach --pin-root "$pins" >/dev/null || true; rm -rf "$pins"; }
  ours_links | sed 's/^/link del /' | ip -force -batch - >/dev/null 2>&1 || true
  ip netns list | awk '{print $1}' | grep "^$tag" | sed 's/^/netns del /' | ip -force -batch - >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
child_ehash_apply soak "$tag"

# Metrics on a loopback port of ours: the bench reads the daemon's managed heap and threads there.
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sweep_json=""
[ -n "${SWEEP_THREADS:-}" ] && sweep_json=",\"Sweep\":{\"Threads\":$SWEEP_THREADS}"
cat >"$out/daemon.json" <<EOF
{"DBus":{"Enabled":false},"Metrics":{"Enabled":true,"Listen":"127.0.0.1:$metrics_port"},"State":{"Directory":"$out/state"},"Datapath":{"PinRoot":"$pins","Devices":["${tag}e*"],"AllNetkit":false}$sweep_json}
EOF
# AutoReaper at Debug: its stage stamps (event 505) give the daemon's side of each reaction.
env SOCKETREAPER_Logging__LogLevel__SocketReaper.Reaping.AutoReaper=Debug \
  "$aot" run --config "$out/daemon.json" >"$out/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 300); do
  kill -0 "$daemon" 2>/dev/null || break
  grep -q ' ready: ' "$out/daemon.log" && grep -Eq 'Datapath on [0-9]+ device' "$out/daemon.log" && break
  sleep 0.1
done
grep -q ' ready: ' "$out/daemon.log" || { echo "soak: the daemon did not start"; cat "$out/daemon.log"; exit 1; }
echo "soak: tag $tag, NativeAOT daemon pid $daemon, $M min in windows of $WM min"

dotnet bench/ReapBench/bin/Release/net10.0/ReapBench.dll soak "$tag" "$M" "$WM" "$N" "$C" \
  "$aot" "$pins" "$out/daemon.log" "$daemon" "$NET" "$EVERY" "http://127.0.0.1:$metrics_port/metrics" &
bench=$!
rc=0; wait "$bench" || rc=$?
bench=""
kill -0 "$daemon" 2>/dev/null || { echo "soak: the daemon died; its log:"; tail -20 "$out/daemon.log"; rc=1; }
if [ "$rc" -ne 0 ]; then
  echo "soak: the daemon's warnings and errors:"; grep -E ' (warn|fail|crit): ' "$out/daemon.log" | tail -20 || true
fi
exit "$rc"
