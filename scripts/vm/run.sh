#!/usr/bin/env bash
# Boots one of Debian's kernels under qemu with software emulation, shares this host's root file
# system read-only, and runs a shell command inside it, as root, in the same working directory.
# Prints the guest's output and exits with the command's exit code (124 when the VM did not
# report one in time).
#
#   scripts/vm/run.sh [--kernel 6.12|6.1|5.10] [--timeout SECONDS] [--out DIR] -- COMMAND...
#
# Kernels (the ones hosts run; all from the Debian archive, on the mirror this machine uses):
#   6.12  bookworm-backports' linux-image-amd64 (the default: CONFIG_NETKIT=y, TCX, the kfuncs)
#   6.1   bookworm's linux-image-amd64 (Debian 12's own kernel: no TCX, no bpf_sock_destroy)
#   5.10  bullseye's linux-image-amd64 (Debian 11's: also no bpf_loop, no SO_NETNS_COOKIE); bullseye
#         is read through a private apt state under the cache, the host's apt sources stay as they are
# In the guest: the host's / read-only; the kernel's own modules under /tmp/modules, depmod'ed
# (`modprobe -d /tmp/modules` works, and so does the kernel's module autoload); fresh proc, sys,
# dev, bpffs, cgroup2 and tmpfs /run and /tmp. /tmp/out is DIR on the host (writable; default a
# new temporary directory, removed afterwards unless --out was given), so results can be handed
# back. Kernel packages and initramfs images are cached under $SR_VM_CACHE (default artifacts/vm);
# bootstrap.sh --test installs what this needs.
set -euo pipefail
cd "$(dirname "$0")/../.."

timeout=600
out=""
kernel=6.12
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) kernel=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "vm: unknown argument '$1' (usage: scripts/vm/run.sh [--kernel 6.12|6.1|5.10] [--timeout S] [--out DIR] -- COMMAND...)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "vm: no command given" >&2; exit 2; }

say() { printf 'vm: %s\n' "$*" >&2; }
die() { printf 'vm: %s\n' "$*" >&2; exit 1; }

case "$kernel" in
  6.12) suite=bookworm-backports ;;
  6.1) suite=bookworm ;;
  5.10) suite=bullseye ;;
  *) die "unknown kernel '$kernel': use 6.12 (bookworm-backports), 6.1 (bookworm) or 5.10 (bullseye)" ;;
esac

for tool in qemu-system-x86_64 busybox cpio xz apt-get dpkg-deb depmod; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; run scripts/bootstrap.sh --test"
done

