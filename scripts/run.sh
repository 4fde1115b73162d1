#!/usr/bin/env bash
# Runs SocketReaper's main job on this host, as root, with its built-in defaults: the daemon in
# the foreground (`socketreaper run`; Ctrl-C stops it). Does its own set-up (packages, bpffs)
# through bootstrap.sh and builds first. Extra arguments replace the default command, e.g.
# `scripts/run.sh doctor --json`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
dotnet build src/Reaper/Reaper.csproj -c Release -nologo -v quiet -clp:ErrorsOnly
bin=src/Reaper/bin/Release/net10.0/socketreaper
if [ $# -eq 0 ]; then set -- run; fi
exec "$bin" "$@"
