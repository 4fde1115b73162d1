// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The socket hooks (cgroup/connect4|6 and sockops, on the cgroup v2 root) keep what targeted and
 * born-before sweeps need: each socket's birth time in socket storage (reaper_births, which the
 * sweep reads), which namespaces connected to (or accepted from) which remote address
 * (reaper_contacts; the host's own contacts go to reaper_host_contacts, which the host census
 * keeps too), and the TCP socket index (reaper_tcp_index, reaper_index.h): each TCP socket from
 * its connect or accept to its close, with its tuple, cookie, birth and state, so a targeted sweep
 * finds the sockets to an address without walking the kernel's established hash. To see a socket
 * close the hooks ask for its state callbacks (BPF_SOCK_OPS_STATE_CB_FLAG). They
 * never change a connect's outcome.
 *
 * The daemon pins reaper_births, reaper_contacts, reaper_history, reaper_netns_before and
 * reaper_tcp_index, so the record outlives a restart; the sweep and census objects are loaded
 * reusing these maps.
 */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "reaper_abi.h"
#include "reaper_sweep.h"
#include "reaper_sock.h"
#include "reaper_births.h"
#include "reaper_host.h"
#include "reaper_index.h"

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

/*
 * Set by user space before load: whether the hooks keep the TCP socket index. Off where the census
 * cannot read a socket's cookie (before 5.12), so the index could not be made complete.
 */
const volatile __u32 reaper_index_on = 1;

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

/*
 * A context's IPv6 address field (four words) into 16 bytes. Context fields must be read at their
 * own constant offsets: the barrier keeps the compiler from merging two such reads into one
 * through a computed pointer, which the verifier refuses.
 */
#define REAPER_CTX_IP6(out, field)                                                   \
	do {                                                                            \
		__u32 a_ = (field)[0], b_ = (field)[1], c_ = (field)[2], d_ = (field)[3]; \
		__u32 w_[4];                                                            \
		asm volatile("" : "+r"(a_), "+r"(b_), "+r"(c_), "+r"(d_));              \
		w_[0] = a_;                                                             \
		w_[1] = b_;                                                             \
		w_[2] = c_;                                                             \
		w_[3] = d_;                                                             \
		__builtin_memcpy((out), w_, REAPER_ADDR_LEN);                           \
	} while (0)

/* A sockops socket's remote and local addresses in the 16-byte space (IPv4 v4-mapped). */
static __always_inline void sockops_addrs(struct bpf_sock_ops *ctx, __u8 remote[REAPER_ADDR_LEN], __u8 local[REAPER_ADDR_LEN])
{
	if (ctx->family == AF_INET) {
		__u32 r = ctx->remote_ip4, l = ctx->local_ip4;

		asm volatile("" : "+r"(r), "+r"(l));
		reaper_v4_mapped(remote, r);
		reaper_v4_mapped(local, l);
		return;
	}
	REAPER_CTX_IP6(remote, ctx->remote_ip6);
	REAPER_CTX_IP6(local, ctx->local_ip6);
}

/* A TCP socket connects (SYN_SENT) or was accepted (ESTABLISHED): into the index, and followed to its close. */
static __always_inline void index_open(struct bpf_sock_ops *ctx, __u32 state, __u64 now)
{
	struct reaper_index_key key = {};
	struct reaper_index_entry e = {};
	struct bpf_sock *sk = ctx->sk;
	struct reaper_birth *b;
	__u32 family = ctx->family;

	if (family != AF_INET && family != AF_INET6)
		return;
	sockops_addrs(ctx, key.addr, e.local_addr);
	key.netns_cookie = bpf_get_netns_cookie(ctx);
	e.sock_cookie = bpf_get_socket_cookie(ctx);
	e.born_ns = now;
	e.local_port = ctx->local_port;
	/* remote_port holds the network-order port in its upper half on little-endian hosts. */
	e.remote_port = bpf_ntohl(ctx->remote_port);
	e.family = family;
	e.state = state;
	if (!sk)
		return;
	e.bound_dev_if = sk->bound_dev_if;
	b = bpf_sk_storage_get(&reaper_births, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!b)
		return;
	/* Where it went is kept with its birth, so following it costs one lookup, not a search. */
	b->index_slot = reaper_index_add(&key, &e, reaper_history_get());
	if (b->index_slot)
		bpf_sock_ops_cb_flags_set(ctx, ctx->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/*
 * An indexed socket reached ESTABLISHED (born anew, as its birth storage says) or closed (out of
 * the index). Its slot is in its birth storage; the entry there is its own only if the cookie agrees.
 */
static __always_inline void index_follow(struct bpf_sock_ops *ctx, __u32 state, __u64 now)
{
	struct reaper_index_key key = {};
	struct reaper_index_entry *e;
	struct bpf_sock *sk = ctx->sk;
	struct reaper_birth *b;
	__u8 local[REAPER_ADDR_LEN];

	if (!sk || (ctx->family != AF_INET && ctx->family != AF_INET6))
		return;
	b = bpf_sk_storage_get(&reaper_births, sk, 0, 0);
	if (!b || !b->index_slot || b->index_slot > REAPER_INDEX_SLOTS)
		return;
	sockops_addrs(ctx, key.addr, local);
	key.netns_cookie = bpf_get_netns_cookie(ctx);
	key.slot = b->index_slot - 1;
	e = bpf_map_lookup_elem(&reaper_tcp_index, &key);
	if (!e || e->sock_cookie != bpf_get_socket_cookie(ctx))
		return;
	if (state == TCP_CLOSE) {
		bpf_map_delete_elem(&reaper_tcp_index, &key);
		b->index_slot = 0;
		return;
	}
	e->state = state;
	if (now)
		e->born_ns = now;
}

SEC("sockops")
int reaper_sockops(struct bpf_sock_ops *ctx)
{
	__u32 op = ctx->op;
	__u64 now;

	if (op == BPF_SOCK_OPS_STATE_CB) {
		/*
		 * Only the close matters: a sweep judges FIN_WAIT, CLOSE_WAIT and the rest of a connection's
		 * states as it judges ESTABLISHED (user space reads the index only for rules that take them
		 * all), and each state change is a call on every connection of the host.
		 */
		if (reaper_index_on && ctx->args[1] == TCP_CLOSE)
			index_follow(ctx, TCP_CLOSE, 0);
		return 1;
	}
	if (op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		if (reaper_index_on)
			index_open(ctx, TCP_SYN_SENT, bpf_ktime_get_ns());
		return 1;
	}
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	now = bpf_ktime_get_ns();
	if (ctx->sk)
		stamp(ctx->sk, now);
	if (reaper_index_on) {
		if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
			/* Still SYN_RECV in the callback on some kernels: ESTABLISHED as it returns. */
			index_open(ctx, TCP_ESTABLISHED, now);
		else
			index_follow(ctx, TCP_ESTABLISHED, now);
	}
	/* An active open was recorded at connect(); an accepted one is seen here first. */
	if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && (ctx->family == AF_INET || ctx->family == AF_INET6)) {
		__u8 remote[REAPER_ADDR_LEN], local[REAPER_ADDR_LEN];

		sockops_addrs(ctx, remote, local);
		reaper_contact(remote, bpf_get_netns_cookie(ctx), now, false);
	}
	return 1;
}
