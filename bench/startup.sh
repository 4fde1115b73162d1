#!/usr/bin/env bash
# Start-up benchmark of what `scripts/run.sh` starts (not a CI test). As root.
#
#   bench/startup.sh [RUNS=10]
#
# Starts the daemon RUNS times each as the NativeAOT binary (artifacts/aot, what scripts/run.sh
# runs) and as the JIT build (src/Reaper/bin/Release), alternating, on its built-in defaults except
# where they would touch what is not ours: a private D-Bus daemon stands in for the system bus, the
# pin root and the device pattern carry a random tag. Measures the time from exec to READY=1 on
# NOTIFY_SOCKET (as systemd sees it) and VmRSS 3 s after READY (idle). Prints medians per build.
# Targets for what scripts/run.sh starts: READY <= 300 ms, idle VmRSS <= 40 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-10}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root"; exit 1; }
bash scripts/bootstrap.sh --test >/dev/null
dotnet build src/Reaper/Reaper.csproj -c Release -nologo -v quiet >/dev/null
bash scripts/run.sh --version >/dev/null   # publishes artifacts/aot when a source is newer
tag=srs$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
out=$(mktemp -d)
bus_pid=""
cleanup() {
  [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null || true
  [ -d "/sys/fs/bpf/$tag" ] && { artifacts/aot/socketreaper datapath detach --pin-root "/sys/fs/bpf/$tag" >/dev/null 2>&1 || true; rm -rf "/sys/fs/bpf/$tag"; }
  rm -rf "$out"
}
trap cleanup EXIT
address=$(dbus-daemon --session --fork --print-address=1 --print-pid=3 3>"$out/bus.pid")
bus_pid=$(cat "$out/bus.pid")

python3 - "$R" "$tag" "$out" "$address" <<'PY'
import os, socket, subprocess, sys, time, statistics
runs, tag, out, address = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
builds = {"aot": "artifacts/aot/socketreaper", "jit": "src/Reaper/bin/Release/net10.0/socketreaper"}
res = {b: {"ready": [], "rss": []} for b in builds}
for i in range(runs):
    for name, exe in builds.items():
        path = f"{out}/notify"
        if os.path.exists(path): os.unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(path); s.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=path, DBUS_SYSTEM_BUS_ADDRESS=address,
                   SOCKETREAPER__Datapath__PinRoot=f"/sys/fs/bpf/{tag}", SOCKETREAPER__Datapath__Devices=f"{tag}*",
                   SOCKETREAPER__Datapath__AllNetkit="false", SOCKETREAPER__Metrics__Listen="127.0.0.1:19469")
        t0 = time.monotonic()
        p = subprocess.Popen([exe, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ready = None
        try:
            while ready is None:
                msg = s.recv(4096).decode()
                if "READY=1" in msg: ready = time.monotonic() - t0
            time.sleep(3)
            rss = int(next(l.split()[1] for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS"))) / 1024
            res[name]["ready"].append(ready * 1000); res[name]["rss"].append(rss)
        finally:
            p.terminate(); p.wait(20); s.close()
for name in builds:
    r = res[name]
    print(f"{name}: READY median {statistics.median(r['ready']):.0f} ms (min {min(r['ready']):.0f}, max {max(r['ready']):.0f}), "
          f"idle VmRSS median {statistics.median(r['rss']):.1f} MiB, {len(r['ready'])} runs")
a = res["aot"]
ok = statistics.median(a["ready"]) <= 300 and statistics.median(a["rss"]) <= 40
print(f"targets for scripts/run.sh (NativeAOT): READY <= 300 ms, idle VmRSS <= 40 MiB: {'met' if ok else 'NOT met'}")
sys.exit(0 if ok else 1)
PY
