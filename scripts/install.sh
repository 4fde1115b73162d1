#!/usr/bin/env bash
# Installs SocketReaper on this host (as root). Idempotent: files that are already current are left alone.
#
#   scripts/install.sh                 bootstrap, publish the NativeAOT binary, install, enable (if systemd)
#   scripts/install.sh --no-publish    install the binary already in artifacts/aot instead of publishing
#   scripts/install.sh --uninstall     remove what this script installed (keeps /etc/socketreaper/reaper.json)
#   scripts/install.sh --root DIR      stage every file under DIR only (no bootstrap, no systemctl)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=install publish=1 root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --uninstall) mode=uninstall ;;
    --no-publish) publish=0 ;;
    --root) root=${2:?--root needs a directory}; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root."

BIN=$root/usr/local/bin/socketreaper
UNIT=$root/etc/systemd/system/socketreaper.service
POLICY=$root/usr/share/dbus-1/system.d/org.socketreaper.Reaper1.conf
SYSUSERS=$root/usr/lib/sysusers.d/socketreaper.conf
TMPFILES=$root/usr/lib/tmpfiles.d/socketreaper.conf
CONFDIR=$root/etc/socketreaper
EXAMPLE=$CONFDIR/reaper.example.json
systemd_running() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

# put SRC DEST MODE: copies only when the content or mode differs, and says which.
put() {
  if [ -f "$2" ] && cmp -s "$1" "$2" && [ "$(stat -c %a "$2")" = "${3#0}" ]; then
    say "unchanged  $2"
  else
    install -D -m "$3" "$1" "$2"
    say "installed  $2"
  fi
}

if [ "$mode" = uninstall ]; then
  if systemd_running && systemctl cat socketreaper.service >/dev/null 2>&1; then
    say "stopping and disabling socketreaper.service"
    systemctl disable --now socketreaper.service || true
  elif [ -z "$root" ] && pgrep -x socketreaper >/dev/null; then
    say "note: a socketreaper process is still running; stop it before its pins are removed"
  fi
  for f in "$BIN" "$UNIT" "$POLICY" "$SYSUSERS" "$TMPFILES" "$EXAMPLE"; do
    if [ -e "$f" ]; then rm -f "$f"; say "removed    $f"; fi
  done
  systemd_running && systemctl daemon-reload
  # Runtime state the daemon created: its pins (removing them detaches its BPF programs) and state dir.
  for d in "$root/sys/fs/bpf/socketreaper" "$root/var/lib/socketreaper"; do
    if [ -d "$d" ]; then rm -rf "$d"; say "removed    $d"; fi
  done
  rmdir "$CONFDIR" 2>/dev/null && say "removed    $CONFDIR" || true
  [ -f "$CONFDIR/reaper.json" ] && say "kept       $CONFDIR/reaper.json"
  say "kept the group 'socketreaper' (remove it with 'groupdel socketreaper' if nothing else uses it)"
  say "uninstalled"
  exit 0
fi

if [ -z "$root" ]; then
  say "running scripts/bootstrap.sh"
  bash scripts/bootstrap.sh
fi

if [ "$publish" -eq 1 ]; then
  say "publishing the NativeAOT binary to artifacts/aot"
  dotnet publish src/Reaper/Reaper.csproj -c Release -r linux-x64 -p:PublishAot=true -o artifacts/aot -nologo -v quiet
fi
[ -x artifacts/aot/socketreaper ] || die "artifacts/aot/socketreaper is missing; run without --no-publish."

put artifacts/aot/socketreaper "$BIN" 0755
put systemd/socketreaper.service "$UNIT" 0644
put systemd/org.socketreaper.Reaper1.conf "$POLICY" 0644
put systemd/socketreaper.sysusers "$SYSUSERS" 0644
put systemd/socketreaper.tmpfiles "$TMPFILES" 0644
put systemd/reaper.example.json "$EXAMPLE" 0644
if [ -f "$CONFDIR/reaper.json" ]; then
  say "kept       $CONFDIR/reaper.json (never overwritten)"
else
  say "no $CONFDIR/reaper.json: the built-in defaults apply (copy reaper.example.json to change them)"
fi

if command -v systemd-sysusers >/dev/null 2>&1; then
  say "creating the group socketreaper (systemd-sysusers)"
  systemd-sysusers ${root:+--root="$root"} "$SYSUSERS"
elif [ -z "$root" ]; then
  say "creating the group socketreaper (groupadd -f)"
  groupadd -f -r socketreaper
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
  say "creating directories (systemd-tmpfiles --create)"
  systemd-tmpfiles ${root:+--root="$root"} --create "$TMPFILES"
else
  install -d -m 0755 "$CONFDIR"
  install -d -m 0700 "$root/var/lib/socketreaper" "$root/sys/fs/bpf/socketreaper"
fi

# dbus-daemon picks up new policy files by itself; ask it anyway when a system bus runs.
if [ -z "$root" ] && [ -S /run/dbus/system_bus_socket ]; then
  dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig \
    >/dev/null 2>&1 && say "reloaded the D-Bus system bus policy" || true
fi

if systemd_running; then
  say "systemctl daemon-reload && systemctl enable --now socketreaper"
  systemctl daemon-reload
  systemctl enable --now socketreaper.service
  systemctl --no-pager --lines=0 status socketreaper.service || true
elif [ -z "$root" ]; then
  say "systemd is not PID 1 here, so nothing was enabled. Start the daemon by hand (as root):"
  say "    socketreaper run            (or: socketreaper run --config $CONFDIR/reaper.json)"
fi
say "done"
