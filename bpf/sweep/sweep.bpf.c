// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The sweep: iter/tcp and iter/udp programs that match every socket of the iterating thread's
 * network namespace against the rule set in reaper_prefixes/reaper_rules, and destroy matches
 * with bpf_sock_destroy — or only report them in a dry run — within the sweep's limit. Every
 * match writes one struct reaper_record to the iterator's output.
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

REAPER_ABI(struct reaper_record, reaper_abi_record);
REAPER_ABI(struct reaper_rule, reaper_abi_rule);
REAPER_ABI(enum reaper_sweep_sizes, reaper_abi_sizes);
REAPER_ABI(enum reaper_proto_bits, reaper_abi_proto_bits);
REAPER_ABI(enum reaper_result, reaper_abi_result);

static __always_inline struct reaper_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&reaper_stats, &zero);
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

/* When the socket was born (see struct reaper_birth); 0 when no hook saw it: it counts as old. */
static __always_inline __u64 born_of(struct sock_common *sk)
{
	struct reaper_birth *b = bpf_sk_storage_get(&reaper_births, sk, 0, 0);

	return b ? b->born_ns : 0;
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
 * one-off sweep pays every time it runs.
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

static __always_inline int visit(struct seq_file *seq, struct sock_common *sk, __u32 uid, __u8 proto)
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
	bpf_loop(REAPER_RULES_PER_PREFIX, scan_rule, &scan, 0);
	if (scan.matched_rule < 0)
		return 0;

	st->matched++;
	__builtin_memcpy(rec.local_addr, scan.laddr, REAPER_ADDR_LEN);
	__builtin_memcpy(rec.remote_addr, key.addr, REAPER_ADDR_LEN);
	rec.sock_cookie = bpf_get_socket_cookie(sk);
	rec.netns_cookie = sk->skc_net.net->net_cookie;
	rec.rule_id = scan.matched_rule;
	rec.uid = uid;
	rec.local_port = scan.lport;
	rec.remote_port = scan.rport;
	rec.protocol = proto;
	rec.family = family;
	rec.state = state;

	/* The cap holds across every namespace and CPU of the sweep: take a slot first. */
	if (__sync_fetch_and_add(&reaper_budget_used, 1) >= reaper_limit) {
		__sync_fetch_and_sub(&reaper_budget_used, 1);
		rec.result = REAPER_RESULT_HELD_BACK;
		st->held_back++;
	} else if (reaper_dry_run) {
		rec.result = REAPER_RESULT_DRY_RUN;
		st->dry_run++;
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

SEC("iter/tcp")
int reaper_sweep_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;

	if (!sk)
		return 0;
	return visit(ctx->meta->seq, sk, ctx->uid, IPPROTO_TCP);
}

SEC("iter/udp")
int reaper_sweep_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;

	if (!udp)
		return 0;
	return visit(ctx->meta->seq, (struct sock_common *)udp, ctx->uid, IPPROTO_UDP);
}
