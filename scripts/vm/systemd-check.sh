#!/bin/bash
# Runs inside the systemd VM (scripts/vm/systemd.sh) as a oneshot unit after multi-user.target:
# installs the package with dpkg, checks it under the real systemd and system bus, reboots once,
# checks again, removes and purges it. Each check prints "SR-CHECK ok|FAIL <name>[: why]" to the
# serial console and appends it to /root/sr-results; the last line is "SR-VM-EXIT <failures>".
# Phase 1 (first boot) ends with `systemctl reboot`; phase 2 runs after the reboot.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
results=/root/sr-results
phase_file=/root/sr-phase
unit=socketreaper.service
dest=org.socketreaper.Reaper1
object=/org/socketreaper/Reaper
failures=0

say() { echo "SR-VM: $*" >/dev/ttyS0; }
ok() { echo "SR-CHECK ok $1" | tee -a "$results" >/dev/ttyS0; }
fail() { echo "SR-CHECK FAIL $1: $2" | tee -a "$results" >/dev/ttyS0; failures=$((failures + 1)); }
# check NAME COMMAND...: ok when COMMAND succeeds; its output is the failure's reason otherwise.
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(echo "$out" | tail -n 3 | tr '\n' ' ')"; fi
}
# wait_for SECONDS COMMAND...: true once COMMAND succeeds within SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}
finish() {
  # Both boots' checks count.
  failures=$(grep -c '^SR-CHECK FAIL' "$results")
  echo "SR-VM-EXIT $failures" >/dev/ttyS0
  echo "exit $failures" >>"$results"
  echo done >"$phase_file"
  sync
  systemctl poweroff --no-block
  exit 0
}
main_pid() { systemctl show -p MainPID --value "$unit"; }
active() { [ "$(systemctl is-active "$unit")" = active ]; }
# The ids of the BPF links on DEVICE whose program is ours.
our_links() { bpftool -j link show 2>/dev/null | python3 -c '
import json, socket, sys
want = socket.if_nametoindex(sys.argv[1])
names = {p["id"]: p.get("name", "") for p in json.loads(sys.argv[2])}
links = json.load(sys.stdin)
print(" ".join(sorted(str(l["id"]) for l in links if l.get("ifindex") == want and names.get(l["prog_id"], "").startswith("reaper_"))))
' "$1" "$(bpftool -j prog show)"; }
covered() { [ -n "$(our_links "$1")" ]; }
hooks_attached() { bpftool cgroup show /sys/fs/cgroup 2>/dev/null | grep -q reaper_; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# An endpoint device named as CNIs name theirs (the default Datapath.Devices has veth*), its peer in a namespace.
make_endpoint() {
  ip netns add srvm-ep 2>/dev/null || true
  ip link add vethsrvm type veth peer name vethsrvp netns srvm-ep
  ip link set vethsrvm up
  ip -n srvm-ep link set vethsrvp up
}

# Two namespaces, each with a stale connection (to 10.77.0.1:8080) and an innocent one (to 10.77.9.9:9000).
start_scenario() {
  cat >/root/pairs.py <<'PY'
import errno, os, socket, sys, time
base = sys.argv[1]
def pair(server, port, client):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind((server, port)); l.listen()
    c = socket.create_connection((server, port), source_address=(client, 0)); s, _ = l.accept()
    return c, s
def probe(c, s):
    try:
        c.send(b"x")
        return "ok" if s.recv(1) == b"x" else "eof"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
stale = pair("10.77.0.1", 8080, "10.77.9.9")
innocent = pair("10.77.9.9", 9000, "10.77.0.1")
open(base + ".ready", "w").close()
while not os.path.exists(base + ".go"):
    time.sleep(0.1)
with open(base + ".result", "w") as f:
    f.write(probe(*stale) + " " + probe(*innocent) + "\n")
PY
  for n in srvm-a srvm-b; do
    ip netns add $n
    ip -n $n link set lo up
    ip -n $n addr add 10.77.0.1/32 dev lo
    ip -n $n addr add 10.77.9.9/32 dev lo
    rm -f /root/$n.ready /root/$n.go /root/$n.result
    ip netns exec $n python3 /root/pairs.py /root/$n &
  done
  wait_for 30 test -e /root/srvm-a.ready -a -e /root/srvm-b.ready
}

phase1() {
  say "phase 1: install"
  check "dpkg -i installs the package" dpkg -i /root/socketreaper.deb
  check "the unit is enabled on install" systemctl is-enabled "$unit"

  # Active only after READY=1: systemd takes the STATUS= sent with it in the same datagram, so the
  # first moment the unit is active its status text is there (Type=simple would be active first).
  local state status="" deadline=$((SECONDS + 90))
  while [ $SECONDS -lt $deadline ]; do
    state=$(systemctl show -p ActiveState -p StatusText "$unit")
    if grep -q '^ActiveState=active' <<<"$state"; then status=$(sed -n 's/^StatusText=//p' <<<"$state"); break; fi
    sleep 0.1
  done
  check "the unit becomes active after install, and only with READY=1 (its STATUS= is there at once)" test -n "$status"
  check "systemctl status shows the STATUS= line (namespaces, endpoints, last sweep)" \
    bash -c "systemctl status $unit --no-pager | grep -E 'Status: \"watching [0-9]+ network namespaces?, .*(no sweep yet|last sweep)'"
  check "the unit runs the package's binary" bash -c "test \"\$(systemctl show -p ExecStart --value $unit | sed -n 's/.*path=\([^ ;]*\).*/\1/p')\" = \"\$(dpkg -L socketreaper | grep -E '/s?bin/socketreaper\$')\""

  start_scenario
  local reply
  reply=$(busctl call $dest $object $dest Sweep 'va{sv}' s "dst 10.77.0.1 dport 8080 proto tcp" 0 2>&1)
  check "as root, Sweep over the system bus destroys the two stale sockets" grep -q '"destroyed" t 2' <<<"$reply"
  touch /root/srvm-a.go /root/srvm-b.go
  wait_for 20 test -s /root/srvm-a.result -a -s /root/srvm-b.result
  check "the stale connections are aborted and the innocent ones still exchange data" \
    bash -c 'test "$(cat /root/srvm-a.result)" = "ECONNABORTED ok" && test "$(cat /root/srvm-b.result)" = "ECONNABORTED ok" || { cat /root/srvm-*.result; false; }'
  check "the sweep's structured journal entry (SOCKETREAPER_TRIGGER=dbus) says 2 destroyed" \
    bash -c "journalctl -u $unit SOCKETREAPER_TRIGGER=dbus -o export | grep -qx 'SOCKETREAPER_DESTROYED=2'"
  check "journalctl -u socketreaper has the ready line at priority 6 with its fields (SOCKETREAPER_EVENT_ID=1, _NAMESPACES, _VERSION)" \
    bash -c "journalctl -u $unit -p 6..6 -o cat | grep -q 'ready: sweep engine loaded' && e=\$(journalctl -u $unit SOCKETREAPER_EVENT_ID=1 -o export) && grep -qx 'PRIORITY=6' <<<\"\$e\" && grep -qE '^SOCKETREAPER_NAMESPACES=[0-9]+\$' <<<\"\$e\" && grep -q '^SOCKETREAPER_VERSION=' <<<\"\$e\""

  make_endpoint
  check "the datapath covers a new endpoint device under the unit's hardening" wait_for 30 covered vethsrvm
  check "the cgroup socket hooks are attached under the unit's hardening" hooks_attached

  check "as nobody, Sweep is refused by the shipped policy" \
    bash -c "out=\$(as_nobody busctl call $dest $object $dest Sweep 'va{sv}' s 'dst 10.77.0.1' 0 2>&1); test \$? -ne 0 && grep -qi denied <<<\"\$out\""
  check "as nobody, SetService is refused" \
    bash -c "out=\$(as_nobody busctl call $dest $object $dest SetService ssqsas dns 10.96.0.10 53 udp 0 2>&1); test \$? -ne 0 && grep -qi denied <<<\"\$out\""
  check "as nobody, DryRun is answered" as_nobody busctl call $dest $object $dest DryRun 'va{sv}' s "dst 10.77.0.1" 0
  check "as nobody, GetStatus is answered" as_nobody busctl call $dest $object $dest GetStatus

  local links pid restarts
  links=$(our_links vethsrvm)
  pid=$(main_pid)
  restarts=$(systemctl show -p NRestarts --value "$unit")
  kill -STOP "$pid"
  check "SIGSTOP: the watchdog restarts the daemon" \
    wait_for 120 bash -c "test \"\$(systemctl show -p NRestarts --value $unit)\" -gt $restarts && test \"\$(systemctl is-active $unit)\" = active && test \"\$(systemctl show -p MainPID --value $unit)\" != $pid"
  check "after the watchdog's restart the datapath links are the same ($links)" wait_for 30 bash -c "test \"\$(our_links vethsrvm)\" = '$links'"

  pid=$(main_pid)
  kill -KILL "$pid"
  check "SIGKILL: the daemon is restarted" \
    wait_for 60 bash -c "test \"\$(systemctl is-active $unit)\" = active && test \"\$(systemctl show -p MainPID --value $unit)\" != $pid && test \"\$(systemctl show -p MainPID --value $unit)\" != 0"

  echo reboot >"$phase_file"
  sync
  say "phase 1 done; rebooting"
  systemctl reboot --no-block
  exit 0
}

phase2() {
  say "phase 2: after the reboot"
  check "after a reboot the enabled unit is active again" wait_for 90 active
  make_endpoint
  check "after a reboot the datapath covers the devices again" wait_for 30 covered vethsrvm

  check "apt-get remove succeeds" apt-get remove -y -q socketreaper
  check "remove stops the daemon" bash -c "! systemctl is-active --quiet $unit && ! pgrep -x socketreaper"
  check "remove keeps the config" test -f /etc/socketreaper/reaper.json
  check "apt-get purge succeeds" apt-get purge -y -q socketreaper
  check "purge removes the config and the state" bash -c "! test -e /etc/socketreaper && ! test -e /var/lib/socketreaper"
  check "purge removes the pins" bash -c "! test -e /sys/fs/bpf/socketreaper"
  check "purge detaches the datapath" bash -c "test -z \"\$(our_links vethsrvm)\""
  check "purge detaches the socket hooks" bash -c "! hooks_attached"
  finish
}

export -f our_links covered hooks_attached as_nobody active
export unit
case "$(cat "$phase_file" 2>/dev/null)" in
  "") phase1 ;;
  reboot) phase2 ;;
  *) say "nothing to do (phase $(cat "$phase_file"))"; systemctl poweroff --no-block ;;
esac
