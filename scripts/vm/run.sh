#!/usr/bin/env bash
# Boots Debian's bookworm-backports 6.12 kernel (it has CONFIG_NETKIT=y, the host kernel may not)
# under qemu with software emulation, shares this host's root file system read-only, and runs a
# shell command inside it, as root, in the same working directory. Prints the guest's output and
# exits with the command's exit code (124 when the VM did not report one in time).
#
#   scripts/vm/run.sh [--timeout SECONDS] [--out DIR] -- COMMAND...
#
# In the guest: the host's / read-only, and fresh proc, sys, dev, bpffs, cgroup2 and tmpfs /run
# and /tmp. /tmp/out is DIR on the host (writable; default a new temporary directory, removed
# afterwards unless --out was given), so results can be handed back. The kernel package and the initramfs are
# cached under $SR_VM_CACHE (default artifacts/vm); bootstrap.sh --test installs what this needs.
set -euo pipefail
cd "$(dirname "$0")/../.."

timeout=600
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "vm: unknown argument '$1' (usage: scripts/vm/run.sh [--timeout S] [--out DIR] -- COMMAND...)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "vm: no command given" >&2; exit 2; }

say() { printf 'vm: %s\n' "$*" >&2; }
die() { printf 'vm: %s\n' "$*" >&2; exit 1; }

for tool in qemu-system-x86_64 busybox cpio xz apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; run scripts/bootstrap.sh --test"
done

# The guest mounts fresh tmpfs on /tmp and /run: a checkout there is invisible to it.
case "$PWD/" in
  /tmp/*|/run/*) die "the checkout is under /$(cut -d/ -f2 <<<"$PWD"), which the guest replaces with an empty tmpfs; clone it elsewhere (such as /root or /work)" ;;
esac

cache=$(realpath -m "${SR_VM_CACHE:-artifacts/vm}")
mkdir -p "$cache"

# --- the kernel: whatever bookworm-backports' linux-image-amd64 points at -----------------------
kernel_dir=$(ls -d "$cache"/kernel-* 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$kernel_dir" ]; then
  bpo=$(apt-cache madison linux-image-amd64 | awk -F'|' '$3 ~ /bookworm-backports/ {gsub(/ /, "", $2); print $2; exit}')
  [ -n "$bpo" ] || die "bookworm-backports has no linux-image-amd64 in the apt lists; run scripts/bootstrap.sh --test"
  package=$(apt-cache depends "linux-image-amd64=$bpo" | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$package" ] || die "cannot tell which kernel linux-image-amd64 $bpo depends on"
  say "downloading $package (bookworm-backports)"
  work=$(mktemp -d)
  (cd "$work" && apt-get download -q "$package" >/dev/null 2>&1) || die "apt-get download $package failed"
  kernel_dir="$cache/kernel-${package#linux-image-}"
  mkdir -p "$kernel_dir.partial"
  dpkg-deb -x "$work"/*.deb "$kernel_dir.partial"
  rm -rf "$work"
  mv "$kernel_dir.partial" "$kernel_dir"
fi
vmlinuz=$(ls "$kernel_dir"/boot/vmlinuz-* | head -n1)
release=${vmlinuz##*/vmlinuz-}
modules="$kernel_dir/lib/modules/$release/kernel"

# --- the initramfs: busybox, the 9p modules, and an init that mounts the host and chroots ------
initrd="$cache/initramfs-$release.cpio.gz"
init_source="$(dirname "$0")/init"
if [ ! -f "$initrd" ] || [ "$init_source" -nt "$initrd" ]; then
  say "building the initramfs for $release"
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,dev,proc,sys,host,modules}
  cp "$(command -v busybox)" "$root/bin/busybox"
  for m in fs/netfs/netfs net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p; do
    [ -f "$modules/$m.ko.xz" ] || die "the kernel package lacks $m.ko.xz"
    xz -dc "$modules/$m.ko.xz" >"$root/modules/${m##*/}.ko"
  done
  install -m 0755 "$init_source" "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.partial"
  rm -rf "$root"
  mv "$initrd.partial" "$initrd"
fi

# --- the run ---------------------------------------------------------------------------------
keep_out=1
if [ -z "$out" ]; then out=$(mktemp -d); keep_out=0; fi
mkdir -p "$out"
out=$(realpath "$out")
cleanup() { [ "$keep_out" -eq 1 ] || rm -rf "$out"; }
trap cleanup EXIT

# The guest runs this script from /tmp/out; the command's words are quoted for the shell.
{
  echo "cd $(printf '%q' "$PWD") || exit 125"
  echo "export HOME=/tmp DOTNET_CLI_HOME=/tmp DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  [ -n "${CI:-}" ] && echo "export CI=$(printf '%q' "$CI")"
  # Tests stretch their waits for the daemon: under TCG everything runs about ten times slower.
  echo "export SOCKETREAPER_TEST_EMULATED=1"
  printf '%q ' "$@"; echo
} >"$out/.vm-command"

log="$out/.vm-console"
say "booting $release under qemu (tcg, timeout ${timeout}s)"
set +e
timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -smp "$(nproc)" -m 2048 \
  -nographic -no-reboot -serial mon:stdio -monitor none \
  -kernel "$vmlinuz" -initrd "$initrd" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$out,mount_tag=out,security_model=none,multidevs=remap" \
  </dev/null 2>&1 | tee "$log" | grep -av '^SR-VM-'
set -e

code=$(grep -ao 'SR-VM-EXIT [0-9]*' "$log" | tail -n1 | awk '{print $2}')
if [ -z "$code" ]; then
  say "the guest did not report an exit code (boot failure or timeout); console log above"
  exit 124
fi
exit "$code"
