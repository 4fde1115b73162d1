#!/usr/bin/env bash
# Runs every test suite of SocketReaper on a Debian 12 host, as root. Does its own set-up
# (packages, bpffs) through bootstrap.sh, builds, runs the unit tests and the privileged
# integration tests against the real kernel, the kernel matrix and the package under systemd in
# qemu, and ends with one line: "N passed, N failed, N skipped". Before it, a table of each stage's
# wall time, and the ten slowest tests of each VM.
# Under CI=true a skipped test counts as a failure: nothing may skip for lack of privilege or a tool.
#
#   scripts/test.sh                 everything (what CI runs)
#   scripts/test.sh --quick         build and the host suites only (a few minutes)
#   scripts/test.sh --kernel 5.10   build and one kernel's VM (6.12, 6.1 or 5.10; may be repeated)
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
kernels=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --kernel) [ $# -ge 2 ] || { echo "test: --kernel needs 6.12, 6.1 or 5.10" >&2; exit 2; }
              case "$2" in 6.12|6.1|5.10) kernels+=("$2") ;; *) echo "test: unknown kernel '$2' (6.12, 6.1 or 5.10)" >&2; exit 2 ;; esac
              shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "test: unknown argument '$1' (expected --quick or --kernel 6.12|6.1|5.10)" >&2; exit 2 ;;
  esac
