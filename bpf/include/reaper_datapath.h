/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The datapath's ABI between bpf/datapath/datapath.bpf.c and the daemon (C# twins in
 * src/Reaper/Bpf/DatapathAbi.cs, layout-checked against BTF). Addresses are 16 bytes, IPv4
 * v4-mapped, as in reaper_sweep.h.
 */
#ifndef REAPER_DATAPATH_H
#define REAPER_DATAPATH_H

/* Constants are enumerators, not macros, so they reach BTF, where a test checks the C# twins. */
enum reaper_datapath_sizes {
	/* Capacity of the owner table (IPs learned) and of the flow table (endpoint -> remote IP). */
	REAPER_OWNERS_MAX = 65536,
	REAPER_FLOWS_MAX = 262144,
	/*
	 * Per-CPU device slots, direct-mapped by ifindex: slot = ifindex % REAPER_SLOTS. User space
	 * gives a managed device its slot when the slot is free; a device whose slot is taken counts
	 * in the reaper_dev_stats hash instead (slower, same figures).
	 */
	REAPER_SLOTS = 1024,
	/* Capacity of the overflow counters (reaper_dev_stats) and of the managed endpoint set. */
	REAPER_DEV_STATS_MAX = 4096,
	REAPER_ENDPOINTS_MAX = 4096,
	/* Between owner-table checks on a device's fast path, at most this many packets (a power of 2). */
	REAPER_RECHECK_EVERY = 256,
	/* Capacity of the service backend set and of the service flow table (client flow -> backend). */
	REAPER_BACKENDS_MAX = 16384,
	REAPER_SERVICE_FLOWS_MAX = 65536,
	/* The event ring's size in the object; user space sets its own before load. */
	REAPER_EVENTS_BYTES = 256 * 1024,
};

/* Hooks, the second half of the stats key and the index of reaper_slot's counters. */
enum reaper_hook {
	REAPER_HOOK_INGRESS = 0,
	REAPER_HOOK_EGRESS = 1,
};

/* reaper_event.kind */
enum reaper_event_kind {
	REAPER_EVENT_NEW_IP = 1,
	REAPER_EVENT_IP_MOVED = 2,
};

struct reaper_stats_key {
	__u32 ifindex;
	__u32 hook;
};

/* Per CPU. */
struct reaper_dev_stats {
	__u64 packets;
	__u64 bytes;
};

/*
 * Per CPU, one per slot: the device's counters, and the last (source, destination) it sent,
 * already learned while reaper_generation had the value in `generation` — a packet that repeats
 * them skips the owner and flow tables.
 */
struct reaper_slot {
	__u32 ifindex;
	__u32 generation;
	__u64 packets[2];
	__u64 bytes[2];
	__u8 src[16];
	__u8 dst[16];
	__u32 hits;
	__u32 _pad0;
};

/*
 * Written by user space for every device the daemon manages; its presence is what counts. The
 * flags are 0 (none defined), kept so the pinned map's value size stays what earlier builds pinned.
 */
struct reaper_endpoint {
	__u32 flags;
	__u32 _pad0;
};

/*
 * Owner table value: which endpoint device last sent from an address, and the network namespace
 * (cookie) of the socket that sent it — 0 when the endpoint forwarded the packet rather than
 * originated it. Times are bpf_ktime_get_ns (CLOCK_MONOTONIC). `routed` is set by user space
 * when a host route to the address leads to this device: the route decides, and a packet from
 * another device with this source (an old endpoint still sending as its sockets close) does not
 * move it — only user space does, when the route moves.
 */
struct reaper_owner {
	__u32 ifindex;
	__u8 mac[6];
	__u8 routed;
	__u8 _pad0;
	__u64 netns_cookie;
	__u64 first_seen_ns;
	__u64 last_seen_ns;
};

/* Flow table key: an endpoint device talked to a remote address. */
struct reaper_flow_key {
	__u32 ifindex;
	__u8 remote[16];
};

/* A service backend, as user space declares it: address, port (host order), IPPROTO_UDP/TCP. */
struct reaper_backend_key {
	__u8 addr[16];
	__u16 port;
	__u8 protocol;
	__u8 _pad0;
};

/*
 * Service flow table key: a client (address, port) whose packets reached a backend through a
 * managed device — after any NAT on the way, so a socket connected to a VIP shows here with the
 * backend its flow is pinned to. Ports in host order.
 */
struct reaper_service_flow_key {
	__u8 backend[16];
	__u8 client[16];
	__u16 backend_port;
	__u16 client_port;
	__u8 protocol;
	__u8 _pad0[3];
};

/* Ring-buffer event. */
struct reaper_event {
	__u32 kind;
	__u32 ifindex;
	/* IP_MOVED: the previous owner. */
	__u32 old_ifindex;
	__u32 _pad0;
	__u8 addr[16];
	__u8 mac[6];
	__u8 _pad1[2];
	__u64 netns_cookie;
	__u64 time_ns;
};

#endif
