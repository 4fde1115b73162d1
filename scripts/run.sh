#!/usr/bin/env bash
# Runs SocketReaper's main job on this host, as root, with its built-in defaults: the daemon in
# the foreground (`socketreaper run`; Ctrl-C stops it). Does its own set-up (packages, bpffs)
# through bootstrap.sh, then runs the NativeAOT binary (artifacts/aot/socketreaper), the one the
# package ships: it is READY in a fraction of the JIT build's time and uses a third of its memory
# (docs/benchmarks.md). The first run publishes it (a minute or two); later runs reuse it until a
# source changes. Extra arguments replace the default command, e.g. `scripts/run.sh doctor --json`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bin=artifacts/aot/socketreaper
# Publish again when anything the binary is built from is newer than it.
if [ ! -x "$bin" ] || [ -n "$(find src bpf build dbus Directory.Build.props Directory.Packages.props global.json \
     -newer "$bin" -type f -not -path '*/bin/*' -not -path '*/obj/*' -print -quit)" ]; then
  echo "run: publishing the native binary (artifacts/aot)" >&2
  log=$(mktemp)
  if ! dotnet publish src/Reaper/Reaper.csproj -c Release -r linux-x64 -p:PublishAot=true -o artifacts/aot -nologo -v quiet >"$log" 2>&1; then
    tail -20 "$log" >&2; rm -f "$log"; exit 1
  fi
  rm -f "$log"
  touch "$bin"
fi
if [ $# -eq 0 ]; then set -- run; fi
exec "$bin" "$@"
