#!/usr/bin/env bash
# Checks the systemd unit and the D-Bus policy without installing them.
#
#   scripts/check-systemd.sh [BINARY]
#   UNIT=path/to/socketreaper.service scripts/check-systemd.sh [BINARY]   (another copy of the unit,
#        e.g. the one a .deb ships: scripts/check-package.sh)
#
# BINARY (absolute or relative path of a built socketreaper; default artifacts/aot/socketreaper,
# else /usr/bin/true) replaces ExecStart's path in a temporary copy of the unit, because
# 'systemd-analyze verify' wants ExecStart to name an existing file. Then:
#   1. systemd-analyze verify: no message may mention our unit;
#   2. systemd-analyze security --offline=true: exposure at most $EXPOSURE_MAX (default 3.5, the limit issue 8 sets);
#   3. the D-Bus policy: well-formed XML (xmllint, else python3) with the busconfig DOCTYPE, and
#      accepted by a throw-away dbus-daemon when one is installed.
# Exits 0 only if all pass; the last line is a one-line summary.
set -uo pipefail
cd "$(dirname "$0")/.."

unit=${UNIT:-systemd/socketreaper.service}
policy=systemd/org.socketreaper.Reaper1.conf
max=${EXPOSURE_MAX:-3.5}

bin=${1:-}
if [ -z "$bin" ]; then
  if [ -x artifacts/aot/socketreaper ]; then bin=artifacts/aot/socketreaper; else bin=/usr/bin/true; fi
fi
[ -x "$bin" ] || { echo "check-systemd: '$bin' is not an executable file"; exit 2; }
bin=$(realpath "$bin")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=() notes=()
say() { printf 'check-systemd: %s\n' "$*"; }

# --- 1. verify ----------------------------------------------------------------------------------
sed "s|^ExecStart=/usr/sbin/socketreaper|ExecStart=$bin|" "$unit" >"$tmp/socketreaper.service"
grep -q "^ExecStart=$bin " "$tmp/socketreaper.service" || failed+=("ExecStart is not /usr/sbin/socketreaper")
systemd-analyze verify --man=no --recursive-errors=no "$tmp/socketreaper.service" >"$tmp/verify.log" 2>&1
verify_rc=$?
# Other units on the host (dbus.socket, ...) may draw complaints; only ours count.
ours=$(grep -E "socketreaper\.service|$tmp" "$tmp/verify.log" || true)
if [ -n "$ours" ] || [ "$verify_rc" -ne 0 ]; then
  say "systemd-analyze verify (rc=$verify_rc):"; sed 's/^/  /' "$tmp/verify.log"
  [ -n "$ours" ] && failed+=("verify")
  [ -z "$ours" ] && notes+=("verify rc=$verify_rc, nothing about our unit")
fi

# --- 2. security --------------------------------------------------------------------------------
# --threshold takes the exposure times ten as an integer (4.0 -> 40).
threshold=$(awk -v m="$max" 'BEGIN { printf "%d", m * 10 + 0.5 }')
systemd-analyze security --no-pager --offline=true --threshold="$threshold" \
  "$tmp/socketreaper.service" >"$tmp/security.log" 2>&1
security_rc=$?
exposure=$(sed -n 's/.*Overall exposure level for socketreaper\.service: \([0-9.]*\).*/\1/p' "$tmp/security.log")
if [ -z "$exposure" ]; then
  cat "$tmp/security.log"; failed+=("security: no exposure figure"); exposure="?"
elif [ "$security_rc" -ne 0 ]; then
  grep '✗' "$tmp/security.log" | sed 's/^/  /'
  failed+=("exposure $exposure > $max")
fi
say "exposure $exposure (limit $max); open items:"
grep '✗' "$tmp/security.log" | awk '{ printf "  %s %s\n", $NF, $2 }' | sort -rn | head -n 8

# --- 3. D-Bus policy ----------------------------------------------------------------------------
if ! command -v xmllint >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing libxml2-utils for xmllint"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends libxml2-utils >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends libxml2-utils >/dev/null 2>&1; } ||
    notes+=("libxml2-utils not installable; used python3")
fi
if command -v xmllint >/dev/null 2>&1; then
  xmllint --noout --nonet "$policy" || failed+=("policy XML (xmllint)")
else
  python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$policy" || failed+=("policy XML (python3)")
fi
grep -q '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"' "$policy" ||
  failed+=("policy DOCTYPE")
if command -v dbus-daemon >/dev/null 2>&1; then
  # A private bus whose only policy is ours: dbus-daemon refuses unknown elements and attributes.
  cat >"$tmp/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$tmp/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <include>$(realpath "$policy")</include>
</busconfig>
EOF
  dbus-daemon --config-file="$tmp/bus.conf" --nofork --print-address >"$tmp/bus.out" 2>"$tmp/bus.err" &
  bus_pid=$!
  for _ in $(seq 30); do
    grep -q "unix:path=$tmp/bus.sock" "$tmp/bus.out" 2>/dev/null || ! kill -0 "$bus_pid" 2>/dev/null && break
    sleep 0.1
  done
  kill "$bus_pid" 2>/dev/null; wait "$bus_pid" 2>/dev/null
  if ! grep -q "unix:path=$tmp/bus.sock" "$tmp/bus.out"; then
    sed 's/^/  /' "$tmp/bus.err"; failed+=("policy rejected by dbus-daemon")
  fi
else
  notes+=("no dbus-daemon: policy only checked as XML")
fi

# --- summary ------------------------------------------------------------------------------------
extra=""; [ ${#notes[@]} -gt 0 ] && extra=" (notes: $(IFS=';'; echo "${notes[*]}"))"
if [ ${#failed[@]} -eq 0 ]; then
  say "PASS: verify clean, exposure $exposure <= $max, D-Bus policy valid$extra"
  exit 0
fi
say "FAIL: $(IFS=','; echo "${failed[*]}") (exposure $exposure)$extra"
exit 1
