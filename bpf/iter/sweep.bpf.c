// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The sweep: iter/tcp and iter/udp programs that match every socket of the iterating thread's
 * network namespace against the rule set in reaper_prefixes/reaper_rules, and destroy matches
 * with bpf_sock_destroy — or only report them in a dry run — within the sweep's limit. Every
 * match writes one struct reaper_record to the iterator's output.
 *
 * Never destroyed, whatever the rules say: LISTEN, TIME_WAIT and request (NEW_SYN_RECV) sockets,
 * and UDP sockets that are not connected.
 *
 * The socket hooks (cgroup/connect4|6 and sockops, on the cgroup v2 root) keep what targeted and
 * born-before sweeps need: each socket's birth time in socket storage, and which namespaces
 * connected to (or accepted from) which remote address. They never change a connect's outcome.
 * The census iterators (iter/tcp, iter/udp, run by user space in the host namespace) record the
 * host's existing sockets the same way, for sockets older than the hooks and to keep the host's
 * table to addresses it still has sockets to.
 */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "reaper_sweep.h"

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

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct reaper_birth);
} reaper_births SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REAPER_CONTACTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct reaper_contact_key);
	__type(value, struct reaper_contact);
} reaper_contacts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct reaper_history);
} reaper_history SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REAPER_HOST_CONTACTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct reaper_prefix_key);
	__type(value, struct reaper_host_contact);
} reaper_host_contacts SEC(".maps");

/* Host contacts that did not fit; user space zeroes it when a census starts. */
__u64 reaper_host_contacts_lost;

/* Written and read by user space only; pinned with the record it qualifies. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REAPER_NETNS_BEFORE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
} reaper_netns_before SEC(".maps");

/* Set by user space before each sweep (one sweep runs at a time). */
__u64 reaper_limit;
__u64 reaper_budget_used;
__u32 reaper_dry_run;

/* Keep the ABI structs in BTF for the layout test even if the compiler folds a use away. */
struct reaper_record reaper_abi_record;
struct reaper_rule reaper_abi_rule;
struct reaper_contact_key reaper_abi_contact_key;
struct reaper_contact reaper_abi_contact;
struct reaper_history reaper_abi_history;
struct reaper_host_contact reaper_abi_host_contact;

static __always_inline struct reaper_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&reaper_stats, &zero);
}

static __always_inline void addr_of(struct sock_common *sk, bool remote, __u8 out[16])
{
	if (sk->skc_family == AF_INET) {
		__be32 a = remote ? sk->skc_daddr : sk->skc_rcv_saddr;

		__builtin_memset(out, 0, 10);
		out[10] = 0xff;
		out[11] = 0xff;
		__builtin_memcpy(out + 12, &a, 4);
	} else {
		struct in6_addr a = remote ? sk->skc_v6_daddr : sk->skc_v6_rcv_saddr;

		__builtin_memcpy(out, &a, 16);
	}
}

