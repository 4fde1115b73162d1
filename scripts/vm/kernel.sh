# Sourced by the VM scripts (run.sh, systemd.sh, fleet-e2e.sh): Debian's kernels, the initramfs
# that boots them, and the systemd root the package is installed into.
vm_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# vm_kernel KERNEL CACHE: whatever the suite's linux-image-amd64 points at, downloaded once and
# cached as CACHE/kernel-<release>, unpacked and depmod'ed (the packages ship no modules.dep).
# Sets kernel_dir, vmlinuz, release and moddir.
vm_kernel() {
  local kernel=$1 cache=$2 suite apt_opts=() version package work state mirror
  case "$kernel" in
    6.12) suite=bookworm-backports ;;
    6.1) suite=bookworm ;;
    5.10) suite=bullseye ;;
    *) die "unknown kernel '$kernel': use 6.12 (bookworm-backports), 6.1 (bookworm) or 5.10 (bullseye)" ;;
  esac
  kernel_dir=$(ls -d "$cache"/kernel-"$kernel".* 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$kernel_dir" ]; then
    apt_opts=()
    if [ "$suite" = bullseye ]; then
      . "$vm_dir/../lib/debian-mirror.sh"
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
}

# vm_initramfs INIT OUTPUT: busybox, the modules a 9p root needs (for the kernel vm_kernel chose),
# and INIT as /init, rebuilt when INIT or this file is newer than OUTPUT.
vm_initramfs() {
  local init_source=$1 initrd=$2 root file m
  # What the 9p root needs, in load order; each is a module, built in, or absent from that kernel
  # (netfs is 5.13+; virtio is built into 6.12 and a module on 6.1 and 5.10).
  local boot_modules="virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p"
  if [ ! -f "$initrd" ] || [ "$init_source" -nt "$initrd" ] || [ "$vm_dir/kernel.sh" -nt "$initrd" ]; then
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
}

# vm_qemu SECONDS EXTRA_CMDLINE [QEMU_ARGS...]: boots $vmlinuz with $initrd (vm_kernel,
# vm_initramfs) under qemu's software emulation on every core, 2 GiB, the serial console on
# stdout, no reboot (a reboot ends qemu), killed after SECONDS. EXTRA_CMDLINE goes after the kernel
# command line every boot has; QEMU_ARGS add the shares (-virtfs). The one qemu command line.
# vm_smp and vm_memory (MiB), when set, replace the cores and the 2 GiB (two VMs side by side).
vm_qemu() {
  local seconds=$1 extra=$2
  shift 2
  timeout --kill-after=10 "$seconds" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp "${vm_smp:-$(nproc)}" -m "${vm_memory:-2048}" \
    -nographic -no-reboot -serial mon:stdio -monitor none \
    -kernel "$vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init${extra:+ $extra}" \
    "$@" </dev/null
}

# vm_systemd_root CACHE: a minimal Debian 12 root with systemd as PID 1, dbus, the package's
# dependencies from bookworm-backports, and what the fleet's end-to-end test runs in it (etcd,
# nftables), made once with mmdebstrap from the mirror this machine's apt uses and cached as
# CACHE/systemd-root-<hash>.tar (about 1 minute, ~270 MB). Sets root_tar. The etcd-server package
# enables its etcd.service: disabled here, a test starts the etcd it wants.
vm_systemd_root() {
  local cache=$1 packages backports key mirror started
  packages="systemd,systemd-sysv,dbus,udev,kmod,python3,procps,iputils-ping,util-linux,etcd-server,etcd-client,nftables"
  backports="libbpf1 iproute2 bpftool"
  key=$(printf '%s|%s|2' "$packages" "$backports" | sha256sum | cut -c1-12)
  root_tar="$cache/systemd-root-$key.tar"
  [ -f "$root_tar" ] && return 0
  . "$vm_dir/../lib/debian-mirror.sh"
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || die "cannot find the Debian mirror for bookworm in /etc/apt"
  say "making the systemd root with mmdebstrap from $mirror (once; cached as $root_tar)"
  started=$SECONDS
  mmdebstrap --quiet --format=tar --variant=minbase --include="$packages" \
    --customize-hook="chroot \"\$1\" apt-get install -y -qq --no-install-recommends -t bookworm-backports $backports" \
    --customize-hook='rm -f "$1"/etc/systemd/system/multi-user.target.wants/etcd.service' \
    --customize-hook='chroot "$1" apt-get clean' \
    bookworm "$root_tar.partial" "deb $mirror bookworm main" "deb $mirror bookworm-backports main" \
    || die "mmdebstrap failed"
  mv "$root_tar.partial" "$root_tar"
  say "the root took $((SECONDS - started)) s"
}
