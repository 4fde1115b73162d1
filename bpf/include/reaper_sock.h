/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Helpers the socket programs share (the sweep, the socket hooks, the host census): addresses in
 * the 16-byte space of reaper_sweep.h, which sockets a sweep may judge, and the protocol flags
 * of a contact. Inline only: each object gets its own copy, and none of them owns a map.
 */
#ifndef REAPER_SOCK_H
#define REAPER_SOCK_H

/* An IPv4 address (network order) as ::ffff:a.b.c.d. */
static __always_inline void reaper_v4_mapped(__u8 out[REAPER_ADDR_LEN], __be32 ip4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &ip4, sizeof(ip4));
}

/* A socket's remote (or local) address, IPv4 v4-mapped. */
static __always_inline void reaper_sock_addr(struct sock_common *sk, bool remote, __u8 out[REAPER_ADDR_LEN])
{
	if (sk->skc_family == AF_INET) {
		reaper_v4_mapped(out, remote ? sk->skc_daddr : sk->skc_rcv_saddr);
	} else {
		struct in6_addr a = remote ? sk->skc_v6_daddr : sk->skc_v6_rcv_saddr;

		__builtin_memcpy(out, &a, REAPER_ADDR_LEN);
	}
}

/*
 * Whether a sweep may judge the socket at all: never a LISTEN, TIME_WAIT or request
 * (NEW_SYN_RECV) socket, nor a UDP socket that is not connected (no peer to be stale about).
 * The census records exactly these, so a targeted sweep's scope covers what it could destroy.
 */
static __always_inline bool reaper_sweepable(struct sock_common *sk, bool udp)
{
	__u8 state = sk->skc_state;

	if (udp)
		return state == TCP_ESTABLISHED && sk->skc_dport != 0;
	return state != TCP_LISTEN && state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV;
}

/*
 * Records that a contact was made with TCP or UDP (anything not UDP counts as TCP). Each flag is
 * set to 1 by a plain store, never cleared, so racing hooks agree without atomics; the test first
 * keeps a shared cache line from being written again and again.
 */
static __always_inline void reaper_mark(__u8 *tcp, __u8 *udp, bool is_udp)
{
	if (is_udp) {
		if (!*udp)
			*udp = 1;
	} else if (!*tcp) {
		*tcp = 1;
	}
}

#endif
