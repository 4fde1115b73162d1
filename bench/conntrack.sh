#!/usr/bin/env bash
# The conntrack cleanup at a million entries (issue 28, item 4; not a CI test). As root, on a
# machine set up by scripts/bootstrap.sh --test.
#
#   bench/conntrack.sh [REPS=5] [--jit]
#
# 1,000,000 conntrack entries in the kernel's hash: 4 namespaces of the bench's own with 247,500
# non-NATed UDP entries each (ctnetlink IPCTNL_MSG_CT_NEW, 1,000 a send: bench/conntrack.py fill),
# and a NAT namespace where an nft DNAT rule (output hook) steers VIP1 to B1 and VIP2 to B2 and
# real datagrams make 10,000 entries NATed to B1 (one per source port), 1,000 NATed to B2 and 100
# sent straight to B1. nf_conntrack_max (262,144 here) is compared with each namespace's own count,
# so the million is spread over namespaces and no sysctl of the host is changed; the hash is
# shared by all namespaces, so a dump in any one of them walks all 1,000,000.
# The daemon (NativeAOT, published to artifacts/aot when src/ changed; --jit: the Release build)
# runs with a private bus, the datapath on the bench's endpoint devices and
# Reaping.ConntrackNamespaces = [the NAT namespace]. Per repetition (REPS, after a quiet lane):
# SetService without B1 (backend_left), and the time from its return to the last of the 10,000
# entries gone (the NAT namespace's nf_conntrack_count falling by 10,000, polled every 2 ms);
# then a dump checks that B2's entries and the straight ones are the same entries (ids) as before.
# Meanwhile endpoint_gone triggers, up to two a repetition, one after another as bench/reap.sh
# makes them (an endpoint's host veth deleted; the next once the last one's sweep ended): their
# reaction from the kernel's RTM_DELLINK to the host socket destroyed, against the same events
# with the lane idle, and the daemon's stage stamps of their sweeps (event 505). Baselines from the
# same run: conntrack(8) -D --reply-src on the same 10,000 entries, and the kernel's dump walk
# (filtered and whole). The daemon's own line per cleanup (event 540) gives its time and its dumps'.
# Targets (PASS/MISS, exit 1 on a MISS): median <= 500 ms; the others untouched (B2's and the
# straight entries by id, the 990,000 by count); endpoint_gone p99 during the cleanups <= 20 ms
# (bench/reap.sh's) and <= 10 ms (issue 28's).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-5}; JIT=${2:-}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root"; exit 1; }
(( REPS >= 1 && REPS <= 40 )) || { echo "bench: REPS must be 1..40"; exit 2; }
command -v conntrack >/dev/null || { echo "bench: conntrack(8) is needed for the baseline (package conntrack)"; exit 1; }

bash scripts/bootstrap.sh --test >/dev/null
if [ "$JIT" = --jit ]; then
  dotnet build src/Reaper/Reaper.csproj -c Release -nologo -v quiet -clp:ErrorsOnly >/dev/null
  reaper=src/Reaper/bin/Release/net10.0/socketreaper
else
  reaper=artifacts/aot/socketreaper
  if [ ! -x "$reaper" ] || [ -n "$(find src Directory.Build.props Directory.Packages.props -newer "$reaper" -type f \
      -not -path '*/bin/*' -not -path '*/obj/*' -print -quit 2>/dev/null)" ]; then
    echo "conntrack: publishing the NativeAOT daemon to artifacts/aot"
    dotnet publish src/Reaper/Reaper.csproj -c Release -r linux-x64 -p:PublishAot=true -o artifacts/aot -nologo -v quiet >/dev/null
  fi
fi
ulimit -n 65536 2>/dev/null || true

tag=sct$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
pins=/sys/fs/bpf/$tag; out=$(mktemp -d)
daemon=""; bus_pid=""
ours_links() { ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$tag" || true; }
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null || true
  [ -d "$pins" ] && { "$reaper" datapath detach --pin-root "$pins" >/dev/null 2>&1 || true; rm -rf "$pins"; }
  ours_links | sed 's/^/link del /' | ip -force -batch - >/dev/null 2>&1 || true
  # Deleting a namespace drops its conntrack entries with it.
  ip netns list | awk '{print $1}' | grep "^$tag" | sed 's/^/netns del /' | ip -force -batch - >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "conntrack: $(date -u '+%F %H:%M UTC'), kernel $(uname -r), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# The bulk: 990,000 + the NAT namespace's 11,100 entries.
t=$(date +%s.%N)
for n in 0 1 2 3; do
  ip netns add "${tag}b$n"
  python3 bench/conntrack.py fill "${tag}b$n" 247500 $((n * 247500))
done
echo "conntrack: bulk made in $(echo "$(date +%s.%N) - $t" | bc) s"

nat=${tag}nat
ip netns add "$nat"
ip -n "$nat" link set lo up
for a in 10.85.255.1 10.85.255.2 10.85.0.11 10.85.0.12; do ip -n "$nat" addr add "$a/32" dev lo; done
ip netns exec "$nat" nft -f - <<'EOF'
table ip sctnat {
  chain out {
    type nat hook output priority -100;
    ip daddr 10.85.255.1 udp dport 5353 dnat to 10.85.0.11:5353
    ip daddr 10.85.255.2 udp dport 5353 dnat to 10.85.0.12:5353
  }
}
EOF

bus=$(dbus-daemon --session --fork --print-address=1 --print-pid=3 3>"$out/bus.pid")
bus_pid=$(cat "$out/bus.pid")
cat >"$out/daemon.json" <<EOF
{"Metrics":{"Enabled":false},"Datapath":{"PinRoot":"$pins","Devices":["${tag}e*"],"AllNetkit":false},
 "Reaping":{"ConntrackNamespaces":["/run/netns/$nat"]}}
EOF
# ConntrackReaper at Debug: every cleanup is logged, so the bench can wait for a quiet lane;
# AutoReaper at Debug: the stage stamps of each sweep (event 505), to see where an event waited.
env DBUS_SYSTEM_BUS_ADDRESS="$bus" SOCKETREAPER_Logging__LogLevel__SocketReaper.Reaping.ConntrackReaper=Debug \
  SOCKETREAPER_Logging__LogLevel__SocketReaper.Reaping.AutoReaper=Debug \
  "$reaper" run --config "$out/daemon.json" >"$out/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 300); do
  kill -0 "$daemon" 2>/dev/null || break
  grep -q ' ready: ' "$out/daemon.log" && break
  sleep 0.1
done
grep -q ' ready: ' "$out/daemon.log" || { echo "bench: the daemon did not start"; cat "$out/daemon.log"; exit 1; }

rc=0
python3 bench/conntrack.py run "$tag" "$out" "$reaper" "$REPS" "$bus" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then echo "bench: failed; the daemon's log:"; tail -30 "$out/daemon.log"; fi
grep -E "Conntrack cleanup \\(backend_left" "$out/daemon.log" | sed "s/.*\\]/daemon:/" || true
echo "conntrack: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$rc"
