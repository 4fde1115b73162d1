// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The host census: iter/tcp and iter/udp programs, run by user space in the host namespace, that
 * record the host's existing sockets in the host contact table the way the socket hooks do — for
 * sockets older than the hooks, and so user space can drop the addresses the host no longer has
 * a socket to. They record exactly what a sweep could destroy (reaper_sweepable) and write
 * nothing to the iterator's output.
 *
 * Every map here is the socket hooks' (reaper_host.h): the census object is loaded reusing them.
 */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "reaper_abi.h"
#include "reaper_sweep.h"
#include "reaper_sock.h"
#include "reaper_host.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

REAPER_ABI(enum reaper_sweep_sizes, reaper_abi_sizes);

static __always_inline int census(struct sock_common *sk, bool udp)
{
	struct reaper_history *h = reaper_history_get();
	__u8 addr[REAPER_ADDR_LEN];

	if (!h || sk->skc_net.net->net_cookie != h->host_netns)
		return 0;
	if (sk->skc_family != AF_INET && sk->skc_family != AF_INET6)
		return 0;
	if (!reaper_sweepable(sk, udp))
		return 0;
	reaper_sock_addr(sk, true, addr);
	reaper_host_contact(addr, bpf_ktime_get_ns(), udp);
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
