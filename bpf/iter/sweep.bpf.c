// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The sweep: iter/tcp and iter/udp programs that match every socket of the iterating thread's
 * network namespace against the rule set in reaper_prefixes/reaper_rules, and destroy matches
 * with bpf_sock_destroy — or only report them in a dry run — within the sweep's limit. Every
 * match writes one struct reaper_record to the iterator's output.
 *
 * In sock_diag mode (reaper_destroy_mode, for kernels without the kfunc) a match that takes a
 * slot of the cap is written as REAPER_RESULT_PENDING instead: user space destroys it with
 * netlink SOCK_DESTROY by its exact tuple and cookie, and gives the slot back if it is gone.
 * The *_unrolled programs are the same sweep without bpf_loop (< 5.17); user space loads one pair.
 *
 * Never destroyed, whatever the rules say: LISTEN, TIME_WAIT and request (NEW_SYN_RECV) sockets,
 * and UDP sockets that are not connected (reaper_sweepable).
 *
 * Born-before rules read each socket's birth time from reaper_births, which the socket hooks
 * (bpf/hooks/hooks.bpf.c) write; without the hooks the map stays empty and every socket is old.
 * Nothing else here is shared: a one-off sweep loads this object alone.
 */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "reaper_abi.h"
#include "reaper_sweep.h"
#include "reaper_sock.h"
#include "reaper_births.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, REAPER_RULES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct reaper_prefix_key);
	__type(value, struct reaper_rule_set);
} reaper_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, REAPER_RULES_MAX);
	__type(key, __u32);
	__type(value, struct reaper_rule);
} reaper_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct reaper_stats);
} reaper_stats SEC(".maps");

/* Set by user space before each sweep (one sweep runs at a time). */
__u64 reaper_limit;
__u64 reaper_budget_used;
__u32 reaper_dry_run;

/*
 * Set by user space before load, for the kernel at hand: the verifier sees constants and drops
 * the paths not taken, so a helper or kfunc that kernel lacks is never looked at.
 */
const volatile __u32 reaper_destroy_mode = REAPER_DESTROY_KFUNC;
/* bpf_sk_storage_get from iterators (5.11); without it born-before rules match nothing. */
const volatile __u32 reaper_births_readable = 1;
/* bpf_get_socket_cookie from iterators (5.12); without it the cookie is read as far as it was made. */
const volatile __u32 reaper_cookie_helper = 1;
/*
 * Atomic fetch-and-add (5.12); without it user space sweeps with one thread, so plain arithmetic is
 * exact. The *_unrolled programs never use it: before 5.12 the kernel rejects the instruction even
 * in dead code.
 */
const volatile __u32 reaper_atomic_fetch = 1;

/* Weak: where the kfunc is missing (< 6.5) libbpf leaves a call sock_diag mode never reaches. */
extern int bpf_sock_destroy(struct sock_common *sk) __weak __ksym;

REAPER_ABI(struct reaper_record, reaper_abi_record);
REAPER_ABI(struct reaper_rule, reaper_abi_rule);
REAPER_ABI(enum reaper_sweep_sizes, reaper_abi_sizes);
REAPER_ABI(enum reaper_proto_bits, reaper_abi_proto_bits);
REAPER_ABI(enum reaper_result, reaper_abi_result);
REAPER_ABI(enum reaper_destroy_mode, reaper_abi_destroy_mode);

static __always_inline struct reaper_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&reaper_stats, &zero);
}

/* A slot of the sweep's cap, which holds across every namespace and CPU of the sweep. */
static __always_inline bool take_slot(bool unrolled)
{
	if (!unrolled && reaper_atomic_fetch) {
		if (__sync_fetch_and_add(&reaper_budget_used, 1) < reaper_limit)
			return true;
		__sync_fetch_and_sub(&reaper_budget_used, 1);
		return false;
	}
	if (reaper_budget_used >= reaper_limit)
		return false;
	reaper_budget_used++;
	return true;
}