# The guest mounts fresh tmpfs on /tmp and /run: a checkout there is invisible to it.
case "$PWD/" in
  /tmp/*|/run/*) die "the checkout is under /$(cut -d/ -f2 <<<"$PWD"), which the guest replaces with an empty tmpfs; clone it elsewhere (such as /root or /work)" ;;
esac

cache=$(realpath -m "${SR_VM_CACHE:-artifacts/vm}")
mkdir -p "$cache"

# --- the kernel: whatever the suite's linux-image-amd64 points at ----------------------------
# Cached as kernel-<release>, unpacked and depmod'ed (the packages ship no modules.dep).
kernel_dir=$(ls -d "$cache"/kernel-"$kernel".* 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$kernel_dir" ]; then
  apt_opts=()
  if [ "$suite" = bullseye ]; then
    . "$(dirname "$0")/../lib/debian-mirror.sh"
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || die "cannot find the Debian mirror for bookworm in /etc/apt, to read bullseye from"
    state="$cache/apt-bullseye"
    mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main" >"$state/sources.list"
    apt_opts=(-o "Dir::Etc::sourcelist=$state/sources.list" -o Dir::Etc::sourceparts=- \
              -o "Dir::State::lists=$state/lists" -o "Dir::Cache=$state/cache")
    say "reading bullseye's package lists from $mirror (private apt state in $state)"
    apt-get "${apt_opts[@]}" update -qq >/dev/null || die "apt-get update of bullseye failed"
  fi
  version=$(apt-cache "${apt_opts[@]}" madison linux-image-amd64 \
    | awk -F'|' -v s=" $suite/main " 'index($3, s) {gsub(/ /, "", $2); print $2; exit}')
  [ -n "$version" ] || die "$suite has no linux-image-amd64 in the apt lists; run scripts/bootstrap.sh --test"
  package=$(apt-cache "${apt_opts[@]}" depends "linux-image-amd64=$version" | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$package" ] || die "cannot tell which kernel linux-image-amd64 $version depends on"
  say "downloading $package ($suite)"
  work=$(mktemp -d)
  (cd "$work" && apt-get "${apt_opts[@]}" download -q "$package" >/dev/null 2>&1) || die "apt-get download $package failed"
  kernel_dir="$cache/kernel-${package#linux-image-}"
  rm -rf "$kernel_dir.partial"
  mkdir -p "$kernel_dir.partial"
  dpkg-deb -x "$work"/*.deb "$kernel_dir.partial"
  rm -rf "$work"
  release=$(basename "$(ls "$kernel_dir.partial"/boot/vmlinuz-* | head -n1)"); release=${release#vmlinuz-}
  depmod -b "$kernel_dir.partial" "$release" || die "depmod of $release failed"
  mv "$kernel_dir.partial" "$kernel_dir"
fi
vmlinuz=$(ls "$kernel_dir"/boot/vmlinuz-* | head -n1)
release=${vmlinuz##*/vmlinuz-}
moddir="$kernel_dir/lib/modules/$release"
# A cache from before modules were handed to the guest has no modules.dep yet.
[ -f "$moddir/modules.dep" ] || depmod -b "$kernel_dir" "$release" || die "depmod of $release failed"

# --- the initramfs: busybox, the 9p modules, and an init that mounts the host and chroots ------
# What the 9p root needs, in load order; each is a module, built in, or absent from that kernel
# (netfs is 5.13+; virtio is built into 6.12 and a module on 6.1 and 5.10).
boot_modules="virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p"
initrd="$cache/initramfs-$release.cpio.gz"
init_source="$(dirname "$0")/init"
if [ ! -f "$initrd" ] || [ "$init_source" -nt "$initrd" ] || [ "$0" -nt "$initrd" ]; then
  say "building the initramfs for $release"
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,dev,proc,sys,host,modules}
  cp "$(command -v busybox)" "$root/bin/busybox"
  for m in $boot_modules; do
    file=$(find "$moddir/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" \) -print -quit)
    if [ -n "$file" ]; then
      case "$file" in
        *.xz) xz -dc "$file" >"$root/modules/$m.ko" ;;
        *) cp "$file" "$root/modules/$m.ko" ;;
      esac
      echo "$m" >>"$root/modules/order"
    fi
  done
  grep -qE '/9p\.ko$' "$moddir/modules.builtin" || [ -f "$root/modules/9p.ko" ] || die "the kernel $release has no 9p file system"
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
  # What the tests use that these kernels build as modules; the kernel would load most on demand,
  # but not all of them (sock_diag's per-protocol handlers, for one).
  echo "for m in veth dummy sch_ingress cls_bpf inet_diag tcp_diag udp_diag nf_conntrack nf_conntrack_netlink nf_nat nf_tables; do modprobe -d /tmp/modules -q \$m 2>/dev/null || true; done"
  # A host has an address of its own, which the kernel picks as the source towards routes that
  # carry none (the tests' routed endpoints, as a routing CNI makes them); the guest has only lo.
  echo "ip link add srvm0 type dummy && ip addr add 192.0.2.1/32 dev srvm0 && ip link set srvm0 up"
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
  -virtfs "local,path=$kernel_dir/lib/modules,mount_tag=modules,security_model=none,readonly=on,multidevs=remap" \
  </dev/null 2>&1 | tee "$log" | grep -av '^SR-VM-'
set -e

code=$(grep -ao 'SR-VM-EXIT [0-9]*' "$log" | tail -n1 | awk '{print $2}' || true)
if [ -z "$code" ]; then
  say "the guest did not report an exit code (boot failure or timeout); console log above"
  exit 124
fi
exit "$code"
