// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The benchmark's baseline: a TCX program that does nothing, so test-run overhead can be subtracted. */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tcx/ingress")
int bench_nop(struct __sk_buff *skb)
{
	return TCX_NEXT;
}
