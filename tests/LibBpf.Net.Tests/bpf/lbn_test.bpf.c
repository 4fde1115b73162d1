// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Programs and maps exercised by LibBpf.Net's own tests. */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lbn_test.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} lbn_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lbn_percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} lbn_events SEC(".maps");

/* Keeps struct lbn_record in the object's BTF for the layout test. */
struct lbn_record lbn_last_record;

__u64 lbn_counter;
__u64 lbn_tcp_seen;
const volatile __u64 lbn_rodata_value = 7;

SEC("tcx/ingress")
int lbn_tcx(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *per_cpu = bpf_map_lookup_elem(&lbn_percpu, &zero);

	if (per_cpu)
		*per_cpu += 1;
	__sync_fetch_and_add(&lbn_counter, 1);
	return TCX_NEXT;
}

SEC("tcx/ingress")
int lbn_tcx_other(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&lbn_counter, 100);
	return TCX_NEXT;
}

SEC("tc")
int lbn_emit(struct __sk_buff *skb)
{
	struct lbn_record *r = bpf_ringbuf_reserve(&lbn_events, sizeof(*r), 0);

	if (!r)
		return 1;
	r->kind = 1;
	r->_pad0 = 0;
	r->value = lbn_rodata_value + lbn_counter;
	r->port = 4242;
	r->family = AF_INET6;
	__builtin_memset(r->_pad1, 0, sizeof(r->_pad1));
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("iter/tcp")
int lbn_iter_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;

	if (!sk || (sk->skc_family != AF_INET && sk->skc_family != AF_INET6))
		return 0;
	__sync_fetch_and_add(&lbn_tcp_seen, 1);
	return 0;
}

SEC("netkit/primary")
int lbn_nk(struct __sk_buff *skb)
{
	return NETKIT_NEXT;
}

/* Counts connect() calls per destination port (host order) in lbn_hash. */
SEC("cgroup/connect4")
int lbn_connect4(struct bpf_sock_addr *ctx)
{
	__u32 port = ((ctx->user_port & 0xff) << 8) | ((ctx->user_port >> 8) & 0xff);
	__u64 one = 1, *count = bpf_map_lookup_elem(&lbn_hash, &port);

	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&lbn_hash, &port, &one, BPF_NOEXIST);
	return 1;
}
