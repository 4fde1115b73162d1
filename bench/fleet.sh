#!/usr/bin/env bash
# Fleet mode at scale against a real etcd (not a CI test; issue 27 item 8). As root, on a machine
# set up by scripts/bootstrap.sh --test.
#
#   bench/fleet.sh [--hosts 1000] [--endpoints 110] [--rate 100] [--minutes 10]
#                  [--hot 300] [--hot-rate 10] [--clients 4] [--idle 60]
#   env: KEEP_LOGS=DIR keeps the daemon's and etcd's logs there; REAPING='{"Conntrack":false}' sets
#        the daemon's Reaping section (default: none, every Reaping setting at its default);
#        CHILD_EHASH=N gives each namespace the run makes a TCP hash table of N buckets (bench/child-ehash.sh)
#
# One etcd member on loopback (Debian's etcd-server, a throwaway data directory under /dev/shm,
# free ports), started and stopped here. The NativeAOT daemon (published to artifacts/aot, again
# only when src/ changed) in fleet mode as host bench-self, with its defaults (targeted reaping,
# socket hooks, conntrack and neighbour cleanup), metrics on a loopback port, no D-Bus, a datapath
# that covers no device of this host. bench/FleetBench is the rest of the fleet: the admin's
# ranges (one /22 per group of 8 hosts) before the daemon starts, then HOSTS simulated hosts of
# ENDPOINTS endpoints each, written by hand in the documented schema (docs/fleet.md): each host's
# record and endpoints on one lease of its own, kept alive (TTL 10 s). Then RATE endpoint events a
# second for MINUTES: deletes, re-adds, moves to a new owner on the same host and moves to another
# host of the group (the new host announces, the old one withdraws).
# This host's sockets: a server namespace answers for every simulated address (a local route over
# lo, TCP and UDP echo) and CLIENTS client namespaces, each joined to it by a veth, hold a TCP and a
# connected UDP socket from two of them to each of HOT addresses (a fifth of them controls no event
# touches). HOT_RATE of the events a second hit a hot address (at most one every 2 s each); each
# delete or move is timed from the generator's etcd response to the last of its sockets destroyed
# (a pending receive failing, CLOCK_MONOTONIC in one process); after it, fresh sockets are made.
# Figures: the daemon's VmRSS with the empty fleet and with every endpoint followed; its CPU (from
# /proc/PID/stat) idle with the keys loaded and over the churn; the latencies by kind; full re-lists
# forced by the admin rewriting a host's ranges (timed from outside until the followed count
# changes) and by an etcd restart. One PASS/MISS line per target; exit 1 on a MISS. Everything it
# makes carries a random sf… tag and is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/child-ehash.sh
H=1000; E=110; RATE=100; MIN=10; HOT=300; HOT_RATE=10; C=4; IDLE=60
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) H=$2 ;; --endpoints) E=$2 ;; --rate) RATE=$2 ;; --minutes) MIN=$2 ;;
    --hot) HOT=$2 ;; --hot-rate) HOT_RATE=$2 ;; --clients) C=$2 ;; --idle) IDLE=$2 ;;
    *) echo "fleet: unknown option '$1' (--hosts N --endpoints N --rate N --minutes N --hot N --hot-rate N --clients N --idle SECONDS)"; exit 2 ;;
  esac
  shift 2 || { echo "fleet: option '$1' needs a value"; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "fleet: run as root"; exit 1; }
(( H >= 2 && H <= 8000 )) || { echo "fleet: --hosts must be 2..8000 (each host a /25 of 10.128.0.0/12)"; exit 2; }
(( E >= 1 && E <= 126 )) || { echo "fleet: --endpoints must be 1..126 (a host's /25)"; exit 2; }
(( HOT >= 5 && HOT <= H * E / 2 )) || { echo "fleet: --hot must be 5..half the endpoints"; exit 2; }
(( C >= 1 && C <= 200 && RATE >= 1 && HOT_RATE <= RATE )) || { echo "fleet: --clients 1..200, --rate at least 1, --hot-rate at most --rate"; exit 2; }

bash scripts/bootstrap.sh --test >/dev/null
dotnet build bench/FleetBench -c Release -nologo -v quiet -clp:ErrorsOnly >/dev/null
aot=artifacts/aot/socketreaper
if [ ! -x "$aot" ] || [ -n "$(find src Directory.Build.props Directory.Packages.props -newer "$aot" -type f \
    -not -path '*/bin/*' -not -path '*/obj/*' -print -quit 2>/dev/null)" ]; then
  echo "fleet: publishing the NativeAOT daemon to artifacts/aot"
  dotnet publish src/Reaper/Reaper.csproj -c Release -r linux-x64 -p:PublishAot=true -o artifacts/aot -nologo -v quiet >/dev/null
fi
bench="dotnet bench/FleetBench/bin/Release/net10.0/FleetBench.dll"
ulimit -n 65536 2>/dev/null || true

