/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the socket hooks (bpf/hooks/) and the census (bpf/iter/) both use: the contact table's
 * bookkeeping (reaper_history: which namespace is the host), the namespaces' contact table, the
 * host's with its overflow counter, and the functions that record a contact. Both objects declare
 * the maps from here; at run time they share one of each — the census object is loaded reusing
 * the hooks object's maps (CensusObject).
 */
#ifndef REAPER_HOST_H
#define REAPER_HOST_H

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct reaper_history);
} reaper_history SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REAPER_CONTACTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct reaper_contact_key);
	__type(value, struct reaper_contact);
} reaper_contacts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REAPER_HOST_CONTACTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct reaper_prefix_key);
	__type(value, struct reaper_host_contact);
} reaper_host_contacts SEC(".maps");

/*
 * Host contacts that did not fit (one counter); user space zeroes it when a census starts. A map,
 * not a global: a global lives in its object's own .bss, and both objects count here.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} reaper_host_contacts_lost SEC(".maps");

static __always_inline struct reaper_history *reaper_history_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&reaper_history, &zero);
}

/* The host has (had, at now) a socket to addr. Keyed like the rule trie, full length. */
static __always_inline void reaper_host_contact(const __u8 addr[REAPER_ADDR_LEN], __u64 now, bool udp)
{
	struct reaper_prefix_key key = { .prefixlen = REAPER_ADDR_BITS };
	struct reaper_host_contact fresh = { .last_ns = now }, *c;

	__builtin_memcpy(key.addr, addr, REAPER_ADDR_LEN);
	c = bpf_map_lookup_elem(&reaper_host_contacts, &key);
	if (!c) {
		reaper_mark(&fresh.tcp, &fresh.udp, udp);
		if (bpf_map_update_elem(&reaper_host_contacts, &key, &fresh, BPF_NOEXIST) == 0)
			return;
		c = bpf_map_lookup_elem(&reaper_host_contacts, &key);
		if (!c) {
			__u32 zero = 0;
			__u64 *lost = bpf_map_lookup_elem(&reaper_host_contacts_lost, &zero);

			if (lost)
				__sync_fetch_and_add(lost, 1);
			return;
		}
	}
	if (c->last_ns < now)
		c->last_ns = now;
	reaper_mark(&c->tcp, &c->udp, udp);
}

/*
 * A socket in namespace netns had (at now) a connection to addr: the host's own go to the host
 * table, any other namespace's to reaper_contacts (its first contact with addr only inserts; a
 * later one adds its protocol). What does not fit is counted in the bookkeeping: a hole in the
 * record, which makes every targeted sweep full.
 */
static __always_inline void reaper_contact(const __u8 addr[REAPER_ADDR_LEN], __u64 netns, __u64 now, bool udp)
{
	struct reaper_contact_key key = { .netns_cookie = netns };
	struct reaper_contact fresh = { .first_ns = now }, *c;
	struct reaper_history *h = reaper_history_get();

	if (!h)
		return;
	if (netns == h->host_netns) {
		reaper_host_contact(addr, now, udp);
		return;
	}
	__builtin_memcpy(key.addr, addr, REAPER_ADDR_LEN);
	c = bpf_map_lookup_elem(&reaper_contacts, &key);
	if (c) {
		reaper_mark(&c->tcp, &c->udp, udp);
		return;
	}
	reaper_mark(&fresh.tcp, &fresh.udp, udp);
	if (bpf_map_update_elem(&reaper_contacts, &key, &fresh, BPF_NOEXIST) == 0) {
		__sync_fetch_and_add(&h->contacts_inserted, 1);
		return;
	}
	/* Another CPU inserted it first (mark our protocol there), or the table is full. */
	c = bpf_map_lookup_elem(&reaper_contacts, &key);
	if (c)
		reaper_mark(&c->tcp, &c->udp, udp);
	else
		__sync_fetch_and_add(&h->contacts_lost, 1);
}

#endif
