/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI between the socket programs — the sweep (bpf/iter/), the socket hooks (bpf/hooks/) and
 * the host census (bpf/iter/) — and the daemon. The C# twins live in src/Reaper/Bpf/SweepAbi.cs;
 * a test compares both layouts, and every constant, against the compiled objects' BTF, so every
 * byte is spelled out, padding included. Constants are enumerators, not macros, for that reason:
 * an enum reaches BTF, a #define does not.
 *
 * Addresses are 16 bytes in network order; IPv4 is stored v4-mapped (::ffff:a.b.c.d), so one
 * rule for 10.1.2.3 matches both AF_INET sockets and AF_INET6 sockets talking to ::ffff:10.1.2.3.
 */
#ifndef REAPER_SWEEP_H
#define REAPER_SWEEP_H

enum reaper_sweep_sizes {
	/* An address in the 16-byte space, in bytes and in bits (the full prefix length). */
	REAPER_ADDR_LEN = 16,
	REAPER_ADDR_BITS = 128,
	/* Rules one remote prefix can carry; a trie entry lists every rule whose prefix covers it. */
	REAPER_RULES_PER_PREFIX = 64,
	/* Capacity of the rule array and the prefix trie (user space checks before writing). */
	REAPER_RULES_MAX = 16384,
	/* Capacity of the contact table: (remote address, namespace) pairs seen at connect or accept. */
	REAPER_CONTACTS_MAX = 131072,
	/* Capacity of the host's contact table: remote addresses of the host namespace's sockets. */
	REAPER_HOST_CONTACTS_MAX = 65536,
	/* Capacity of the set of namespaces that existed before the record started (history unknown). */
	REAPER_NETNS_BEFORE_MAX = 65536,
	/*
	 * The TCP socket index: slots per (namespace, remote address); slot REAPER_INDEX_SLOTS marks a
	 * pair that had more sockets at once (user space then walks that namespace).
	 */
	REAPER_INDEX_SLOTS = 16,
	/* Capacity of the TCP socket index, in sockets. */
	REAPER_INDEX_MAX = 262144,
};

/* reaper_rule.protocols (SweepProtocols in C#). */
enum reaper_proto_bits {
	REAPER_PROTO_TCP = 1 << 0,
	REAPER_PROTO_UDP = 1 << 1,
};

/* reaper_record.result: 0 destroyed, negative -errno from the destroy, or one of these. */
enum reaper_result {
	REAPER_RESULT_DESTROYED = 0,
	REAPER_RESULT_DRY_RUN = 1,
	REAPER_RESULT_HELD_BACK = 2,
	/* sock_diag mode: matched and holding a slot of the cap; user space destroys it over netlink. */
	REAPER_RESULT_PENDING = 3,
	/* Written by user space: the socket closed or changed before netlink reached it; its slot went back. */
	REAPER_RESULT_GONE = 4,
};

/*
 * How the sweep destroys a match: the sweep object's reaper_destroy_mode, set by user space
 * before load. sock_diag mode serves kernels without the bpf_sock_destroy kfunc (< 6.5).
 */
enum reaper_destroy_mode {
	REAPER_DESTROY_KFUNC = 0,
	REAPER_DESTROY_SOCK_DIAG = 1,
};

/* LPM trie key: the remote prefix. */
struct reaper_prefix_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* LPM trie value: indexes into reaper_rules, in rule order. */
struct reaper_rule_set {
	__u32 count;
	__u32 rules[REAPER_RULES_PER_PREFIX];
};

struct reaper_rule {
	__u8 local_addr[16];
	__u32 id;
	/* Bit (1 << state) for each TCP state the rule accepts. */
	__u16 tcp_states;
	/* 0..128 in the 16-byte space; 0 = any local address. */
	__u8 local_prefixlen;
	/* REAPER_PROTO_* bits. */
	__u8 protocols;
	/* Inclusive, host order; 0..65535 = any. */
	__u16 remote_port_min;
	__u16 remote_port_max;
	__u16 local_port_min;
	__u16 local_port_max;
	/* Only sockets born before this CLOCK_MONOTONIC time (ns) match; 0 = any age. */
	__u64 born_before_ns;
};

