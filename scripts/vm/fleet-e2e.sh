#!/usr/bin/env bash
# Fleet mode end to end, with two real hosts (issue 27): two qemu VMs booting the systemd root of
# scripts/vm/systemd.sh (Debian 12, systemd as PID 1, bookworm-backports' 6.12 kernel), joined at L2
# by qemu's `-netdev socket` over one loopback TCP connection (nothing touches the host's network).
# Each has the .deb installed into its root with dpkg (the config and the shipped drop-in example
# in place first) and boots with the packaged NativeAOT daemon under systemd in fleet mode
# (Fleet.Host a or b, LeaseSeconds 10, the etcd member on VM A). VM A also runs etcd (a unit
# of the test's) and holds the admin's ranges keys, written with etcdctl.
#
#   10.210.0.1 (A, eth0) ======== virtual L2 ======== 10.210.0.2 (B, eth0)
#   A's endpoints 10.211.1.0/24                       B's endpoints 10.211.2.0/24
#   client c 10.211.1.5, server l 10.211.1.6          servers 10.211.2.5 (moves), s2 10.211.2.6
#
# Endpoints as routing CNIs make them (a veth* host end, a /32 host route, a static route between
# the VMs). The client in a namespace on A holds a TCP connection and a connected UDP socket to each
# server; each scenario checks what the client sees: a stale socket errors on its next send
# (ECONNABORTED, EDESTADDRREQ), the others still exchange data.
#   (a) B's endpoint is deleted (veth and namespace)   → A's sockets to it destroyed
#   (b) B gives its address to a new endpoint           → A's old sockets destroyed, a new
#                                                          connection to the new owner lives
#   (d) B is cut off from etcd only (nftables in B)     → its lease expires, but it answers health
#                                                          checks: A keeps its connections
#   (c) VM B is killed (its qemu, SIGKILL)              → A's sockets to B's endpoints destroyed
#                                                          within lease TTL + 2 s (measured, printed)
# (c) and (d) are host loss with its defaults (Fleet.Health, Fleet.HostLoss; docs/fleet.md). Prints one
# "SR-CHECK ok|FAIL <name>" line per check, the daemons' journals when one failed, and exits with
# the number of failures (124 when the VMs did not come up in time).
#
#   scripts/vm/fleet-e2e.sh --deb FILE [--results FILE] [--timing FILE] [--logs DIR]
#
# --results: the SR-CHECK lines and "exit N"; --timing: "PART SECONDS" lines (scripts/test.sh's
# stage table); --logs: the consoles and journals are kept there. The root is unpacked once under
# $SR_VM_CACHE (default artifacts/vm, next to its tar) and each VM writes to an overlay on it, in a
# mount namespace of the script's own; the overlays' upper layers are removed at the end and both
# qemu processes killed, even on failure or interrupt.
set -uo pipefail
# In a mount namespace of its own: the VMs' overlay roots go with it, however the script ends.
if [ -z "${SR_FLEET_MOUNTNS:-}" ]; then
  SR_FLEET_MOUNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
cd "$(dirname "$0")/../.."

deb="" results="" timing="" logs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --timing) timing=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    *) echo "fleet: unknown argument '$1' (usage: scripts/vm/fleet-e2e.sh --deb FILE [--results FILE] [--timing FILE] [--logs DIR])" >&2; exit 2 ;;
  esac
done

say() { printf 'fleet: %s\n' "$*" >&2; }
die() { printf 'fleet: %s\n' "$*" >&2; exit 125; }

[ -n "$deb" ] || die "no package given (--deb artifacts/deb/socketreaper_*.deb; scripts/package.sh builds it)"
[ -f "$deb" ] || die "$deb does not exist; scripts/package.sh builds it"
[ "$(id -u)" -eq 0 ] || die "must run as root (the guests' roots are unpacked with their owners)"
for tool in qemu-system-x86_64 busybox cpio xz apt-get dpkg-deb depmod mmdebstrap ss; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; run scripts/bootstrap.sh --test"
done

