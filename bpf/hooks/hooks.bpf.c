// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The socket hooks (cgroup/connect4|6 and sockops, on the cgroup v2 root) keep what targeted and
 * born-before sweeps need: each socket's birth time in socket storage (reaper_births, which the
 * sweep reads), and which namespaces connected to (or accepted from) which remote address
 * (reaper_contacts; the host's own contacts go to reaper_host_contacts, which the host census
 * keeps too). They never change a connect's outcome.
 *
 * The daemon pins reaper_births, reaper_contacts, reaper_history and reaper_netns_before, so the
 * record outlives a restart; the sweep and census objects are loaded reusing these maps.
 */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "reaper_abi.h"
#include "reaper_sweep.h"
#include "reaper_sock.h"
#include "reaper_births.h"
#include "reaper_host.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Written and read by user space only; pinned with the record it qualifies. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REAPER_NETNS_BEFORE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
} reaper_netns_before SEC(".maps");

REAPER_ABI(enum reaper_sweep_sizes, reaper_abi_sizes);

static __always_inline void stamp(struct bpf_sock *sk, __u64 now)
{
	struct reaper_birth *b = bpf_sk_storage_get(&reaper_births, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (b)
		b->born_ns = now;
}

static __always_inline void on_connect(struct bpf_sock_addr *ctx, const __u8 addr[REAPER_ADDR_LEN])
{
	__u64 now = bpf_ktime_get_ns();

	if (ctx->sk)
		stamp(ctx->sk, now);
	reaper_contact(addr, bpf_get_netns_cookie(ctx), now, ctx->protocol == IPPROTO_UDP);
}

SEC("cgroup/connect4")
int reaper_connect4(struct bpf_sock_addr *ctx)
{
	__u8 addr[REAPER_ADDR_LEN];

	reaper_v4_mapped(addr, ctx->user_ip4);
	on_connect(ctx, addr);
	return 1;
}

SEC("cgroup/connect6")
int reaper_connect6(struct bpf_sock_addr *ctx)
{
	__u32 words[4];

	words[0] = ctx->user_ip6[0];
	words[1] = ctx->user_ip6[1];
	words[2] = ctx->user_ip6[2];
	words[3] = ctx->user_ip6[3];
	on_connect(ctx, (__u8 *)words);
	return 1;
}

SEC("sockops")
int reaper_sockops(struct bpf_sock_ops *ctx)
{
	__u32 words[4];
	__u64 now;

	if (ctx->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && ctx->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	now = bpf_ktime_get_ns();
	if (ctx->sk)
		stamp(ctx->sk, now);
	/* An active open was recorded at connect(); an accepted one is seen here first. */
	if (ctx->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		/*
		 * Context fields must be read at their own constant offsets: the barriers keep the compiler
		 * from merging the two branches' loads into one through a computed pointer, which the
		 * verifier refuses.
		 */
		if (ctx->family == AF_INET) {
			__u32 ip4 = ctx->remote_ip4;

			asm volatile("" : "+r"(ip4));
			reaper_v4_mapped((__u8 *)words, ip4);
		} else {
			__u32 a = ctx->remote_ip6[0], b = ctx->remote_ip6[1], c = ctx->remote_ip6[2], d = ctx->remote_ip6[3];

			asm volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
			words[0] = a;
			words[1] = b;
			words[2] = c;
			words[3] = d;
		}
		reaper_contact((__u8 *)words, bpf_get_netns_cookie(ctx), now, false);
	}
	return 1;
}
