/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The socket storage holding each socket's birth time (struct reaper_birth): the socket hooks
 * (bpf/hooks/) write it, the sweep (bpf/iter/) reads it for born-before rules. Both objects
 * declare it from here so the definitions cannot drift; at run time they hold one map — the
 * daemon pins the hooks' copy and loads the sweep reusing it (HooksObject, SweepObject).
 */
#ifndef REAPER_BIRTHS_H
#define REAPER_BIRTHS_H

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct reaper_birth);
} reaper_births SEC(".maps");

#endif
