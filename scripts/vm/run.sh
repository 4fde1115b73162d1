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


for tool in qemu-system-x86_64 busybox cpio xz apt-get dpkg-deb depmod; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; run scripts/bootstrap.sh --test"
done

# The guest mounts fresh tmpfs on /tmp and /run, which would hide a checkout there: such a checkout
# is shared on its own and mounted over its path in the guest's tmpfs.
checkout_share=()
case "$PWD/" in
  /tmp/*|/run/*) checkout_share=(-virtfs "local,path=$PWD,mount_tag=checkout,security_model=none,readonly=on,multidevs=remap") ;;
esac

started=$SECONDS
cache=$(realpath -m "${SR_VM_CACHE:-artifacts/vm}")
mkdir -p "$cache"

. "$(dirname "$0")/kernel.sh"
vm_kernel "$kernel" "$cache"
vm_initramfs "$(dirname "$0")/init" "$cache/initramfs-$release.cpio.gz"
initrd="$cache/initramfs-$release.cpio.gz"

# --- the run ---------------------------------------------------------------------------------
keep_out=1
if [ -z "$out" ]; then out=$(mktemp -d); keep_out=0; fi
mkdir -p "$out"
out=$(realpath "$out")
cleanup() { [ "$keep_out" -eq 1 ] || rm -rf "$out"; }
trap cleanup EXIT

# The guest runs this script from /tmp/out; the command's words are quoted for the shell.
{
  if [ ${#checkout_share[@]} -gt 0 ]; then
    echo "mkdir -p $(printf '%q' "$PWD") && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro,cache=loose checkout $(printf '%q' "$PWD") || exit 125"
  fi
  echo "cd $(printf '%q' "$PWD") || exit 125"
  echo "export HOME=/tmp DOTNET_CLI_HOME=/tmp DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  [ -n "${CI:-}" ] && echo "export CI=$(printf '%q' "$CI")"
  [ -n "${SOCKETREAPER_TEST_DAEMON:-}" ] && echo "export SOCKETREAPER_TEST_DAEMON=$(printf '%q' "$SOCKETREAPER_TEST_DAEMON")"
  # Tests stretch their waits for the daemon: under TCG everything runs about ten times slower.
  echo "export SOCKETREAPER_TEST_EMULATED=1"
  # What the tests use that these kernels build as modules; the kernel would load most on demand,
  # but not all of them (sock_diag's per-protocol handlers, for one).
  echo "for m in veth dummy sch_ingress cls_bpf inet_diag tcp_diag udp_diag nf_conntrack nf_conntrack_netlink nf_nat nf_tables; do modprobe -d /tmp/modules -q \$m 2>/dev/null || true; done"
  # A host has an address of its own, which the kernel picks as the source towards routes that
  # carry none (the tests' routed endpoints, as a routing CNI makes them); the guest has only lo.
  echo "ip link add srvm0 type dummy && ip addr add 192.0.2.1/32 dev srvm0 && ip link set srvm0 up"
  # The guest's uptime when the command starts and ends: boot and command apart in .vm-timing.
  echo "echo SR-VM-START \$(cut -d' ' -f1 /proc/uptime)"
  printf '%q ' "$@"; echo
  echo "code=\$?; echo SR-VM-END \$(cut -d' ' -f1 /proc/uptime); exit \$code"
} >"$out/.vm-command"

log="$out/.vm-console"
prepared=$SECONDS
say "booting $release under qemu (tcg, timeout ${timeout}s)"
set +e
vm_qemu "$timeout" "" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$out,mount_tag=out,security_model=none,multidevs=remap" \
  -virtfs "local,path=$kernel_dir/lib/modules,mount_tag=modules,security_model=none,readonly=on,multidevs=remap" \
  "${checkout_share[@]}" \
  2>&1 | tee "$log" | grep -av '^SR-VM-'
set -e

# Seconds spent getting the kernel and initramfs, booting, in the command, and in qemu otherwise
# (its firmware, powering off); whole seconds, the guest's clock runs with the host's.
vm_start=$(grep -ao 'SR-VM-START [0-9.]*' "$log" | tail -n1 | awk '{print int($2)}' || true)
vm_end=$(grep -ao 'SR-VM-END [0-9.]*' "$log" | tail -n1 | awk '{print int($2)}' || true)
if [ -n "$vm_start" ] && [ -n "$vm_end" ]; then
  printf 'kernel+initramfs %d\nboot %d\ncommand %d\nqemu+poweroff %d\n' $((prepared - started)) "$vm_start" $((vm_end - vm_start)) \
    $((SECONDS - prepared - vm_end)) >"$out/.vm-timing"
fi

code=$(grep -ao 'SR-VM-EXIT [0-9]*' "$log" | tail -n1 | awk '{print $2}' || true)
if [ -z "$code" ]; then
  say "the guest did not report an exit code (boot failure or timeout); console log above"
  exit 124
fi
exit "$code"