static __always_inline bool prefix_matches(const __u8 addr[REAPER_ADDR_LEN], const __u8 prefix[REAPER_ADDR_LEN], __u32 len)
{
	for (int i = 0; i < REAPER_ADDR_LEN; i++) {
		int bits = (int)len - i * 8;
		__u8 mask;

		if (bits <= 0)
			break;
		mask = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
		if ((addr[i] ^ prefix[i]) & mask)
			return false;
	}
	return true;
}

/*
 * When the socket was born (see struct reaper_birth); 0 when no hook saw it: it counts as old.
 * Where an iterator cannot read socket storage every socket might be new: it counts as newest,
 * so a born-before rule never destroys one the hooks would have called young.
 */
static __always_inline __u64 born_of(struct sock_common *sk)
{
	struct reaper_birth *b;

	if (!reaper_births_readable)
		return ~0ULL;
	b = bpf_sk_storage_get(&reaper_births, sk, 0, 0);
	return b ? b->born_ns : 0;
}

static __always_inline __u64 sock_cookie_of(struct sock_common *sk)
{
	if (reaper_cookie_helper)
		return bpf_get_socket_cookie(sk);
	return sk->skc_cookie.counter;
}

static __always_inline __u64 netns_cookie_of(struct sock_common *sk)
{
	struct net *net = sk->skc_net.net;

	if (bpf_core_field_exists(((struct net___atomic *)0)->net_cookie))
		return ((struct net___atomic *)net)->net_cookie.counter;
	return net->net_cookie;
}

/* One socket against the rules its remote prefix lists, one rule per bpf_loop step. */
struct rule_scan {
	struct reaper_rule_set *set;
	__u64 born;
	__u8 laddr[REAPER_ADDR_LEN];
	__u16 rport;
	__u16 lport;
	__u8 proto_bit;
	__u8 state;
	int matched_rule;
};

static __always_inline bool rule_matches(const struct reaper_rule *r, const struct rule_scan *s)
{
	if (!(r->protocols & s->proto_bit))
		return false;
	if (s->proto_bit == REAPER_PROTO_TCP && !(r->tcp_states & (1 << s->state)))
		return false;
	if (s->rport < r->remote_port_min || s->rport > r->remote_port_max)
		return false;
	if (s->lport < r->local_port_min || s->lport > r->local_port_max)
		return false;
	if (r->local_prefixlen && !prefix_matches(s->laddr, r->local_addr, r->local_prefixlen))
		return false;
	/* A socket born at or after the rule's moment was made for the address's new owner. */
	if (r->born_before_ns && s->born >= r->born_before_ns)
		return false;
	return true;
}

/*
 * A bpf_loop callback, so the verifier checks one rule once instead of every unrolled step of a
 * 64-rule loop: that cut the sweep object's load from ~75 ms to a few ms per program, which a
 * one-off sweep pays every time it runs. Kernels without bpf_loop run it in a bounded loop.
 */
static long scan_rule(__u64 i, struct rule_scan *s)
{
	struct reaper_rule *r;
	__u32 idx;

	if (i >= REAPER_RULES_PER_PREFIX || i >= s->set->count)
		return 1;
	idx = s->set->rules[i];
	r = bpf_map_lookup_elem(&reaper_rules, &idx);
	if (r && rule_matches(r, s)) {
		s->matched_rule = r->id;
		return 1;
	}
	return 0;
}

static __always_inline void scan_rules(struct rule_scan *s, bool unrolled)
{
	if (unrolled) {
		for (__u32 i = 0; i < REAPER_RULES_PER_PREFIX; i++)
			if (scan_rule(i, s))
				break;
	} else {
		bpf_loop(REAPER_RULES_PER_PREFIX, scan_rule, s, 0);
	}
}

