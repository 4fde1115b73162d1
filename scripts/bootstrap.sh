#!/usr/bin/env bash
# Prepares a Debian 12 host (as root) to build, run and test SocketReaper.
# Idempotent: a second run checks versions, installs nothing and returns in well under 5 s.
#
#   scripts/bootstrap.sh           what the daemon and the build need
#   scripts/bootstrap.sh --package also what building the Debian package needs (scripts/package.sh)
#   scripts/bootstrap.sh --test    also what the test suite needs (the package's checks included)
set -euo pipefail

want_test=0 want_package=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1; want_package=1 ;;
    --package) want_package=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "bootstrap: unknown argument '$arg' (expected --test or --package)" >&2; exit 2 ;;
  esac
done

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and mounts bpffs)."
[ -r /etc/os-release ] && . /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || say "warning: made for Debian 12 (bookworm); this is '${PRETTY_NAME:-unknown}'."

export DEBIAN_FRONTEND=noninteractive

# --- packages ---------------------------------------------------------------------------------
# name:minimum-version:suite. Versions are compared with dpkg; suite 'bpo' means bookworm-backports.
base_pkgs=(
  "clang:1:14:main"
  "libbpf1:1:1.3:bpo"
  "libbpf-dev:1:1.3:bpo"
  "bpftool:7.3:bpo"
  "iproute2:6.7:bpo"
  "libcap2-bin:0:main"
  "zlib1g-dev:0:main"
)
# dpkg-dev: dpkg-shlibdeps (the package's Depends); lintian checks the .deb. dpkg-deb builds it
# with --root-owner-group, so no fakeroot.
package_pkgs=(
  "dpkg-dev:0:main"
  "lintian:0:main"
)
test_pkgs=(
  "python3:0:main"
  "python3-dbus:0:main"
  "dbus:0:main"
  "systemd:0:main"
  "libglib2.0-bin:0:main"
  "libxml2-utils:0:main"
  "util-linux:0:main"
  "nftables:0:main"
  "iptables:0:main"
  "conntrack:0:main"
  "containernetworking-plugins:0:main"
  "mmdebstrap:0:main"
  "iperf3:0:main"
  "iputils-ping:0:main"
  "qemu-system-x86:0:main"
  "busybox-static:0:main"
  "cpio:0:main"
  "xz-utils:0:main"
  "kmod:0:main"
  # Real containers in the suite (PodmanTests): podman with its CNI bridge, and runc (this host's
  # hybrid cgroup layout is one crun refuses).
  "podman:0:main"
  "runc:0:main"
  # Fleet mode's store (FleetTests start their own members on loopback; nothing runs it otherwise).
  "etcd-server:0:main"
  "etcd-client:0:main"
  # check-fleet-rbac.sh and EtcdTlsTests (EtcdPki) make their CA and certificates with it.
  "openssl:0:main"
)

installed_version() { dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null | awk '$1=="ii"{print $2}' || true; }

missing_main=()
missing_bpo=()
check_pkgs() {
  local spec name min suite have
  for spec in "$@"; do
    name=${spec%%:*}; suite=${spec##*:}; min=${spec#*:}; min=${min%:*}
    have=$(installed_version "$name")
    if [ -n "$have" ] && { [ "$min" = 0 ] || dpkg --compare-versions "$have" ge "$min"; }; then
      continue
    fi
    if [ "$suite" = bpo ]; then missing_bpo+=("$name"); else missing_main+=("$name"); fi
  done
}
check_pkgs "${base_pkgs[@]}"
[ "$want_package" -eq 1 ] && check_pkgs "${package_pkgs[@]}"
[ "$want_test" -eq 1 ] && check_pkgs "${test_pkgs[@]}"

# bookworm-backports, on the mirror this machine already uses for bookworm.
. "$(dirname "$0")/lib/debian-mirror.sh"
ensure_backports() {
  local list=/etc/apt/sources.list.d/socketreaper-backports.sources
  if grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 1
  fi
  local uri
  uri=$(debian_mirror)
  [ -n "$uri" ] || die "cannot find the Debian mirror for bookworm in /etc/apt; add bookworm-backports by hand."
  say "adding bookworm-backports from $uri ($list)"
  cat >"$list" <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  return 0
}

if [ ${#missing_main[@]} -gt 0 ] || [ ${#missing_bpo[@]} -gt 0 ]; then
  if [ ${#missing_bpo[@]} -gt 0 ]; then ensure_backports || true; fi
  say "apt-get update"
  apt-get update -qq
  if [ ${#missing_main[@]} -gt 0 ]; then
    say "installing ${missing_main[*]}"
    apt-get install -y -qq --no-install-recommends "${missing_main[@]}" >/dev/null
  fi
  if [ ${#missing_bpo[@]} -gt 0 ]; then
    say "installing from bookworm-backports: ${missing_bpo[*]}"
    apt-get install -y -qq --no-install-recommends -t bookworm-backports "${missing_bpo[@]}" >/dev/null
  fi
else
  say "packages: all present"
fi

# --- .NET SDK ---------------------------------------------------------------------------------
if ! command -v dotnet >/dev/null 2>&1; then
  die "the .NET 10 SDK is not installed; install it (see https://learn.microsoft.com/dotnet/core/install/linux-debian) and run again."
fi
sdk_major=$(dotnet --version 2>/dev/null | cut -d. -f1)
[ "${sdk_major:-0}" -ge 10 ] || die "the .NET SDK is $(dotnet --version); SocketReaper needs 10 or newer."

# --- bpffs ------------------------------------------------------------------------------------
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" = bpf_fs ]; then
  :
else
  say "mounting bpffs on /sys/fs/bpf"
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
fi

say "ready (libbpf $(installed_version libbpf1), bpftool $(installed_version bpftool), clang $(clang -dumpversion), dotnet $(dotnet --version))"
