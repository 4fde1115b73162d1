#!/usr/bin/env bash
# Fuzzing on demand; not part of the test suite.
#
#   scripts/fuzz.sh [--target T] [SECONDS]   AFL++ on one target for SECONDS (default 300)
#   scripts/fuzz.sh --property [N]           the CsCheck property tests with N iterations each (default 200000)
#   scripts/fuzz.sh [--target T] --replay DIR run every file of DIR through the harness once, without AFL
#
# Targets (tests/Fuzz/Program.cs): filter (the sweep filter; the default), config (the config
# file), services (the state directory's services.json), history (a reap history line), dbus
# (every method of the daemon's D-Bus object, over an in-memory bus to a fake daemon).
# AFL mode installs afl++ (Debian package) and the SharpFuzz instrumenter (a .NET tool, into
# artifacts/fuzz/tools) when they are missing, publishes tests/Fuzz, instruments the daemon's
# assembly, and runs afl-fuzz from the seeds in tests/Fuzz/corpus/TARGET with findings in
# artifacts/fuzz/findings-TARGET. A crash is an input for which the parser threw anything but the
# one error it documents, or produced a message that is not one short line, or a value that does
# not read back as itself once written; for dbus, a call left unanswered, answered with a reply of
# the wrong signature, or with an error the method does not name or that is not one sentence.
# Exit status: 0 no crash, 1 crashes (listed with a replay command), 2 setup failed.
set -uo pipefail
cd "$(dirname "$0")/.."

work=artifacts/fuzz
harness=tests/Fuzz
target=filter
if [ "${1:-}" = --target ]; then
  target=${2:-}
  shift 2 || { echo "fuzz: --target needs a name"; exit 2; }
fi
case "$target" in
  filter|config|services|history|dbus) ;;
  fleet) ;; # docs/fleet.md's etcd keys and values (one input: a key, each kind of value, and KEY\nVALUE)
  *) echo "fuzz: unknown target '$target' (filter, config, services, history, dbus or fleet)"; exit 2 ;;
esac
export SOCKETREAPER_FUZZ_TARGET=$target

case "${1:-}" in
  --property)
    export SOCKETREAPER_FUZZ_ITERATIONS=${2:-200000}
    exec dotnet test tests/Reaper.Tests -c Release --filter "FullyQualifiedName~HostileInputTests"
    ;;
  --replay)
    [ -d "${2:-}" ] || { echo "fuzz: --replay needs a directory"; exit 2; }
    dotnet build "$harness" -c Release -o "$work/out-$target" >/dev/null || { echo "fuzz: building $harness failed"; exit 2; }
    exec dotnet "$work/out-$target/ReaperFuzz.dll" --replay "$2"
    ;;
esac

seconds=${1:-300}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz: SECONDS must be a whole number, not '$seconds'"; exit 2; }

if ! command -v afl-fuzz >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y afl++ >/dev/null || { echo "fuzz: installing afl++ failed"; exit 2; }
fi
if [ ! -x "$work/tools/sharpfuzz" ]; then
  dotnet tool install --tool-path "$work/tools" SharpFuzz.CommandLine --version 2.3.0 >/dev/null \
    || { echo "fuzz: installing the SharpFuzz.CommandLine tool failed"; exit 2; }
fi

rm -rf "$work/out-$target"
dotnet publish "$harness" -c Release -o "$work/out-$target" >/dev/null || { echo "fuzz: publishing $harness failed"; exit 2; }
# Only the daemon's own assembly is instrumented: coverage of the parser, not of the runtime.
"$work/tools/sharpfuzz" "$work/out-$target/socketreaper.dll" >/dev/null || { echo "fuzz: instrumenting socketreaper.dll failed"; exit 2; }

findings=$work/findings-$target
rm -rf "$findings"
# The harness is managed code behind SharpFuzz's fork server: no native instrumentation to check,
# and the .NET runtime needs more than AFL's default memory limit.
AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  afl-fuzz -i "$harness/corpus/$target" -o "$findings" -t 5000 -m none -V "$seconds" -- "$work/out-$target/ReaperFuzz" > "$work/afl-$target.log" 2>&1
status=$?

stats=$findings/default/fuzzer_stats
if [ ! -f "$stats" ]; then
  echo "fuzz: afl-fuzz did not start (exit $status); the end of $work/afl-$target.log:"
  tail -n 15 "$work/afl-$target.log"
  exit 2
fi

execs=$(awk -F': *' '$1 ~ /^execs_done/ {print $2}' "$stats")
paths=$(awk -F': *' '$1 ~ /^corpus_count/ {print $2}' "$stats")
crashes=$(find "$findings/default/crashes" -type f ! -name README.txt 2>/dev/null | wc -l)
if [ "$crashes" -gt 0 ]; then
  echo "fuzz: $target: $crashes crashing inputs in $findings/default/crashes after $execs executions; replay: scripts/fuzz.sh --target $target --replay $findings/default/crashes"
  exit 1
fi
echo "fuzz: $target: no crash in $seconds s ($execs executions, $paths inputs in the corpus)"
