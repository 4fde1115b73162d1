#!/usr/bin/env python3
"""Runs a command with the kernel's BPF run-time statistics on (run_time_ns, run_cnt per program).

    python3 bench/bpf_stats.py COMMAND [ARG...]

It holds a BPF_ENABLE_STATS descriptor while the command runs, so the counting stops when it
exits, whatever happens: the host's sysctl kernel.bpf_stats_enabled is never written. Exits with
the command's status. For bench/sweep.sh's breakdown; `socketreaper sweep --json` reports its
programs' counters (bpf_programs) when they count.
"""
import ctypes
import os
import subprocess
import sys

SYS_BPF = 321            # x86_64
BPF_ENABLE_STATS = 32    # enum bpf_cmd
BPF_STATS_RUN_TIME = 0   # enum bpf_stats_type

if len(sys.argv) < 2:
    sys.exit(__doc__)
libc = ctypes.CDLL(None, use_errno=True)
attr = (ctypes.c_uint32 * 2)(BPF_STATS_RUN_TIME, 0)   # union bpf_attr, enable_stats.type
fd = libc.syscall(SYS_BPF, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
if fd < 0:
    err = ctypes.get_errno()
    sys.exit(f"bpf_stats: BPF_ENABLE_STATS failed: {os.strerror(err)} (the kernel needs 5.8 or later, and CAP_SYS_ADMIN)")
try:
    sys.exit(subprocess.call(sys.argv[1:]))
finally:
    os.close(fd)
