/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The datapath object's maps and globals, apart from its programs (datapath.bpf.c) so that the
 * entry points and their helpers read on their own. Included once, by datapath.bpf.c only: every
 * definition here is an instance in that object. Names and sizes are the C# side's
 * (DatapathObject, DatapathAbi), checked against this object's BTF by the tests.
 */
#ifndef REAPER_DATAPATH_MAPS_H
#define REAPER_DATAPATH_MAPS_H

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, REAPER_DEV_STATS_MAX);
	__type(key, struct reaper_stats_key);
	__type(value, struct reaper_dev_stats);
} reaper_dev_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REAPER_SLOTS);
	__type(key, __u32);
	__type(value, struct reaper_slot);
} reaper_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REAPER_ENDPOINTS_MAX);
	__type(key, __u32);
	__type(value, struct reaper_endpoint);
} reaper_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, REAPER_OWNERS_MAX);
	__type(key, __u8[16]);
	__type(value, struct reaper_owner);
} reaper_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, REAPER_FLOWS_MAX);
	__type(key, struct reaper_flow_key);
	__type(value, __u64);
} reaper_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REAPER_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct reaper_backend_key);
	__type(value, __u8);
} reaper_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, REAPER_SERVICE_FLOWS_MAX);
	__type(key, struct reaper_service_flow_key);
	__type(value, __u64);
} reaper_service_flows SEC(".maps");

/*
 * Written and read by user space only; pinned with the owner table it qualifies. Entry 0: the last
 * moment (bpf_ktime_get_ns) the daemon knew every owner in reaper_owners to be on a device that
 * was still there. A restarted daemon dates the loss of a device that went while it was down
 * from here, so it never counts a socket made after that moment as the gone owner's.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} reaper_checked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, REAPER_EVENTS_BYTES);
} reaper_events SEC(".maps");

/* Events the ring buffer had no room for; user space schedules a catch-up when it grows. */
__u64 reaper_events_lost;
/*
 * New flow entries ever inserted. LRU eviction is silent, so once this passes the table's
 * capacity the daemon treats flow history as incomplete (and sweeps everywhere).
 */
__u64 reaper_flows_inserted;
/* Looks at packets from an address routed to another device than the one they came from (not a move). */
__u64 reaper_moves_against_route;
/*
 * Bumped whenever an owner changes (here, or by user space editing the owner table): a device
 * slot's remembered (source, destination) is trusted only while this has not moved.
 */
__u32 reaper_generation;
/* Entries in reaper_backends (user space keeps it): with none, nothing looks for service flows. */
__u32 reaper_backend_count;
/* Service flow entries ever inserted; as with flows, past the capacity LRU eviction may have lost some. */
__u64 reaper_service_flows_inserted;

struct reaper_event reaper_abi_event;
struct reaper_slot reaper_abi_slot;
struct reaper_owner reaper_abi_owner;
struct reaper_flow_key reaper_abi_flow_key;
struct reaper_backend_key reaper_abi_backend_key;
struct reaper_service_flow_key reaper_abi_service_flow_key;
REAPER_ABI(enum reaper_datapath_sizes, reaper_abi_sizes);
REAPER_ABI(enum reaper_hook, reaper_abi_hook);
REAPER_ABI(enum reaper_event_kind, reaper_abi_event_kind);

#endif /* REAPER_DATAPATH_MAPS_H */