done
full=1
[ "$quick" -eq 1 ] || [ ${#kernels[@]} -gt 0 ] && full=0
[ ${#kernels[@]} -eq 0 ] && [ "$quick" -eq 0 ] && read -ra kernels <<<"${SOCKETREAPER_TEST_KERNELS:-6.12 6.1 5.10}"
[ "$quick" -eq 1 ] && kernels=()

results=artifacts/test-results
rm -rf "$results"
mkdir -p "$results"
stages=$results/stages.tsv
run_started=$SECONDS

# stage NAME SECONDS: one row of the timing table printed at the end.
stage() { printf '%s\t%s\n' "$1" "$2" >>"$stages"; }
# timed NAME COMMAND...: runs COMMAND and records its wall time as stage NAME.
timed() {
  local name=$1 started=$SECONDS rc
  shift
  "$@"
  rc=$?
  stage "$name" $((SECONDS - started))
  return $rc
}
mmss() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }

timed "bootstrap" bash scripts/bootstrap.sh --test || { echo "0 passed, 1 failed"; exit 1; }

echo "test: building"
if ! timed "build" dotnet build SocketReaper.sln -c Release -nologo -v quiet -clp:ErrorsOnly; then
  echo "0 passed, 1 failed"
  exit 1
fi

# Checks that are not xunit tests count one each.
extra_passed=0
extra_failed=0
crashed=0
failures=$results/failures.txt
: >"$failures"
# Says a failure now and keeps it for the list at the end.
failure() { echo "test: $*"; echo "test: $*" >>"$failures"; }
check() {
  local name=$1; shift
  echo "test: $name"
  if "$@"; then extra_passed=$((extra_passed + 1)); else failure "FAILED: $name"; extra_failed=$((extra_failed + 1)); fi
}

# The daemon the package ships, built once: the VMs run it (no JIT under emulation), the package
# and the systemd checks take it.
aot_publish() {
  local log=$results/aot-publish.log
  dotnet publish src/Reaper/Reaper.csproj -c Release -r linux-x64 -p:PublishAot=true -o artifacts/aot -nologo >"$log" 2>&1 \
    || { tail -20 "$log"; return 1; }
  if grep -E ': warning ' "$log"; then return 1; fi
  artifacts/aot/socketreaper doctor --json >"$results/aot-doctor.json" || { cat "$results/aot-doctor.json"; return 1; }
}
if [ ${#kernels[@]} -gt 0 ] || [ "$full" -eq 1 ]; then
  timed "NativeAOT publish" check "NativeAOT publish: zero warnings, and the native binary's doctor passes" aot_publish
fi

# Netkit tests need CONFIG_NETKIT; they run below in the 6.12 VM, whose kernel has it.
if [ "$quick" -eq 1 ] || [ "$full" -eq 1 ]; then
  for suite in tests/Reaper.Tests tests/LibBpf.Net.Tests tests/Reaper.IntegrationTests; do
    name=$(basename "$suite")
    echo "test: $name"
    timed "$name (host)" dotnet test "$suite" -c Release --no-build -nologo --filter "Category!=Netkit" \
      --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=minimal" \
      --results-directory "$results"
    [ -f "$results/$name.trx" ] || { failure "$name produced no results"; crashed=$((crashed + 1)); }
  done
fi

# slowest TRX: the ten slowest tests of a TRX file, "m:ss.s  name".
slowest() {
  grep -o '<UnitTestResult [^>]*' "$1" \
    | sed -n 's/.*testName="\([^"]*\)".*duration="\([0-9]*\):\([0-9]*\):\([0-9.]*\)".*/\2 \3 \4 \1/p' \
    | sed 's/&quot;/"/g; s/&amp;/\&/g; s/&lt;/</g; s/&gt;/>/g' \
    | awk '{s = $1 * 3600 + $2 * 60 + $3; $1 = $2 = $3 = ""; sub(/^ +/, ""); sub(/^SocketReaper\.IntegrationTests\./, ""); printf "%8.1f s  %s\n", s, $0}' \
    | sort -rn | head -n 10
}

# The kernel matrix: the tests marked Kernels=matrix (doctor, the sweep's safety, a D-Bus sweep, the
# datapath's attach/learn/restart/detach, endpoint gone, IP reused, service affinity) in Debian's
# 6.12, 6.1 and 5.10 kernels under qemu (scripts/vm/run.sh), results handed back through the VM's
# /tmp/out, one TRX file per kernel. The 6.12 boot also runs the Category=Netkit tests (netkit is
# built into that kernel only). The daemon is the NativeAOT one (a JIT start under emulation took
# seconds; compiling the tests ahead, ReadyToRun, gained nothing measurable). One test at a time:
# two daemons starting side by side under emulation on two cores missed their READY limit.
# SOCKETREAPER_TEST_KERNELS picks fewer kernels.
slow_report=$results/slowest.txt
for kernel in "${kernels[@]}"; do
  filter="Kernels=matrix"
  [ "$kernel" = 6.12 ] && filter="Kernels=matrix|Category=Netkit"
  # The sweep's safety set forced into sock_diag mode (and, on 5.10, into the oldest variant) is
  # what these kernels run anyway: the plain set is that run, and a copy would only repeat it.
  [ "$kernel" = 6.1 ] && filter="Kernels=matrix&FullyQualifiedName!~SockDiagSweepSafetyTests"
  [ "$kernel" = 5.10 ] && filter="Kernels=matrix&FullyQualifiedName!~SockDiagSweepSafetyTests&FullyQualifiedName!~OldKernelSweepSafetyTests"
  echo "test: Reaper.IntegrationTests in a VM, kernel $kernel ($filter)"
  vm_out=$(mktemp -d)
  vm_started=$SECONDS
  SOCKETREAPER_TEST_DAEMON=$PWD/artifacts/aot/socketreaper \
  bash scripts/vm/run.sh --kernel "$kernel" --timeout 1800 --out "$vm_out" -- \
    dotnet test tests/Reaper.IntegrationTests/bin/Release/net10.0/Reaper.IntegrationTests.dll --filter "$filter" \
      --logger "trx;LogFileName=vm.trx" --logger "console;verbosity=minimal" --results-directory /tmp/out/results \
      -- xUnit.ParallelizeTestCollections=false
  took=$((SECONDS - vm_started))
  echo "test: the $kernel VM took $(mmss $took)"
  # run.sh's own split: preparing the kernel and initramfs, booting, the command, powering off.
  if [ -f "$vm_out/.vm-timing" ]; then
    while read -r part seconds; do stage "VM $kernel: $part" "$seconds"; done <"$vm_out/.vm-timing"
  fi
  stage "VM $kernel (all)" "$took"
  if [ -f "$vm_out/results/vm.trx" ]; then
    cp "$vm_out/results/vm.trx" "$results/Reaper.Vm-$kernel.trx"
    { echo "the ten slowest tests in the $kernel VM:"; slowest "$results/Reaper.Vm-$kernel.trx"; } >>"$slow_report"
  else
    failure "the $kernel VM produced no results"
    crashed=$((crashed + 1))
  fi
  rm -rf "$vm_out"
done

# Tests delete their namespaces even when they fail; a test host killed outright cannot, so
# sweep up ours (the srt prefix is reserved for them) and say so.
leftover=$(ip netns list 2>/dev/null | awk '/^srt[0-9a-f]+/{print $1}')
if [ -n "$leftover" ]; then
  echo "test: removing namespaces left by a killed test host: $(echo $leftover | wc -w)"
  for n in $leftover; do ip netns del "$n" 2>/dev/null || true; done
fi

if [ "$full" -eq 1 ]; then
  timed "systemd unit check" check "systemd unit verifies, exposure within bounds; D-Bus policy well-formed" bash scripts/check-systemd.sh "$PWD/artifacts/aot/socketreaper"
  # The Debian package from the binary just published (30-60 s: packing, dpkg-shlibdeps, lintian).
  timed "Debian package check" check "Debian package: contents, conffiles, Depends, packaged unit verified, lintian without errors" bash scripts/check-package.sh
  timed "Prometheus rules check" check "Prometheus alert rules check and pass their promtool tests" bash scripts/check-prometheus.sh
  timed "fleet RBAC check" check "docs/fleet.md's etcd RBAC set-up grants and refuses what it says, on a throwaway etcd" bash scripts/check-fleet-rbac.sh

  # The package under a real systemd and system bus (scripts/vm/systemd.sh): one test per check of
  # scripts/vm/systemd-check.sh (install, READY, STATUS=, a sweep over the system bus, datapath and
  # hooks under the hardening, the bus policy as nobody, the journal, watchdog, SIGKILL, reboot,
  # remove, purge). About 2 min with the root cached, plus 1-3 min to make it (mmdebstrap).
  deb=$(ls -t artifacts/deb/socketreaper_*_amd64.deb 2>/dev/null | head -n1)
  if [ -n "$deb" ]; then
    echo "test: the package under systemd in a VM ($deb)"
    timed "systemd VM" bash scripts/vm/systemd.sh --deb "$deb" --results "$results/systemd-vm.txt"
    vm_ok=$(grep -c '^SR-CHECK ok ' "$results/systemd-vm.txt" 2>/dev/null)
    vm_failed=$(grep -c '^SR-CHECK FAIL ' "$results/systemd-vm.txt" 2>/dev/null)
    extra_passed=$((extra_passed + ${vm_ok:-0}))
    extra_failed=$((extra_failed + ${vm_failed:-0}))
    # Every check reports, and the run ends with its own summary; anything less is a crash.
    grep -q '^exit ' "$results/systemd-vm.txt" 2>/dev/null || { failure "the systemd VM did not finish its checks"; crashed=$((crashed + 1)); }
  else
    failure "no package to install in the systemd VM"
    crashed=$((crashed + 1))
  fi

  # Fleet mode end to end (scripts/vm/fleet-e2e.sh): two VMs of the same root on one virtual
  # network, the package in each, etcd in VM A; an endpoint deleted, an address moved, a host cut
  # off from etcd, a host killed. One test per check; the parts' wall times join the stage table.
  # About 3 min with the root cached.
  if [ -n "$deb" ]; then
    echo "test: fleet mode end to end, two VMs ($deb)"
    fleet_timing=$(mktemp)
    timed "fleet VMs (all)" bash scripts/vm/fleet-e2e.sh --deb "$deb" --results "$results/fleet-vm.txt" \
      --timing "$fleet_timing" --logs "$results/fleet-vm-logs"
    # "PART SECONDS" lines; a part's name has spaces.
    while read -r line; do stage "fleet VMs: ${line% *}" "${line##* }"; done <"$fleet_timing"
    rm -f "$fleet_timing"
    vm_ok=$(grep -c '^SR-CHECK ok ' "$results/fleet-vm.txt" 2>/dev/null)
    vm_failed=$(grep -c '^SR-CHECK FAIL ' "$results/fleet-vm.txt" 2>/dev/null)
    extra_passed=$((extra_passed + ${vm_ok:-0}))
    extra_failed=$((extra_failed + ${vm_failed:-0}))
    grep -q '^exit ' "$results/fleet-vm.txt" 2>/dev/null || { failure "the fleet VMs did not finish their checks"; crashed=$((crashed + 1)); }
  fi
fi

stage "whole run" $((SECONDS - run_started))
echo "test: wall time per stage"
while IFS=$'\t' read -r name seconds; do printf 'test:   %-44s %6s\n' "$name" "$(mmss "$seconds")"; done <"$stages"
[ -f "$slow_report" ] && sed 's/^/test: /' "$slow_report"

# Sum the counters of every TRX file: <Counters total= executed= passed= failed= ... notExecuted= ...>
read -r passed failed skipped < <(
  cat "$results"/*.trx 2>/dev/null | tr ' ' '\n' | awk -F'"' '
    /^passed=/ {p += $2} /^failed=/ {f += $2} /^notExecuted=/ {s += $2} /^error=/ {f += $2}
    END {print p+0, f+0, s+0}')
passed=$((passed + extra_passed))
failed=$((failed + crashed + extra_failed))
# Name every failed test again here, at the end, where a truncated log still shows it: the TRX
# file (which suite), the test and the first line of its message.
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  awk -v suite="$(basename "$trx" .trx)" '
    function plain(t) { gsub(/&quot;/, "\"", t); gsub(/&lt;/, "<", t); gsub(/&gt;/, ">", t); gsub(/&amp;/, "\\&", t); return t }
    /<UnitTestResult / && /outcome="Failed"/ {
      name = $0; sub(/.*testName="/, "", name); sub(/".*/, "", name); want = 1; next }
    want && /<Message>/ {
      msg = $0; sub(/.*<Message>/, "", msg); sub(/<\/Message>.*/, "", msg)
      printf "test: failed in %s: %s: %s\n", suite, plain(name), substr(plain(msg), 1, 300); want = 0 }' "$trx"
done
cat "$failures"
grep -h '^SR-CHECK FAIL ' "$results"/*.txt 2>/dev/null | sed 's/^/test: /' | head -20
echo "$passed passed, $failed failed, $skipped skipped"

if [ "$failed" -gt 0 ]; then exit 1; fi
if [ "${CI:-}" = true ] && [ "$skipped" -gt 0 ]; then
  echo "test: $skipped test(s) skipped under CI=true; nothing may skip in CI"
  exit 1
fi
exit 0
