#!/usr/bin/env bash
# Installs SocketReaper on this host (as root) as its Debian package: builds it with
# scripts/package.sh and installs it with apt-get, whose maintainer scripts create the group and
# directories and enable and start socketreaper.service where systemd runs.
#
#   scripts/install.sh               build (publishing artifacts/aot if a source is newer) and install
#   scripts/install.sh --uninstall   apt-get remove: stop, detach, keep /etc/socketreaper/reaper.json
#   scripts/install.sh --purge       apt-get purge: also the config, the state and the pins
set -euo pipefail
cd "$(dirname "$0")/.."

mode=install
for arg in "$@"; do
  case "$arg" in
    --uninstall) mode=remove ;;
    --purge) mode=purge ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

say() { printf 'install: %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { say "must run as root." >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

if [ "$mode" != install ]; then
  apt-get "$mode" -y socketreaper
  exit 0
fi

# What this script installed before the package existed: a unit in /etc/systemd/system would
# shadow the packaged one, and /usr/local/bin comes first in PATH. The other files had the
# package's paths; dpkg takes them over.
if [ -f /etc/systemd/system/socketreaper.service ] && head -n1 /etc/systemd/system/socketreaper.service | grep -q '^# SocketReaper:'; then
  if [ -d /run/systemd/system ]; then systemctl disable --now socketreaper.service || true; fi
  rm -f /etc/systemd/system/socketreaper.service /usr/local/bin/socketreaper /etc/socketreaper/reaper.example.json
  say "removed the files of the earlier install.sh (/usr/local/bin/socketreaper, its unit in /etc/systemd/system)"
fi

deb=$(bash scripts/package.sh | tail -n1)
say "apt-get install ./$deb"
apt-get install -y --no-install-recommends "./$deb"
if [ -d /run/systemd/system ]; then
  systemctl --no-pager --lines=0 status socketreaper.service || true
else
  say "systemd is not PID 1 here, so nothing was started. Start the daemon by hand (as root): socketreaper run"
fi
