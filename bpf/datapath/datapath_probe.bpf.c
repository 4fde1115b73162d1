// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Capability probe for `socketreaper doctor`: the smallest TCX and netkit programs. They pass
 * every packet on to the next program and count what they saw, so attaching them in a private
 * namespace proves the kernel supports the hook.
 */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u64 packets;

SEC("tcx/ingress")
int reaper_probe_tcx(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&packets, 1);
	return TCX_NEXT;
}

SEC("netkit/primary")
int reaper_probe_nk(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&packets, 1);
	return NETKIT_NEXT;
}