/* One per matched socket, written with bpf_seq_write. */
struct reaper_record {
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u64 sock_cookie;
	__u64 netns_cookie;
	__u32 rule_id;
	__u32 uid;
	__s32 result;
	__u16 local_port;
	__u16 remote_port;
	__u8 protocol;
	__u8 family;
	__u8 state;
	__u8 _pad0;
	/* SO_BINDTODEVICE's ifindex, 0 if unbound: netlink finds a bound socket only by it. */
	__u32 bound_dev_if;
};

/* Per-CPU counters of one sweep; user space zeroes them before and sums them after. */
struct reaper_stats {
	__u64 scanned_tcp;
	__u64 scanned_udp;
	__u64 matched;
	__u64 destroyed;
	__u64 failed;
	__u64 held_back;
	__u64 dry_run;
};

/*
 * Socket storage: when the socket became what a sweep judges — a UDP socket when it was last
 * connected, a TCP socket when it reached ESTABLISHED (connect() time until then).
 * bpf_ktime_get_ns, CLOCK_MONOTONIC.
 */
struct reaper_birth {
	__u64 born_ns;
	/* The socket's slot in the TCP socket index, plus one (0: not there), so its hooks find it at once. */
	__u32 index_slot;
	__u32 pad;
};

/* Contact table key: a socket in namespace netns_cookie connected to, or accepted from, addr. */
struct reaper_contact_key {
	__u8 addr[16];
	__u64 netns_cookie;
};

/*
 * Contact table value: when the first contact was recorded and which protocols made one, so a
 * targeted sweep runs only the iterators a namespace needs. Each flag is set to 1 by a plain
 * store, never cleared: racing hooks agree without atomics. Anything not UDP counts as TCP.
 */
struct reaper_contact {
	__u64 first_ns;
	__u8 tcp;
	__u8 udp;
	__u8 pad[6];
};

/*
 * Host contact table value (key: the 16-byte remote address). The host's sockets are recorded
 * apart from the namespaces': the host lives for ever, so its entries are kept only while it has
 * a socket there. last_ns is when a hook or a census last saw one; a census (user space walks the
 * host's sockets with the census iterators) drops the entries it did not refresh. Flags as in
 * struct reaper_contact.
 */
struct reaper_host_contact {
	__u64 last_ns;
	__u8 tcp;
	__u8 udp;
	__u8 pad[6];
};

/*
 * The contact table's bookkeeping (a one-entry array, pinned with it). User space sets
 * host_netns (whose contacts go to the host contact table instead) and record_started_ns
 * (when the hooks began a gap-free record; 0: never); the hooks count what they could not record.
 * Namespace cookies are unique but not ordered (the kernel hands them out in per-CPU batches), so
 * the namespaces that existed when the record started are listed in reaper_netns_before.
 */
struct reaper_history {
	__u64 host_netns;
	__u64 record_started_ns;
	__u64 contacts_inserted;
	__u64 contacts_lost;
	/* TCP sockets the index could not hold (it was full): user space then walks every namespace. */
	__u64 index_lost;
};

/*
 * The TCP socket index (reaper_tcp_index, bpf/include/reaper_index.h): every TCP socket a sweep
 * may judge, by namespace and remote address (16 bytes, IPv4 v4-mapped) and a slot, so a targeted
 * sweep finds the sockets to an address without walking the kernel's host-wide established hash
 * once per namespace. The socket hooks add a socket when it connects or is accepted, keep its
 * state, and delete it when it closes; the census adds the sockets older than the hooks.
 */
struct reaper_index_key {
	__u8 addr[16];
	__u64 netns_cookie;
	__u32 slot;
	__u32 pad;
};

struct reaper_index_entry {
	__u8 local_addr[16];
	__u64 sock_cookie;
	/* As reaper_birth.born_ns; 0 for a socket the census added (older than the hooks: old). */
	__u64 born_ns;
	/* Host order. */
	__u16 local_port;
	__u16 remote_port;
	__u8 family;
	/* SYN_SENT or ESTABLISHED as the hooks last saw it (they follow a socket only to its close); the census's as it walked. */
	__u8 state;
	__u8 pad[2];
	/* SO_BINDTODEVICE's ifindex, 0 if unbound: netlink finds a bound socket only by it. */
	__u32 bound_dev_if;
	__u32 pad2;
};

#endif
