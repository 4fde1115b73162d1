// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The census: iter/tcp and iter/udp programs that user space runs in one namespace at a time to
 * record that namespace's existing sockets in the contact tables the way the socket hooks do —
 * for sockets older than the hooks. In the host namespace (the host census, again every minute)
 * they refresh the host contact table, so user space can drop the addresses the host no longer
 * has a socket to; in a namespace whose history is unknown (it existed before the hooks' record
 * began) they fill in what the hooks never saw, once, after which the namespace's history is
 * known. They record exactly what a sweep could destroy (reaper_sweepable) and write nothing to
 * the iterator's output.
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
	__u8 addr[REAPER_ADDR_LEN];

	if (sk->skc_family != AF_INET && sk->skc_family != AF_INET6)
		return 0;
	if (!reaper_sweepable(sk, udp))
		return 0;
	reaper_sock_addr(sk, true, addr);
	reaper_contact(addr, sk->skc_net.net->net_cookie, bpf_ktime_get_ns(), udp);
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
