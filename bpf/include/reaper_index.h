/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The TCP socket index (struct reaper_index_key/entry in reaper_sweep.h): the socket hooks
 * (bpf/hooks/) add and follow the sockets they see connect or be accepted, the census
 * (bpf/iter/census.bpf.c) adds those older than the hooks. Both objects declare the map from here;
 * at run time they hold one — the census object is loaded reusing the hooks object's, which the
 * daemon pins with the rest of the record. User space reads it (a lookup per slot) for a targeted
 * sweep and destroys what it finds with sock_diag by tuple and cookie.
 *
 * A socket takes the first free slot of its (namespace, remote address); BPF_NOEXIST makes the
 * claim atomic between CPUs. When all are taken the pair is marked overflowed (the extra slot) and
 * user space walks that namespace instead; when the map is full, index_lost in reaper_history
 * makes it walk every namespace.
 */
#ifndef REAPER_INDEX_H
#define REAPER_INDEX_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REAPER_INDEX_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct reaper_index_key);
	__type(value, struct reaper_index_entry);
} reaper_tcp_index SEC(".maps");

enum { REAPER_EEXIST = 17 };

/* The index entry of the socket with this cookie under key (its slot set), or NULL. */
static __always_inline struct reaper_index_entry *reaper_index_find(struct reaper_index_key *key, __u64 cookie)
{
	for (__u32 i = 0; i < REAPER_INDEX_SLOTS; i++) {
		struct reaper_index_entry *e;

		key->slot = i;
		e = bpf_map_lookup_elem(&reaper_tcp_index, key);
		if (e && e->sock_cookie == cookie)
			return e;
	}
	return NULL;
}

/* Adds entry under key's (namespace, address) in the first free slot; see the top of this file. */
static __always_inline void reaper_index_add(struct reaper_index_key *key, const struct reaper_index_entry *entry,
					     struct reaper_history *h)
{
	long err = 0;

	for (__u32 i = 0; i < REAPER_INDEX_SLOTS; i++) {
		key->slot = i;
		err = bpf_map_update_elem(&reaper_tcp_index, key, entry, BPF_NOEXIST);
		if (err == 0)
			return;
		if (err != -REAPER_EEXIST)
			break;
	}
	if (err == -REAPER_EEXIST) {
		key->slot = REAPER_INDEX_SLOTS;
		err = bpf_map_update_elem(&reaper_tcp_index, key, entry, BPF_ANY);
		if (err == 0)
			return;
	}
	if (h)
		__sync_fetch_and_add(&h->index_lost, 1);
}

/* Deletes every entry of the socket with this cookie under key's (namespace, address). */
static __always_inline void reaper_index_remove(struct reaper_index_key *key, __u64 cookie)
{
	for (__u32 i = 0; i < REAPER_INDEX_SLOTS; i++) {
		struct reaper_index_entry *e;

		key->slot = i;
		e = bpf_map_lookup_elem(&reaper_tcp_index, key);
		if (e && e->sock_cookie == cookie)
			bpf_map_delete_elem(&reaper_tcp_index, key);
	}
}

#endif
