// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The daemon's sweep object with one program more, which the verifier must reject: it reads past
 * the end of a map value. Given to the daemon through SOCKETREAPER_BPF_OBJECTS, it tests the
 * start-up error for a program the kernel refuses.
 */
#include "sweep.bpf.c"

SEC("iter/udp")
int reaper_rejected(struct bpf_iter__udp *ctx)
{
	__u32 zero = 0;
	struct reaper_stats *s = bpf_map_lookup_elem(&reaper_stats, &zero);

	if (!s)
		return 0;
	return *((__u32 *)s + 4096);
}