static __always_inline int visit(struct seq_file *seq, struct sock_common *sk, __u32 uid, __u8 proto, bool unrolled)
{
	struct reaper_prefix_key key = { .prefixlen = REAPER_ADDR_BITS };
	struct reaper_record rec = {};
	struct rule_scan scan = { .matched_rule = -1 };
	struct reaper_stats *st = stats();
	bool udp = proto == IPPROTO_UDP;
	__u16 family = sk->skc_family;
	__u8 state = sk->skc_state;

	if (!st || (family != AF_INET && family != AF_INET6))
		return 0;
	if (udp)
		st->scanned_udp++;
	else
		st->scanned_tcp++;
	if (!reaper_sweepable(sk, udp))
		return 0;

	reaper_sock_addr(sk, true, key.addr);
	scan.set = bpf_map_lookup_elem(&reaper_prefixes, &key);
	if (!scan.set)
		return 0;

	scan.proto_bit = udp ? REAPER_PROTO_UDP : REAPER_PROTO_TCP;
	scan.state = state;
	scan.rport = bpf_ntohs(sk->skc_dport);
	scan.lport = sk->skc_num;
	scan.born = born_of(sk);
	reaper_sock_addr(sk, false, scan.laddr);
	scan_rules(&scan, unrolled);
	if (scan.matched_rule < 0)
		return 0;

	st->matched++;
	__builtin_memcpy(rec.local_addr, scan.laddr, REAPER_ADDR_LEN);
	__builtin_memcpy(rec.remote_addr, key.addr, REAPER_ADDR_LEN);
	rec.sock_cookie = sock_cookie_of(sk);
	rec.netns_cookie = netns_cookie_of(sk);
	rec.bound_dev_if = sk->skc_bound_dev_if;
	rec.rule_id = scan.matched_rule;
	rec.uid = uid;
	rec.local_port = scan.lport;
	rec.remote_port = scan.rport;
	rec.protocol = proto;
	rec.family = family;
	rec.state = state;

	if (!take_slot(unrolled)) {
		rec.result = REAPER_RESULT_HELD_BACK;
		st->held_back++;
	} else if (reaper_dry_run) {
		rec.result = REAPER_RESULT_DRY_RUN;
		st->dry_run++;
	} else if (reaper_destroy_mode == REAPER_DESTROY_SOCK_DIAG) {
		/* The slot stays taken until user space knows whether netlink destroyed it. */
		rec.result = REAPER_RESULT_PENDING;
	} else {
		rec.result = bpf_sock_destroy(sk);
		if (rec.result == 0) {
			st->destroyed++;
		} else {
			__sync_fetch_and_sub(&reaper_budget_used, 1);
			st->failed++;
		}
	}
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}

static __always_inline int sweep_tcp(struct bpf_iter__tcp *ctx, bool unrolled)
{
	struct sock_common *sk = ctx->sk_common;

	if (!sk)
		return 0;
	return visit(ctx->meta->seq, sk, ctx->uid, IPPROTO_TCP, unrolled);
}

static __always_inline int sweep_udp(struct bpf_iter__udp *ctx, bool unrolled)
{
	struct udp_sock *udp = ctx->udp_sk;

	if (!udp)
		return 0;
	return visit(ctx->meta->seq, (struct sock_common *)udp, ctx->uid, IPPROTO_UDP, unrolled);
}

SEC("iter/tcp")
int reaper_sweep_tcp(struct bpf_iter__tcp *ctx)
{
	return sweep_tcp(ctx, false);
}

SEC("iter/udp")
int reaper_sweep_udp(struct bpf_iter__udp *ctx)
{
	return sweep_udp(ctx, false);
}

SEC("iter/tcp")
int reaper_sweep_tcp_unrolled(struct bpf_iter__tcp *ctx)
{
	return sweep_tcp(ctx, true);
}

SEC("iter/udp")
int reaper_sweep_udp_unrolled(struct bpf_iter__udp *ctx)
{
	return sweep_udp(ctx, true);
}