lease=10
prefix=/socketreaper/v1/
started=$SECONDS
part_started=$SECONDS
: >"${timing:=/dev/null}"
# part NAME: the wall time since the last part, one line of --timing.
part() { echo "$1 $((SECONDS - part_started))" >>"$timing"; part_started=$SECONDS; }

cache=$(realpath -m "${SR_VM_CACHE:-artifacts/vm}")
mkdir -p "$cache"
. scripts/vm/kernel.sh
vm_kernel 6.12 "$cache"
initrd="$cache/initramfs-systemd-$release.cpio.gz"
vm_initramfs scripts/vm/init-systemd "$initrd"
vm_systemd_root "$cache"

run=$(mktemp -d "$cache/fleet-run.XXXXXX")
jobs_started=()
cleanup() {
  local vm pid
  for vm in a b; do
    pid=$(cat "$run/$vm/qemu.pid" 2>/dev/null) && kill -KILL "$pid" 2>/dev/null
  done
  for pid in "${jobs_started[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  wait 2>/dev/null
  umount -l "$run/a/root" 2>/dev/null; umount -l "$run/b/root" 2>/dev/null
  if [ -n "$logs" ]; then
    mkdir -p "$logs"
    for vm in a b; do
      cp "$run/$vm/console" "$logs/console-$vm.txt" 2>/dev/null
      cp "$run/journal-$vm.txt" "$logs/journal-$vm.txt" 2>/dev/null
    done
  fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the roots: an overlay each on the unpacked root; the guest's scripts, the package -----------
root_dir=${root_tar%.tar}.root
if [ ! -d "$root_dir" ]; then
  say "unpacking $(basename "$root_tar") (once; kept as $root_dir)"
  rm -rf "$root_dir.partial"
  mkdir -p "$root_dir.partial"
  tar -xf "$root_tar" -C "$root_dir.partial" || die "cannot unpack $root_tar"
  mv "$root_dir.partial" "$root_dir"
fi
network_unit() { # ADDRESS PEER PEER_ENDPOINTS
  cat <<EOF
[Unit]
Description=The fleet test's network: eth0 $1/24, forwarding, a route to the other VM's endpoints
Before=socketreaper.service sr-etcd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/sr-fleet/fleet-guest.sh network $1 $2 $3

[Install]
WantedBy=multi-user.target
EOF
}
for vm in a b; do
  mkdir -p "$run/$vm/root" "$run/$vm/upper" "$run/$vm/work" "$run/$vm/ctl"
  mount -t overlay overlay -o "lowerdir=$root_dir,upperdir=$run/$vm/upper,workdir=$run/$vm/work" "$run/$vm/root" ||
    die "cannot mount an overlay on $root_dir"
  r=$run/$vm/root
  install -m 0644 "$deb" "$r/root/socketreaper.deb"
  install -D -m 0644 scripts/vm/fleet-peer.py "$r/usr/local/lib/sr-fleet/fleet-peer.py"
  install -D -m 0755 scripts/vm/fleet-guest.sh "$r/usr/local/lib/sr-fleet/fleet-guest.sh"
  # The config and the drop-in as an admin puts them, then the package installed into the image
  # (dpkg keeps the config; the postinst enables the unit, which starts at boot).
  install -d -m 0755 "$r/etc/socketreaper" "$r/etc/systemd/system/socketreaper.service.d" "$r/etc/systemd/system/multi-user.target.wants"
  printf '{"Fleet": {"Etcd": {"Endpoints": ["http://10.210.0.1:2379"]}, "Host": "%s", "LeaseSeconds": %d}}\n' "$vm" "$lease" \
    >"$r/etc/socketreaper/reaper.json"
  sed -e '/^IPAddressAllow=2001:db8::\/64$/d' -e 's|^IPAddressAllow=192\.0\.2\.0/24$|IPAddressAllow=10.210.0.0/24|' \
    systemd/socketreaper-fleet.conf >"$r/etc/systemd/system/socketreaper.service.d/fleet.conf"
  grep -qx 'IPAddressAllow=10.210.0.0/24' "$r/etc/systemd/system/socketreaper.service.d/fleet.conf" ||
    die "systemd/socketreaper-fleet.conf no longer has the line this script replaces (IPAddressAllow=192.0.2.0/24)"
  chroot "$r" dpkg --force-confold --force-confdef -i /root/socketreaper.deb >"$run/$vm/dpkg.log" 2>&1 ||
    { tail -n 20 "$run/$vm/dpkg.log" >&2; die "dpkg -i of the package in VM $vm's root failed"; }
  if [ $vm = a ]; then
    network_unit 10.210.0.1 10.210.0.2 10.211.2.0/24 >"$r/etc/systemd/system/sr-fleet-net.service"
    cat >"$r/etc/systemd/system/sr-etcd.service" <<EOF
[Unit]
Description=etcd for the fleet test, on 10.210.0.1:2379
After=sr-fleet-net.service
Requires=sr-fleet-net.service

[Service]
ExecStart=/usr/bin/etcd --name a --data-dir /var/lib/sr-etcd \\
  --listen-client-urls http://10.210.0.1:2379,http://127.0.0.1:2379 --advertise-client-urls http://10.210.0.1:2379 \\
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \\
  --initial-cluster a=http://127.0.0.1:2380 --initial-cluster-state new

[Install]
WantedBy=multi-user.target
EOF
    ln -sf /etc/systemd/system/sr-etcd.service "$r/etc/systemd/system/multi-user.target.wants/"
  else
    network_unit 10.210.0.2 10.210.0.1 10.211.1.0/24 >"$r/etc/systemd/system/sr-fleet-net.service"
  fi
  ln -sf /etc/systemd/system/sr-fleet-net.service "$r/etc/systemd/system/multi-user.target.wants/"
  cat >"$r/etc/systemd/system/sr-fleet-agent.service" <<'EOF'
[Unit]
Description=The fleet end-to-end test's agent (commands from the host over 9p)
After=multi-user.target

[Service]
ExecStart=/usr/local/lib/sr-fleet/fleet-guest.sh agent

[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/sr-fleet-agent.service "$r/etc/systemd/system/multi-user.target.wants/"
  ln -sf /lib/systemd/system/multi-user.target "$r/etc/systemd/system/default.target"
  ln -sf /dev/null "$r/etc/systemd/system/serial-getty@ttyS0.service"
  ln -sf /dev/null "$r/etc/systemd/system/getty@tty1.service"
  echo "srfleet-$vm" >"$r/etc/hostname"
  : >"$r/etc/fstab"
done
part "prepare"

# --- the boots: A listens on a free loopback port, B connects to it ------------------------------
port=""
for _ in $(seq 50); do
  candidate=$((20000 + RANDOM % 40000))
  [ -z "$(ss -Hltn "sport = :$candidate")" ] && { port=$candidate; break; }
done
[ -n "$port" ] || die "found no free loopback port for the VMs' network"
vm_smp=1 vm_memory=1536
boot() {
  local vm=$1 netdev=$2 mac=$3
  vm_qemu 1200 "systemd.show_status=false net.ifnames=0" \
    -virtfs "local,path=$run/$vm/root,mount_tag=host,security_model=passthrough,multidevs=remap" \
    -virtfs "local,path=$kernel_dir/lib/modules,mount_tag=modules,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$run/$vm/ctl,mount_tag=ctl,security_model=none,multidevs=remap" \
    -netdev "socket,id=n0,$netdev" -device "virtio-net-pci,netdev=n0,mac=$mac" \
    -pidfile "$run/$vm/qemu.pid" >"$run/$vm/console" 2>&1 &
  jobs_started+=($!)
}
say "booting VM A and VM B ($release, qemu tcg, one core and 1.5 GiB each; L2 over 127.0.0.1:$port)"
boot a "listen=127.0.0.1:$port" 52:54:00:5e:10:0a
for _ in $(seq 100); do [ -n "$(ss -Hltn "sport = :$port")" ] && break; sleep 0.1; done
boot b "connect=127.0.0.1:$port" 52:54:00:5e:10:0b

alive() { local pid; pid=$(cat "$run/$1/qemu.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; }
deadline=$((SECONDS + 300))
until [ -f "$run/a/ctl/ready" ] && [ -f "$run/b/ctl/ready" ]; do
  for vm in a b; do
    if [ -f "$run/$vm/qemu.pid" ] && ! alive $vm && [ ! -f "$run/$vm/ctl/ready" ]; then
      say "VM $vm ended before it was up; its console:"; tail -n 30 "$run/$vm/console" >&2; exit 124
    fi
  done
  if [ $SECONDS -ge $deadline ]; then
    say "the VMs were not up within 300 s; their consoles:"
    for vm in a b; do echo "--- VM $vm" >&2; tail -n 30 "$run/$vm/console" >&2; done
    exit 124
  fi
  sleep 0.2
done
say "both VMs up after $((SECONDS - part_started)) s"
part "boot"

# --- commands in the guests (scripts/vm/fleet-guest.sh agent) -------------------------------------
echo 0 >"$run/seq"
# send VM SCRIPT: hands SCRIPT to VM's agent; sets $sent to its id (numbered in a file: checks run
# in subshells).
send() {
  local seq=$(($(cat "$run/seq") + 1))
  echo $seq >"$run/seq"
  printf '%s\n' "$2" >"$run/$1/ctl/req/$seq.sh.tmp"
  mv "$run/$1/ctl/req/$seq.sh.tmp" "$run/$1/ctl/req/$seq.sh"
  sent=$seq
}
# collect VM ID SECONDS: waits for that command, prints its output, returns its exit code (124: no
# answer in time, 125: the VM is gone).
collect() {
  local vm=$1 id=$2 deadline=$((SECONDS + $3))
  until [ -f "$run/$vm/ctl/res/$id.rc" ]; do
    alive "$vm" || { cat "$run/$vm/ctl/res/$id.out" 2>/dev/null; echo "(VM $vm is gone)"; return 125; }
    [ $SECONDS -lt $deadline ] || { cat "$run/$vm/ctl/res/$id.out" 2>/dev/null; echo "(no answer from VM $vm in $3 s)"; return 124; }
    sleep 0.05
  done
  cat "$run/$vm/ctl/res/$id.out"
  return "$(cat "$run/$vm/ctl/res/$id.rc")"
}
# on VM SECONDS SCRIPT: runs SCRIPT in VM, prints its output, returns its exit code.
on() { send "$1" "$3"; collect "$1" "$sent" "$2"; }

failures=0
: >"${results:=/dev/null}"
# ok NAME, fail NAME WHY: one line each in --results; on stderr with the check's wall time.
took=""
ok() { echo "SR-CHECK ok $1" >>"$results"; echo "SR-CHECK ok $1${took:+ [$took s]}" >&2; took=""; }
fail() {
  echo "SR-CHECK FAIL $1: $2" >>"$results"
  echo "SR-CHECK FAIL $1${took:+ [$took s]}: $2" >&2
  failures=$((failures + 1)) took=""
}
# check NAME VM SECONDS SCRIPT: ok when SCRIPT succeeds in VM; its output (last lines) says why otherwise.
check() {
  local t0=$SECONDS out rc
  out=$(on "$2" "$3" "$4" 2>&1); rc=$?
  verdict "$1" "$rc" "$out" "$t0"
}
# check_sent NAME VM ID SECONDS: check's verdict on a command sent before.
check_sent() {
  local t0=$SECONDS out rc
  out=$(collect "$2" "$3" "$4" 2>&1); rc=$?
  verdict "$1" "$rc" "$out" "$t0"
}
# verdict NAME RC OUTPUT STARTED: ok with the output's last lines, or failed with them.
verdict() {
  took=$((SECONDS - $4))
  if [ "$2" -eq 0 ]; then
    ok "$1"
    [ -n "$3" ] && sed 's/^/fleet:   /' <<<"$3" | tail -n 4 >&2
    return 0
  fi
  fail "$1" "$(tail -n 6 <<<"$3" | tr '\n' ' ')"
  return 1
}
# The journal of VM's daemon (and etcd's, on A), kept for the report.
journal() {
  on "$1" 30 "journalctl -b --no-pager -o short-monotonic -u socketreaper -u sr-etcd -n 300; echo; echo '# etcd:'; etcdctl --endpoints=http://10.210.0.1:2379 --command-timeout=3s get --prefix $prefix 2>&1 | paste - - | head -n 40" \
    >"$run/journal-$1.txt" 2>&1
}
finish() {
  part "${1:-end}"
  if [ "$failures" -gt 0 ]; then
    for vm in a b; do
      if [ -s "$run/journal-$vm.txt" ] || { alive $vm && journal $vm; }; then
        say "VM $vm's daemon (journalctl -u socketreaper, the last 80 lines) and etcd's keys:"
        tail -n 80 "$run/journal-$vm.txt" | sed "s/^/fleet: $vm| /" >&2
      fi
    done
  fi
  say "$failures failure(s); $((SECONDS - started)) s in all"
  echo "exit $failures" >>"$results"
  exit "$failures"
}

# --- set-up: the endpoints, the ranges; the units came up at boot ------------------------------
connected='wait_for 60 systemctl is-active socketreaper || { systemctl status socketreaper --no-pager; exit 1; }
systemctl is-enabled socketreaper
wait_for 30 metric_is socketreaper_fleet_connected 1 || { echo "not connected to etcd"; journalctl -u socketreaper -n 20 --no-pager; exit 1; }
journalctl -u socketreaper -o cat | grep -m1 "Fleet mode: host"'
send b "endpoint sr-s1 vethsrs1 10.211.2.5 && serve sr-s1 s1 10.211.2.5 || exit 1
endpoint sr-s2 vethsrs2 10.211.2.6 && serve sr-s2 s2 10.211.2.6 || exit 1
$connected"
b_setup=$sent
check "VM A: etcd on 10.210.0.1:2379, the admin's ranges for a and b written; the package's unit enabled and active, in fleet mode (host a) behind the drop-in, connected" a 120 "wait_for 60 etcdctl endpoint health || { journalctl -u sr-etcd -n 20 --no-pager; exit 1; }
etcdctl put ${prefix}ranges/a '{\"ranges\":[\"10.211.1.0/24\"]}' && etcdctl put ${prefix}ranges/b '{\"ranges\":[\"10.211.2.0/24\"]}' || exit 1
endpoint sr-c vethsrc 10.211.1.5 && hold sr-c || exit 1
endpoint sr-l vethsrl 10.211.1.6 && serve sr-l l 10.211.1.6 || exit 1
$connected"
check_sent "VM B: its endpoints up; the package's unit enabled and active, in fleet mode (host b) behind the drop-in, connected to etcd on VM A over the virtual network" b $b_setup 120
[ "$failures" -eq 0 ] || finish setup

# The datapath covers B's endpoint devices before their first packet (it learns an address from it).
check "VM B: the datapath covers the endpoints' veths" b 30 'wait_for 20 bash -c "bpftool net show dev vethsrs1 | grep -q reaper_ && bpftool net show dev vethsrs2 | grep -q reaper_" || { bpftool net show; exit 1; }' || finish setup
check "VM A's client reaches B's endpoints (TCP and connected UDP) and A's own server" a 60 \
  'ask open s1 10.211.2.5 7000 && ask open s2 10.211.2.6 7000 && ask open l 10.211.1.6 7000 && ask probe s1 | grep -qx "ok tcp=ok:s1 udp=ok:s1"' || finish setup
check "VM B publishes its endpoints and its host record (health 10.210.0.2:9478), and A's connections to them, made as they appeared, still exchange data after that" a 60 \
  "wait_for 40 etcd_has ${prefix}endpoints/b/10.211.2.5 && wait_for 20 etcd_has ${prefix}endpoints/b/10.211.2.6 && etcd_has ${prefix}hosts/b || { etcdctl get --prefix $prefix --keys-only; exit 1; }
etcdctl get ${prefix}hosts/b --print-value-only | grep '\"health\":\[\"10.210.0.2:9478\"\]' || { echo \"b's host record does not name 10.210.0.2:9478 (Fleet.Health's default) as its health address\"; etcdctl get ${prefix}hosts/b --print-value-only; exit 1; }
sleep 1; ask probe s1 | grep -x 'ok tcp=ok:s1 udp=ok:s1' && ask probe s2 | grep -x 'ok tcp=ok:s2 udp=ok:s2'" || finish setup
part "setup"

# --- (a) the endpoint is deleted on B ------------------------------------------------------------
say "(a) B's endpoint 10.211.2.5 is deleted (its veth and namespace)"
check "(a) VM B: the endpoint's veth and namespace deleted" b 30 "unendpoint sr-s1 vethsrs1"
check "(a) VM A: the client's TCP and UDP sockets to B's gone endpoint are destroyed (ECONNABORTED, EDESTADDRREQ on the next send)" a 40 \
  'ask dead s1 20 && ask probe s1 | grep -x "ok tcp=ECONNABORTED udp=EDESTADDRREQ" || { ask probe s1; exit 1; }'
check "(a) VM A: its connections to B's other endpoint still exchange data" a 20 'ask probe s2 | grep -x "ok tcp=ok:s2 udp=ok:s2"'
check "(a) VM A's daemon counted one remote endpoint gone and no move (socketreaper_fleet_changes_total)" a 20 \
  'g=$(metric "socketreaper_fleet_changes_total{kind=\"gone\"}"); m=$(metric "socketreaper_fleet_changes_total{kind=\"moved\"}"); echo "gone $g, moved $m"; [ "${g%.*}" = 1 ] && [ "${m%.*}" = 0 ]'
part "(a) endpoint deleted"

# --- (b) the address moves to a new endpoint on B -----------------------------------------------
say "(b) B gives 10.211.2.5 to a new endpoint"
check "(b) VM B: an endpoint 'old' owns 10.211.2.5 again" b 30 "endpoint sr-o vethsro 10.211.2.5 && serve sr-o old 10.211.2.5 && wait_for 20 bash -c 'bpftool net show dev vethsro | grep -q reaper_'"
check "(b) VM A: the client connects to 'old'" a 60 "ask open old 10.211.2.5 7000 | grep -x 'ok old: tcp=ok:old udp=ok:old'"
# The move below is a move only if A knew the old owner: b's key names old's veth (then A's watch has it).
owned_by() { echo "wait_for 30 owner_is 10.211.2.5 $1 || { etcdctl --endpoints=http://10.210.0.1:2379 get ${prefix}endpoints/b/10.211.2.5; exit 1; }; sleep 1"; }
check "(b) VM B: learns and publishes 'old' as 10.211.2.5's owner" b 40 "$(owned_by vethsro)"
check "(b) VM A: the connection made to 'old' as it appeared still exchanges data once B published it (its owner did not change when it first answered)" a 20 \
  'sleep 1; ask probe old | grep -x "ok tcp=ok:old udp=ok:old"'
check "(b) VM B: a new endpoint 'new' takes 10.211.2.5 (a new namespace; the host route moved to its veth), published as its owner" b 40 \
  "endpoint sr-n vethsrn 10.211.2.5 && serve sr-n new 10.211.2.5 && ip netns exec sr-n ping -c 1 -W 2 10.210.0.2 >/dev/null
$(owned_by vethsrn)"
check "(b) VM A: the old owner's TCP and UDP sockets are destroyed" a 40 \
  'ask dead old 20 && ask probe old | grep -x "ok tcp=ECONNABORTED udp=EDESTADDRREQ" || { ask probe old; exit 1; }'
check "(b) VM A: a connection made to the new owner after the move lives, and B's other endpoint still answers" a 40 \
  'ask open new 10.211.2.5 7000 | grep -x "ok new: tcp=ok:new udp=ok:new" && sleep 3 && ask probe new | grep -x "ok tcp=ok:new udp=ok:new" && ask probe s2 | grep -x "ok tcp=ok:s2 udp=ok:s2"'
check "(b) VM A's daemon counted exactly one remote address moved (socketreaper_fleet_changes_total{kind=\"moved\"})" a 20 \
  'v=$(metric "socketreaper_fleet_changes_total{kind=\"moved\"}"); echo "moved: $v"; [ "${v%.*}" = 1 ]'
# What the old endpoint sends now must not take the address back, not even for the moment before
# the daemon hears of it: b's publisher reads the owner table 4 times a second (found by CI).
check "(b) VM B: 'old' still sending from 10.211.2.5 (pings from its namespace) does not take it back: the datapath counts them against the host route and queues no move" b 40 \
  'series="socketreaper_datapath_events_total{kind=\"ip_moved\"}"; before=$(metric "$series") || exit 1
ip netns exec sr-o ping -c 5 -i 0.2 -W 1 10.210.0.2 >/dev/null
against() { v=$(metric "socketreaper_datapath_events_total{kind=\"ip_moved_against_route\"}") && [ "${v%.*}" -ge 1 ]; }
wait_for 15 against || { echo "no look against the route counted"; exit 1; }
after=$(metric "$series"); echo "ip_moved $before -> $after"; [ "$after" = "$before" ] && owner_is 10.211.2.5 vethsrn'
check "(b) VM B: the old endpoint's namespace goes; A's connection to the new owner still lives" b 30 "unendpoint sr-o vethsro"
check "(b) ... (checked from A, 3 s later)" a 30 'sleep 3; ask probe new | grep -x "ok tcp=ok:new udp=ok:new" || { ask probe new; exit 1; }'
part "(b) address moved"

# --- (d) B is cut off from etcd, but answers ----------------------------------------------------
say "(d) B is cut off from etcd (nftables in B drops its packets to 10.210.0.1:2379); it still answers"
cut=$SECONDS
check "(d) VM B: nftables drops what B sends to etcd's port" b 30 \
  "nft add table inet srfleet && nft add chain inet srfleet out '{ type filter hook output priority 0; }' && nft add rule inet srfleet out ip daddr 10.210.0.1 tcp dport 2379 drop"
check "(d) VM A: b's lease expires in etcd (its host record goes)" a $((lease * 3 + 10)) \
  "wait_for $((lease * 3)) not etcd_has ${prefix}hosts/b"
say "(d) b's keys went $((SECONDS - cut)) s after the cut (lease ${lease} s); waiting 5 s more"
check "(d) VM A: 5 s after b's lease expired, its connections to B's endpoints still exchange data" a 30 \
  'sleep 5; ask probe new | grep -x "ok tcp=ok:new udp=ok:new" && ask probe s2 | grep -x "ok tcp=ok:s2 udp=ok:s2" || { ask probe new; ask probe s2; exit 1; }'
check "(d) VM A's daemon checked b, found it answering, and kept its sockets (event 605, socketreaper_fleet_hosts_lost_total{action=\"kept\"})" a 20 \
  'journalctl -u socketreaper -o cat | grep -m1 "host b lost its lease but" && v=$(metric "socketreaper_fleet_hosts_lost_total{action=\"kept\"}") && echo "kept: $v" && [ "${v%.*}" -ge 1 ]'
check "(d) VM B: the daemon is still active" b 20 "systemctl is-active socketreaper"
rejoin=$SECONDS
check "(d) VM B: once the cut ends, b publishes again (new lease: its host record and both endpoints)" b 10 "nft delete table inet srfleet"
check "(d) ... (seen in etcd from A)" a 60 \
  "wait_for 45 etcd_has ${prefix}hosts/b && wait_for 10 etcd_has ${prefix}endpoints/b/10.211.2.5 && wait_for 10 etcd_has ${prefix}endpoints/b/10.211.2.6 && sleep 1 || { etcdctl get --prefix $prefix --keys-only; exit 1; }"
say "(d) b was back in etcd $((SECONDS - rejoin)) s after the cut ended"
part "(d) cut off from etcd"

# --- (c) VM B dies -------------------------------------------------------------------------------
journal b
check "(c) VM A: just before B dies, its connections to B's endpoints exchange data" a 30 \
  'ask probe new | grep -x "ok tcp=ok:new udp=ok:new" && ask probe s2 | grep -x "ok tcp=ok:s2 udp=ok:s2" || { ask probe new; ask probe s2; exit 1; }' ||
  { fail "(c) VM A: its sockets to VM B's endpoint are destroyed within lease TTL + 2 s of B's death" "not measured: they were not alive before"; journal a; finish "(c) host killed"; }
say "(c) VM B is killed (SIGKILL to its qemu)"
send a "ask dead new $((lease + 10)) alive"; waiting=$sent
for _ in $(seq 200); do grep -qx armed "$run/a/ctl/res/$waiting.out" 2>/dev/null && break; sleep 0.05; done
kill -KILL "$(cat "$run/b/qemu.pid")"
killed=$(date +%s.%N)
out=$(collect a "$waiting" $((lease + 20)) 2>&1); rc=$?
took=$(awk -v a="$killed" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
limit=$((lease + 2))
# The figure: A's own clock, from "armed" (just before the kill) to both sockets destroyed, an upper
# bound of the time from B's death; the host's includes its polling of the answer (~0.2 s more).
dead=$(sed -n 's/^ok dead after \([0-9.]*\) s$/\1/p' <<<"$out")
say "(c) VM A: $(tail -n 1 <<<"$out") (measured in A from just before the kill; the host saw it $took s after the kill); limit: lease $lease s + 2 s = $limit s"
if [ $rc -eq 0 ] && [ -n "$dead" ] && awk -v t="$dead" -v l="$limit" 'BEGIN { exit !(t <= l) }'; then
  ok "(c) VM A: its sockets to VM B's endpoint are destroyed within lease TTL + 2 s of B's death ($dead s, limit $limit s)"
else
  fail "(c) VM A: its sockets to VM B's endpoint are destroyed within lease TTL + 2 s of B's death" "$(tail -n 1 <<<"$out") (the host saw it $took s after the kill; limit $limit s)"
fi
check "(c) VM A: the stale sockets error on their next send; those to B's other endpoint are destroyed too" a 20 \
  'ask probe new | grep -x "ok tcp=ECONNABORTED udp=EDESTADDRREQ" && ask probe s2 | grep -x "ok tcp=ECONNABORTED udp=EDESTADDRREQ" || { ask probe new; ask probe s2; exit 1; }'
check "(c) VM A: its connection to its own endpoint still exchanges data" a 20 'ask probe l | grep -x "ok tcp=ok:l udp=ok:l"'
check "(c) VM A's daemon reaped for host b (event 604, socketreaper_fleet_hosts_lost_total{action=\"reaped\"} 1)" a 20 \
  'journalctl -u socketreaper -o cat | grep -m1 "host b lost its lease and" && v=$(metric "socketreaper_fleet_hosts_lost_total{action=\"reaped\"}") && echo "reaped: $v" && [ "${v%.*}" = 1 ]'
journal a
finish "(c) host killed"
