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
 * claim atomic between CPUs. The hooks keep the slot in the socket's birth storage
 * (struct reaper_birth), so following it to its close is one lookup. When all are taken the pair is marked overflowed (the extra slot) and
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

/* The index entry of the socket with this cookie under key (its slot set), or NULL: the census's search. */
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

/*
 * Adds entry under key's (namespace, address) in the first free slot; see the top of this file.
 * Returns the slot plus one, 0 when the socket is not in the index (the pair overflowed, or the
 * map is full).
 */
static __always_inline __u32 reaper_index_add(struct reaper_index_key *key, const struct reaper_index_entry *entry,
					      struct reaper_history *h)
{
	long err = 0;

	for (__u32 i = 0; i < REAPER_INDEX_SLOTS; i++) {
		key->slot = i;
		err = bpf_map_update_elem(&reaper_tcp_index, key, entry, BPF_NOEXIST);
		if (err == 0)
			return i + 1;
		if (err != -REAPER_EEXIST)
			break;
	}
	if (err == -REAPER_EEXIST) {
		key->slot = REAPER_INDEX_SLOTS;
		err = bpf_map_update_elem(&reaper_tcp_index, key, entry, BPF_ANY);
		if (err == 0)
			return 0;
	}
	if (h)
		__sync_fetch_and_add(&h->index_lost, 1);
	return 0;
}

#endif