tag=sf$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
pins=/sys/fs/bpf/$tag; out=$(mktemp -d); data=$(mktemp -d /dev/shm/$tag-etcd.XXXX)
# A state directory of the run's own: the history and saved services of a host daemon are not ours.
mkdir -p "$out/state"
daemon=""; runner=""
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
client_port=$(free_port); peer_port=$(free_port); metrics_port=$(free_port)
etcd_url=http://127.0.0.1:$client_port
ours_netns() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$tag" || true; }
stop_etcd() { [ -s "$out/etcd.pid" ] && { kill "$(cat "$out/etcd.pid")" 2>/dev/null; tail --pid="$(cat "$out/etcd.pid")" -f /dev/null; } || true; }
cleanup() {
  [ -n "${KEEP_LOGS:-}" ] && { mkdir -p "$KEEP_LOGS"; cp "$out"/*.log "$out"/*.json "$KEEP_LOGS"/ 2>/dev/null || true; }
  for p in "$runner" "$daemon"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
  done
  stop_etcd
  [ -d "$pins" ] && { "$aot" datapath detach --pin-root "$pins" >/dev/null || true; rm -rf "$pins"; }
  ours_netns | sed 's/^/netns del /' | ip -force -batch - >/dev/null 2>&1 || true
  rm -rf "$out" "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
child_ehash_apply fleet "$tag"

# etcd, one member; the restart script is what the bench calls to force a re-list by reconnection.
cat >"$out/etcd.sh" <<EOF
#!/usr/bin/env bash
# Starts the member (after stopping it, if it runs) and waits until it answers.
set -eu
[ -s "$out/etcd.pid" ] && { kill "\$(cat "$out/etcd.pid")" 2>/dev/null || true; tail --pid="\$(cat "$out/etcd.pid")" -f /dev/null || true; }
setsid etcd --name n1 --data-dir "$data/n1" --listen-client-urls $etcd_url --advertise-client-urls $etcd_url \\
  --listen-peer-urls http://127.0.0.1:$peer_port --initial-advertise-peer-urls http://127.0.0.1:$peer_port \\
  --initial-cluster n1=http://127.0.0.1:$peer_port --initial-cluster-state new \\
  --quota-backend-bytes 8589934592 >>"$out/etcd.log" 2>&1 </dev/null &
echo \$! >"$out/etcd.pid"
for _ in \$(seq 300); do
  ETCDCTL_API=3 etcdctl --endpoints $etcd_url endpoint health >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "fleet: etcd did not answer within 30 s"; tail -5 "$out/etcd.log"; exit 1
EOF
bash "$out/etcd.sh"
echo "fleet: tag $tag, etcd $(etcd --version | head -1 | awk '{print $3}') at $etcd_url (data in $data)"

$bench admin "$etcd_url" "$H"

reaping=""; [ -n "${REAPING:-}" ] && reaping=",\"Reaping\":$REAPING"
cat >"$out/daemon.json" <<EOF
{"DBus":{"Enabled":false},"Metrics":{"Enabled":true,"Listen":"127.0.0.1:$metrics_port"},"State":{"Directory":"$out/state"},
 "Datapath":{"PinRoot":"$pins","Devices":["${tag}none*"],"AllNetkit":false},
 "Fleet":{"Etcd":{"Endpoints":["$etcd_url"]},"Host":"bench-self"}$reaping}
EOF
"$aot" run --config "$out/daemon.json" >"$out/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 300); do
  kill -0 "$daemon" 2>/dev/null || break
  grep -q ' ready: ' "$out/daemon.log" && break
  sleep 0.1
done
grep -q ' ready: ' "$out/daemon.log" || { echo "fleet: the daemon did not start"; cat "$out/daemon.log"; exit 1; }
# The namespaces, made after the daemon's socket hooks are on (a namespace older than their
# record is swept by every automatic sweep): a server answering for 10.128.0.0/12, clients
# reaching it over a veth each.
netns_add "${tag}s"
ip -n "${tag}s" link set lo up
ip -n "${tag}s" route add local 10.128.0.0/12 dev lo
clients=()
for i in $(seq 0 $((C - 1))); do
  netns_add "${tag}c$i"
  ip -n "${tag}c$i" link set lo up
  ip -n "${tag}c$i" link add "${tag}c$i" type veth peer name "${tag}s$i" netns "${tag}s"
  ip -n "${tag}c$i" addr add "172.30.$i.2/24" dev "${tag}c$i"
  ip -n "${tag}s" addr add "172.30.$i.1/24" dev "${tag}s$i"
  ip -n "${tag}c$i" link set "${tag}c$i" up
  ip -n "${tag}s" link set "${tag}s$i" up
  ip -n "${tag}c$i" route add 10.128.0.0/12 via "172.30.$i.1"
  clients+=("${tag}c$i")
done

echo "fleet: NativeAOT daemon pid $daemon; $H hosts x $E endpoints, $RATE events/s for $MIN min ($HOT_RATE/s on $HOT hot addresses, $C client namespaces)"

$bench run "$etcd_url" "$daemon" "http://127.0.0.1:$metrics_port/metrics" "$H" "$E" "$RATE" "$MIN" "$HOT" "$HOT_RATE" "$IDLE" \
  "${tag}s" "$(IFS=,; echo "${clients[*]}")" "$out/etcd.sh" "$out/etcd.pid" &
runner=$!
rc=0; wait "$runner" || rc=$?
runner=""
kill -0 "$daemon" 2>/dev/null || { echo "fleet: the daemon died; its log:"; tail -20 "$out/daemon.log"; rc=1; }
echo "fleet: the daemon's warnings and errors (last 10):"
grep -E ' (warn|fail|crit): ' "$out/daemon.log" | tail -10 || true
exit "$rc"