static __always_inline bool prefix_matches(const __u8 addr[16], const __u8 prefix[16], __u32 len)
{
	for (int i = 0; i < 16; i++) {
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

static __always_inline bool rule_matches(const struct reaper_rule *r, struct sock_common *sk, __u8 proto_bit, __u8 state,
					 __u16 rport, __u16 lport, const __u8 laddr[16])
{
	if (!(r->protocols & proto_bit))
		return false;
	if (proto_bit == REAPER_PROTO_TCP && !(r->tcp_states & (1 << state)))
		return false;
	if (rport < r->remote_port_min || rport > r->remote_port_max)
		return false;
	if (lport < r->local_port_min || lport > r->local_port_max)
		return false;
	if (r->local_prefixlen && !prefix_matches(laddr, r->local_addr, r->local_prefixlen))
		return false;
	/* A socket born at or after the rule's moment was made for the address's new owner. */
	if (r->born_before_ns && born_of(sk) >= r->born_before_ns)
		return false;
	return true;
}

static __always_inline int visit(struct seq_file *seq, struct sock_common *sk, __u32 uid, __u8 proto)
{
	struct reaper_prefix_key key = { .prefixlen = 128 };
	struct reaper_record rec = {};
	struct reaper_rule_set *set;
	struct reaper_stats *st = stats();
	__u8 proto_bit = proto == 6 ? REAPER_PROTO_TCP : REAPER_PROTO_UDP;
	__u16 family = sk->skc_family;
	__u8 state = sk->skc_state;
	__u16 rport, lport;
	int matched_rule = -1;

	if (!st || (family != AF_INET && family != AF_INET6))
		return 0;
	if (proto_bit == REAPER_PROTO_TCP)
		st->scanned_tcp++;
	else
		st->scanned_udp++;

	if (proto_bit == REAPER_PROTO_TCP) {
		if (state == TCP_LISTEN || state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV)
			return 0;
	} else if (state != TCP_ESTABLISHED || sk->skc_dport == 0) {
		/* Unconnected UDP: no peer to be stale about. */
		return 0;
	}

	addr_of(sk, true, key.addr);
	set = bpf_map_lookup_elem(&reaper_prefixes, &key);
	if (!set)
		return 0;

	rport = bpf_ntohs(sk->skc_dport);
	lport = sk->skc_num;
	addr_of(sk, false, rec.local_addr);
	for (__u32 i = 0; i < REAPER_RULES_PER_PREFIX; i++) {
		__u32 idx;
		struct reaper_rule *r;

		if (i >= set->count)
			break;
		idx = set->rules[i];
		r = bpf_map_lookup_elem(&reaper_rules, &idx);
		if (r && rule_matches(r, sk, proto_bit, state, rport, lport, rec.local_addr)) {
			matched_rule = r->id;
			break;
		}
	}
	if (matched_rule < 0)
		return 0;

	st->matched++;
	__builtin_memcpy(rec.remote_addr, key.addr, 16);
	rec.sock_cookie = bpf_get_socket_cookie(sk);
	rec.netns_cookie = sk->skc_net.net->net_cookie;
	rec.rule_id = matched_rule;
	rec.uid = uid;
	rec.local_port = lport;
	rec.remote_port = rport;
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

/* ---- Socket hooks: birth times and contacts ---------------------------------------------- */

static __always_inline void stamp(struct bpf_sock *sk, __u64 now)
{
	struct reaper_birth *b = bpf_sk_storage_get(&reaper_births, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (b)
		b->born_ns = now;
}

static __always_inline void mark(struct reaper_contact *c, bool udp)
{
	if (udp) {
		if (!c->udp)
			c->udp = 1;
	} else if (!c->tcp) {
		c->tcp = 1;
	}
}

/* The host has (had, at now) a socket to addr. Keyed like the rule trie, full length. */
static __always_inline void host_contact(const __u8 addr[16], __u64 now, bool udp)
{
	struct reaper_prefix_key key = { .prefixlen = 128 };
	struct reaper_host_contact fresh = { .last_ns = now }, *c;

	__builtin_memcpy(key.addr, addr, 16);
	c = bpf_map_lookup_elem(&reaper_host_contacts, &key);
	if (!c) {
		if (udp)
			fresh.udp = 1;
		else
			fresh.tcp = 1;
		if (bpf_map_update_elem(&reaper_host_contacts, &key, &fresh, BPF_NOEXIST) == 0)
			return;
		c = bpf_map_lookup_elem(&reaper_host_contacts, &key);
		if (!c) {
			__sync_fetch_and_add(&reaper_host_contacts_lost, 1);
			return;
		}
	}
	if (c->last_ns < now)
		c->last_ns = now;
	if (udp) {
		if (!c->udp)
			c->udp = 1;
	} else if (!c->tcp) {
		c->tcp = 1;
	}
}

static __always_inline void contact(const __u8 addr[16], __u64 netns, __u64 now, bool udp)
{
	struct reaper_contact_key key = { .netns_cookie = netns };
	struct reaper_contact fresh = { .first_ns = now }, *c;
	struct reaper_history *h;
	__u32 zero = 0;

	h = bpf_map_lookup_elem(&reaper_history, &zero);
	if (!h)
		return;
	if (netns == h->host_netns) {
		host_contact(addr, now, udp);
		return;
	}
	__builtin_memcpy(key.addr, addr, 16);
	c = bpf_map_lookup_elem(&reaper_contacts, &key);
	if (c) {
		mark(c, udp);
		return;
	}
	mark(&fresh, udp);
	if (bpf_map_update_elem(&reaper_contacts, &key, &fresh, BPF_NOEXIST) == 0) {
		__sync_fetch_and_add(&h->contacts_inserted, 1);
		return;
	}
	/* Another CPU inserted it first (mark our protocol there), or the table is full. */
	c = bpf_map_lookup_elem(&reaper_contacts, &key);
	if (c)
		mark(c, udp);
	else
		__sync_fetch_and_add(&h->contacts_lost, 1);
}

static __always_inline void v4_mapped(__u8 out[16], __u32 ip4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &ip4, 4);
}

static __always_inline void on_connect(struct bpf_sock_addr *ctx, const __u8 addr[16])
{
	__u64 now = bpf_ktime_get_ns();

	if (ctx->sk)
		stamp(ctx->sk, now);
	contact(addr, bpf_get_netns_cookie(ctx), now, ctx->protocol == IPPROTO_UDP);
}

SEC("cgroup/connect4")
int reaper_connect4(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];

	v4_mapped(addr, ctx->user_ip4);
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
			v4_mapped((__u8 *)words, ip4);
		} else {
			__u32 a = ctx->remote_ip6[0], b = ctx->remote_ip6[1], c = ctx->remote_ip6[2], d = ctx->remote_ip6[3];

			asm volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
			words[0] = a;
			words[1] = b;
			words[2] = c;
			words[3] = d;
		}
		contact((__u8 *)words, bpf_get_netns_cookie(ctx), now, false);
	}
	return 1;
}

/* ---- Census: the host's existing sockets into the host contact table ------------------------ */

static __always_inline int census(struct sock_common *sk, bool udp)
{
	struct reaper_history *h;
	__u32 zero = 0;
	__u8 addr[16];
	__u8 state = sk->skc_state;

	h = bpf_map_lookup_elem(&reaper_history, &zero);
	if (!h || sk->skc_net.net->net_cookie != h->host_netns)
		return 0;
	if (sk->skc_family != AF_INET && sk->skc_family != AF_INET6)
		return 0;
	/* What a sweep could destroy, and nothing else: see visit(). */
	if (!udp && (state == TCP_LISTEN || state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV))
		return 0;
	if (udp && (state != TCP_ESTABLISHED || sk->skc_dport == 0))
		return 0;
	addr_of(sk, true, addr);
	host_contact(addr, bpf_ktime_get_ns(), udp);
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
