#!/bin/bash
# The guest's side of the fleet's end-to-end test (scripts/vm/fleet-e2e.sh), installed in each VM
# as /usr/local/lib/sr-fleet/fleet-guest.sh.
#
#   fleet-guest.sh agent    (sr-fleet-agent.service, after multi-user.target) mounts the host's
#                           control directory (9p tag "ctl") on /run/sr-ctl, says "ready" there,
#                           and runs each command the host drops in req/N.sh: bash with the
#                           functions below, output in res/N.out, exit code in res/N.rc (written
#                           last). Commands run side by side, so one may wait while others go on.
# Sourced by each command for the functions below.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ctl=/run/sr-ctl
lib=/usr/local/lib/sr-fleet
export ETCDCTL_API=3

# wait_for SECONDS COMMAND...: true once COMMAND succeeds within SECONDS (tried every 0.2 s).
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

not() { ! "$@"; }

# endpoint NS DEVICE ADDRESS: an endpoint as routing CNIs make one (Calico, CNI ptp): namespace NS
# with ADDRESS/32 on its eth0 and a default route out of it; the host end DEVICE (a veth*, which
# the daemon's default Datapath.Devices covers) without an address, answering ARP for the rest of
# the world (proxy_arp), and a host route to ADDRESS through it.
endpoint() {
  local ns=$1 dev=$2 address=$3
  ip netns add "$ns"
  ip link add "$dev" type veth peer name eth0 netns "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" addr add "$address/32" dev eth0
  ip -n "$ns" route add default dev eth0
  ip link set "$dev" up
  sysctl -qw "net.ipv4.conf.$dev.proxy_arp=1"
  ip route replace "$address/32" dev "$dev"
}

# serve NS NAME ADDRESS: fleet-peer.py's server (TCP and UDP, port 7000) in namespace NS, answering as NAME.
serve() {
  local ns=$1 name=$2 address=$3
  ip netns exec "$ns" setsid python3 "$lib/fleet-peer.py" serve "$name" "$address" 7000 \
    </dev/null >"/run/sr-serve-$ns.log" 2>&1 &
  echo $! >"/run/sr-serve-$ns.pid"
  wait_for 20 grep -q ready "/run/sr-serve-$ns.log" || { echo "the server in $ns did not start:"; cat "/run/sr-serve-$ns.log"; return 1; }
}

# unendpoint NS DEVICE: the endpoint goes as an application's shutdown and a CNI's DEL take it:
# its server stopped first (its connections' last segments leave with the endpoint's address,
# which (b) has routed to another endpoint meanwhile: the datapath must not take them as the
# address moving back), a second for them to go, then its veth and its namespace deleted.
unendpoint() {
  local ns=$1 dev=$2
  kill "$(cat "/run/sr-serve-$ns.pid")" 2>/dev/null
  sleep 1
  ip link del "$dev"
  ip netns del "$ns"
}

# hold NS: fleet-peer.py's client holder in namespace NS, on 127.0.0.1:7999 there.
hold() {
  echo "$1" >/run/sr-hold.ns
  ip netns exec "$1" setsid python3 "$lib/fleet-peer.py" hold 7999 </dev/null >/run/sr-hold.log 2>&1 &
  wait_for 20 grep -q ready /run/sr-hold.log || { echo "the holder did not start:"; cat /run/sr-hold.log; return 1; }
}

# ask COMMAND...: one command to the holder (fleet-peer.py's open, probe, dead); prints the reply's
# lines, true when the last starts with "ok". Through bash's /dev/tcp: a Python client would take
# a second to start under emulation.
ask() {
  ip netns exec "$(cat /run/sr-hold.ns)" bash -c 'exec 3<>/dev/tcp/127.0.0.1/7999 || exit 1
echo "$*" >&3
last=""
while IFS= read -r line <&3; do echo "$line"; last=$line; done
[ "${last#ok}" != "$last" ]' ask "$@"
}

# etcd_has KEY: the key is in etcd (the member on VM A).
etcd_has() { [ -n "$(etcdctl --endpoints=http://10.210.0.1:2379 get --keys-only "$1" 2>/dev/null)" ]; }

# metric SERIES: the value of one series of the local daemon's metrics (0 when absent).
metric() {
  local v
  v=$(exec 3<>/dev/tcp/127.0.0.1/9469 && printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
    tr -d '\r' <&3 | awk -v s="$1" 'index($0, s " ") == 1 { print $2; exit }') || return 1
  echo "${v:-0}"
}

# metric_is SERIES VALUE: the series has that whole value.
metric_is() { local v; v=$(metric "$1") && [ "${v%.*}" = "$2" ]; }

# owner_is ADDRESS DEVICE: b's key for ADDRESS in etcd names DEVICE's ifindex as its owner's.
owner_is() {
  etcdctl --endpoints=http://10.210.0.1:2379 get --print-value-only "/socketreaper/v1/endpoints/b/$1" 2>/dev/null |
    grep -q "\"owner\":\"b/ifindex $(cat "/sys/class/net/$2/ifindex")\""
}

# network ADDRESS PEER PEER_ENDPOINTS (sr-fleet-net.service, before the daemon and etcd): eth0
# gets ADDRESS/24, the host forwards, and PEER_ENDPOINTS are routed via PEER (the other VM).
network() {
  wait_for 30 ip link show eth0 || { echo "no eth0"; exit 1; }
  ip addr add "$1/24" dev eth0 && ip link set eth0 up && sysctl -qw net.ipv4.ip_forward=1 && ip route add "$3" via "$2"
}

agent() {
  mkdir -p "$ctl"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 ctl "$ctl" || exit 1
  mkdir -p "$ctl/req" "$ctl/res" "$ctl/run"
  echo ready >"$ctl/ready"
  local f n
  while :; do
    for f in "$ctl"/req/*.sh; do
      [ -e "$f" ] || continue
      n=${f##*/}; n=${n%.sh}
      mv "$f" "$ctl/run/$n.sh" || continue
      (
        bash -c ". $lib/fleet-guest.sh; . $ctl/run/$n.sh" >"$ctl/res/$n.out" 2>&1 </dev/null
        echo $? >"$ctl/res/$n.rc.tmp"
        mv "$ctl/res/$n.rc.tmp" "$ctl/res/$n.rc"
      ) &
    done
    sleep 0.1
  done
}

case "${1:-}" in
  agent) agent ;;
  network) shift; network "$@" ;;
esac
true
