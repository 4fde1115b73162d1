// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The census: iter/tcp and iter/udp programs that user space runs in one namespace at a time to
 * record that namespace's existing sockets in the contact tables the way the socket hooks do —
 * for sockets older than the hooks. In the host namespace (the host census, again every minute)
 * they refresh the host contact table, so user space can drop the addresses the host no longer
 * has a socket to; in a namespace whose history is unknown (it existed before the hooks' record
 * began) they fill in what the hooks never saw, once, after which the namespace's history is
 * known. They record exactly what a sweep could destroy (reaper_sweepable) and write nothing to
 * the iterator's output. The TCP one also adds each such socket the TCP socket index does not hold
 * yet (reaper_index.h) — one older than the hooks —, born 0 (old) and not followed: user space
 * deletes its entry when a destroy finds it gone.
 *
 * Every map here is the socket hooks' (reaper_host.h, reaper_index.h): the census object is
 * loaded reusing them.
 */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "reaper_abi.h"
#include "reaper_sweep.h"
#include "reaper_sock.h"
#include "reaper_host.h"
#include "reaper_index.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

REAPER_ABI(enum reaper_sweep_sizes, reaper_abi_sizes);

/* Set by user space before load, as the hooks' reaper_index_on (bpf_get_socket_cookie from iterators: 5.12). */
const volatile __u32 reaper_index_on = 1;

/* A TCP socket older than the hooks into the index, unless it is there. */
static __always_inline void index_old(struct sock_common *sk, const __u8 addr[REAPER_ADDR_LEN], __u64 netns)
{
	struct reaper_index_key key = { .netns_cookie = netns };
	struct reaper_index_entry e = {};
	__u64 cookie = bpf_get_socket_cookie(sk);

	__builtin_memcpy(key.addr, addr, REAPER_ADDR_LEN);
	if (reaper_index_find(&key, cookie))
		return;
	reaper_sock_addr(sk, false, e.local_addr);
	e.sock_cookie = cookie;
	e.local_port = sk->skc_num;
	e.remote_port = bpf_ntohs(sk->skc_dport);
	e.family = sk->skc_family;
	e.state = sk->skc_state;
	e.bound_dev_if = sk->skc_bound_dev_if;
	reaper_index_add(&key, &e, reaper_history_get());
}

static __always_inline int census(struct sock_common *sk, bool udp)
{
	__u8 addr[REAPER_ADDR_LEN];

	if (sk->skc_family != AF_INET && sk->skc_family != AF_INET6)
		return 0;
	if (!reaper_sweepable(sk, udp))
		return 0;
	reaper_sock_addr(sk, true, addr);
	reaper_contact(addr, sk->skc_net.net->net_cookie, bpf_ktime_get_ns(), udp);
	if (reaper_index_on && !udp)
		index_old(sk, addr, sk->skc_net.net->net_cookie);
	return 0;
}

SEC("iter/tcp")
int reaper_census_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;

	return sk ? census(sk, false) : 0;
}

SEC("iter/udp")
int reaper_census_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;

	return udp ? census((struct sock_common *)udp, true) : 0;
}
