// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Capability probe used by `socketreaper doctor` and the binding's tests: walks TCP and UDP
 * sockets of the calling thread's network namespace, counts them, and destroys the one socket
 * whose cookie user space put in target_cookie. Loading it at all proves that the kernel has
 * iter/tcp, iter/udp and the bpf_sock_destroy kfunc.
 */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Written by user space between passes; not const, so the verifier checks the destroy path. */
__u64 target_cookie;

__u64 seen_tcp;
__u64 seen_udp;
__u64 destroyed;
__s64 destroy_result;

static __always_inline void visit(struct sock_common *sk, __u64 *seen)
{
	__sync_fetch_and_add(seen, 1);
	if (sk->skc_family != AF_INET && sk->skc_family != AF_INET6)
		return;
	if (target_cookie == 0 || bpf_get_socket_cookie(sk) != target_cookie)
		return;
	destroy_result = bpf_sock_destroy(sk);
	if (destroy_result == 0)
		__sync_fetch_and_add(&destroyed, 1);
}

SEC("iter/tcp")
int reaper_probe_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;

	if (sk)
		visit(sk, &seen_tcp);
	return 0;
}

SEC("iter/udp")
int reaper_probe_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;

	if (udp)
		visit((struct sock_common *)udp, &seen_udp);
	return 0;
}
