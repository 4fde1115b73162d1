// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* A program the verifier must reject: it reads past the end of a map value. */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} lbn_small SEC(".maps");

SEC("tc")
int lbn_out_of_bounds(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u32 *v = bpf_map_lookup_elem(&lbn_small, &zero);

	if (!v)
		return 0;
	return *(v + 64);
}
