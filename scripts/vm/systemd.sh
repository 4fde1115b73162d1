#!/usr/bin/env bash
# Proves the Debian package under a real systemd and system bus: boots a minimal Debian 12 root
# (systemd as PID 1, dbus, from mmdebstrap; cached) under qemu with bookworm-backports' kernel,
# installs the .deb there with dpkg and runs scripts/vm/systemd-check.sh as a oneshot unit: the
# unit's start, its STATUS=, a sweep over the system bus under the unit's hardening, the datapath
# and the socket hooks, the shipped bus policy as nobody, the journal, the watchdog, SIGKILL, a
# reboot, remove and purge. Prints one "SR-CHECK ok|FAIL <name>" line per check and exits with
# the number of failures (124 when the VM reported nothing in time).
#
#   scripts/vm/systemd.sh --deb FILE [--timeout SECONDS] [--results FILE]
#
# The root is cached as $SR_VM_CACHE/systemd-root-<hash>.tar (default artifacts/vm; about 1 minute
# to make, ~250 MB); each run unpacks a fresh copy under $SR_VM_CACHE/systemd-run.
set -euo pipefail
cd "$(dirname "$0")/../.."

deb="" timeout=900 results=""
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    *) echo "vm: unknown argument '$1' (usage: scripts/vm/systemd.sh --deb FILE [--timeout S] [--results FILE])" >&2; exit 2 ;;
  esac
done

say() { printf 'vm: %s\n' "$*" >&2; }
die() { printf 'vm: %s\n' "$*" >&2; exit 1; }

[ -n "$deb" ] || die "no package given (--deb artifacts/deb/socketreaper_*.deb; scripts/package.sh builds it)"
[ -f "$deb" ] || die "$deb does not exist; scripts/package.sh builds it"
[ "$(id -u)" -eq 0 ] || die "must run as root (the guest's root is unpacked with its owners)"
for tool in qemu-system-x86_64 busybox cpio xz apt-get dpkg-deb depmod mmdebstrap; do
  command -v "$tool" >/dev/null || die "'$tool' is missing; run scripts/bootstrap.sh --test"
done

cache=$(realpath -m "${SR_VM_CACHE:-artifacts/vm}")
mkdir -p "$cache"
. "$(dirname "$0")/kernel.sh"
vm_kernel 6.12 "$cache"
initrd="$cache/initramfs-systemd-$release.cpio.gz"
vm_initramfs "$(dirname "$0")/init-systemd" "$initrd"

# --- the root: Debian 12 with systemd, dbus, and the package's dependencies from backports --------
vm_systemd_root "$cache"

run="$cache/systemd-run"
rm -rf "$run"
mkdir -p "$run/root"
tar -xf "$root_tar" -C "$run/root"
r="$run/root"
install -m 0644 "$deb" "$r/root/socketreaper.deb"
install -m 0755 scripts/vm/systemd-check.sh "$r/usr/local/sbin/sr-vm-check"
cat >"$r/etc/systemd/system/sr-vm-check.service" <<'EOF'
[Unit]
Description=SocketReaper package checks
After=multi-user.target dbus.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/sr-vm-check
TimeoutStartSec=infinity
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/sr-vm-check.service "$r/etc/systemd/system/multi-user.target.wants/sr-vm-check.service"
ln -sf /lib/systemd/system/multi-user.target "$r/etc/systemd/system/default.target"
# The console is the report's: no getty on it.
ln -sf /dev/null "$r/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$r/etc/systemd/system/getty@tty1.service"
echo srvm >"$r/etc/hostname"
: >"$r/etc/fstab"

# --- the boots: the first ends with a reboot (qemu exits, -no-reboot), the second with poweroff --
log="$run/console"
: >"$log"
deadline=$((SECONDS + timeout))
for boot in 1 2; do
  left=$((deadline - SECONDS))
  [ "$left" -gt 0 ] || break
  say "boot $boot of the systemd root ($release, qemu tcg, ${left}s left)"
  set +e
  vm_qemu "$left" "systemd.show_status=false" \
    -virtfs "local,path=$r,mount_tag=host,security_model=passthrough,multidevs=remap" \
    -virtfs "local,path=$kernel_dir/lib/modules,mount_tag=modules,security_model=none,readonly=on,multidevs=remap" \
    2>&1 | tee -a "$log" | grep -a -E '^(SR-CHECK|SR-VM)' >&2
  set -e
  [ "$(cat "$r/root/sr-phase" 2>/dev/null)" = reboot ] || break
done

[ -n "$results" ] && cp "$r/root/sr-results" "$results" 2>/dev/null
code=$(grep -ao 'SR-VM-EXIT [0-9]*' "$log" | tail -n1 | awk '{print $2}' || true)
if [ -z "$code" ]; then
  say "the guest did not report an exit code (boot failure or timeout); the console log is $log"
  tail -n 40 "$log" >&2
  exit 124
fi
exit "$code"
