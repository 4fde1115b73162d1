// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The datapath: TCX and netkit programs on endpoint devices that never change forwarding — every
 * program returns "next" — but count traffic per device and hook, learn which endpoint device
 * owns which source address, remember which remote addresses each endpoint talked to, and tell
 * the daemon over a ring buffer when an address appears or moves to another endpoint.
 *
 * Direction: on a host-side veth, tcx/ingress sees what the endpoint sends and tcx/egress what
 * it receives; skb->ifindex is the host-side device. Netkit runs a device's programs in its own
 * transmit, after switching skb->dev to the other end: the peer hook sees what the endpoint sends
 * (skb->ifindex is then the primary, in the host), the primary hook what the host sends to it
 * (skb->ifindex is then the peer's, in the endpoint's namespace, so the primary is looked up).
 * The "ingress" counters and the learning are always "from the endpoint".
 *
 * On kernels without TCX (before 6.6) the daemon attaches the same tcx programs as cls_bpf
 * filters in direct-action mode: TCX_NEXT is tc's TC_ACT_UNSPEC, "run the next filter", so they
 * behave the same there. The netkit programs are then not loaded.
 */
#include "reaper_vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "reaper_abi.h"
#include "reaper_datapath.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#include "reaper_datapath_maps.h"

struct ethhdr_min {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

/* The device's own slot on this CPU, or NULL when it counts in the overflow hash. */
static __always_inline struct reaper_slot *slot_of(__u32 ifindex)
{
	__u32 index = ifindex & (REAPER_SLOTS - 1);
	struct reaper_slot *slot = bpf_map_lookup_elem(&reaper_slots, &index);

	return slot && slot->ifindex == ifindex ? slot : 0;
}

static __always_inline struct reaper_slot *count_on(__u32 ifindex, __u32 len, __u32 hook)
{
	struct reaper_stats_key key = { .ifindex = ifindex, .hook = hook };
	struct reaper_slot *slot = slot_of(ifindex);
	struct reaper_dev_stats *st;

	if (slot) {
		slot->packets[hook & 1]++;
		slot->bytes[hook & 1] += len;
		return slot;
	}
	st = bpf_map_lookup_elem(&reaper_dev_stats, &key);
	if (!st) {
		struct reaper_dev_stats zero = {};

		bpf_map_update_elem(&reaper_dev_stats, &key, &zero, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&reaper_dev_stats, &key);
		if (!st)
			return 0;
	}
	st->packets++;
	st->bytes += len;
	return 0;
}

static __always_inline struct reaper_slot *count(struct __sk_buff *skb, __u32 hook)
{
	return count_on(skb->ifindex, skb->len, hook);
}

static __always_inline void emit(__u32 kind, __u32 ifindex, __u32 old_ifindex, const __u8 addr[16], const __u8 mac[6], __u64 netns, __u64 now)
{
	struct reaper_event *e = bpf_ringbuf_reserve(&reaper_events, sizeof(*e), 0);

	if (!e) {
		__sync_fetch_and_add(&reaper_events_lost, 1);
		return;
	}
	e->kind = kind;
	e->ifindex = ifindex;
	e->old_ifindex = old_ifindex;
	e->_pad0 = 0;
	__builtin_memcpy(e->addr, addr, 16);
	__builtin_memcpy(e->mac, mac, 6);
	e->_pad1[0] = 0;
	e->_pad1[1] = 0;
	e->netns_cookie = netns;
	e->time_ns = now;
	bpf_ringbuf_submit(e, 0);
}

/*
 * bpf_cast_to_kern_ctx came in 6.2: weak, so the object still loads on older kernels, where only
 * the netkit program (not loaded there: netkit came after TCX) calls it.
 */
extern void *bpf_cast_to_kern_ctx(void *obj) __attribute__((section(".ksyms"), weak));

/* Before 5.12, struct net's cookie was an atomic64_t (set the first time someone asked for it). */
struct net___atomic64 {
	struct {
		__s64 counter;
	} net_cookie;
} __attribute__((preserve_access_index));

/* Bytes of the socket read to reach skc_net: at 48 on x86-64 from 5.10 to 6.18. */
#define REAPER_SK_HEAD 64

/*
 * Set by the daemon before load: 0 where the namespace cookie cannot be read (before 5.12 it is
 * made only when someone asks for it, and tc programs may lack bpf_probe_read_kernel).
 */
volatile const __u32 reaper_sender_netns = 1;

/*
 * The network namespace of the socket that sent this packet, 0 for forwarded traffic. The
 * context's own socket pointer (kernel >= 5.1) is opaque to the program, so the socket's head and
 * then the cookie are read with bpf_probe_read_kernel, field offsets relocated against the running
 * kernel (CO-RE): no bpf_cast_to_kern_ctx (6.2+) needed, so tc on 6.1 learns the namespace as TCX
 * does.
 */
static __always_inline __u64 sender_netns(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	__u64 head[REAPER_SK_HEAD / 8];
	__u64 at = bpf_core_field_offset(struct sock_common, skc_net);
	__u64 net, cookie = 0;

	if (!reaper_sender_netns || !sk || at > REAPER_SK_HEAD - 8 || (at & 7))
		return 0;
	if (bpf_probe_read_kernel(head, at + 8, sk))
		return 0;
	net = head[at / 8];
	if (!net)
		return 0;
	if (bpf_core_field_exists(struct net___atomic64, net_cookie))
		net += bpf_core_field_offset(struct net___atomic64, net_cookie);
	else
		net += bpf_core_field_offset(struct net, net_cookie);
	if (bpf_probe_read_kernel(&cookie, sizeof(cookie), (void *)net))
		return 0;
	return cookie;
}

/* 16 bytes compared as two 8-byte words. */
static __always_inline int same16(const void *a, const void *b)
{
	const __u64 *x = a, *y = b;

	return x[0] == y[0] && x[1] == y[1];
}

/*
 * Parses what an endpoint sent: its source (learned) and destination (a flow). A packet that
 * repeats the device's last (source, destination) on this CPU, with no owner changed since,
 * only has its header read; every REAPER_RECHECK_EVERY-th such packet goes the full way, which
 * keeps last-seen times fresh.
 */
static __always_inline void learn(struct __sk_buff *skb, struct reaper_slot *slot)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr_min *eth = data;
	struct reaper_flow_key flow = { .ifindex = skb->ifindex };
	__u64 src_words[2] = {}, dst_words[2] = {};
	__u8 *src = (__u8 *)src_words, *dst = (__u8 *)dst_words;
	__u64 now, netns;
	__u32 generation;
	struct reaper_owner *owner;
	__u32 ifindex = skb->ifindex;

	if ((void *)(eth + 1) > data_end)
		return;

	if (eth->proto == bpf_htons(ETH_P_IP)) {
		__u8 *ip = (void *)(eth + 1);

		if ((void *)(ip + 20) > data_end)
			return;
		src[10] = 0xff;
		src[11] = 0xff;
		__builtin_memcpy(src + 12, ip + 12, 4);
		dst[10] = 0xff;
		dst[11] = 0xff;
		__builtin_memcpy(dst + 12, ip + 16, 4);
		/* 0.0.0.0 (DHCP and the like) owns nothing. */
		if (!src[12] && !src[13] && !src[14] && !src[15])
			return;
	} else if (eth->proto == bpf_htons(ETH_P_IPV6)) {
		__u8 *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 40) > data_end)
			return;
		__builtin_memcpy(src, ip6 + 8, 16);
		__builtin_memcpy(dst, ip6 + 24, 16);
		/* Link-local and unspecified sources say nothing about service addresses. */
		if ((src[0] == 0xfe && (src[1] & 0xc0) == 0x80) || (!src[0] && !src[1] && !src[15]))
			return;
	} else {
		return;
	}

	generation = reaper_generation;
	if (slot && slot->generation == generation && same16(slot->src, src) && same16(slot->dst, dst) &&
	    (++slot->hits & (REAPER_RECHECK_EVERY - 1)))
		return;

	if (!bpf_map_lookup_elem(&reaper_endpoints, &ifindex))
		return;
	__builtin_memcpy(flow.remote, dst, 16);

	now = bpf_ktime_get_ns();
	owner = bpf_map_lookup_elem(&reaper_owners, src);
	if (!owner) {
		struct reaper_owner fresh = { .ifindex = ifindex, .first_seen_ns = now, .last_seen_ns = now };

		netns = sender_netns(skb);
		fresh.netns_cookie = netns;
		__builtin_memcpy(fresh.mac, eth->src, 6);
		bpf_map_update_elem(&reaper_owners, src, &fresh, BPF_ANY);
		__sync_fetch_and_add(&reaper_generation, 1);
		generation = reaper_generation;
		emit(REAPER_EVENT_NEW_IP, ifindex, 0, src, eth->src, netns, now);
	} else if (owner->ifindex != ifindex && owner->routed) {
		/* The host routes the address elsewhere: the old endpoint still sending, not a move. */
		__sync_fetch_and_add(&reaper_moves_against_route, 1);
	} else if (owner->ifindex != ifindex) {
		__u32 old = owner->ifindex;

		netns = sender_netns(skb);
		owner->ifindex = ifindex;
		owner->netns_cookie = netns;
		owner->first_seen_ns = now;
		owner->last_seen_ns = now;
		__builtin_memcpy(owner->mac, eth->src, 6);
		__sync_fetch_and_add(&reaper_generation, 1);
		generation = reaper_generation;
		emit(REAPER_EVENT_IP_MOVED, ifindex, old, src, eth->src, netns, now);
	} else {
		/* An owner user space set from a host route has no namespace or MAC until it sends. */
		if (!owner->netns_cookie) {
			owner->netns_cookie = sender_netns(skb);
			__builtin_memcpy(owner->mac, eth->src, 6);
		}
		owner->last_seen_ns = now;
	}

	if (!bpf_map_lookup_elem(&reaper_flows, &flow) && bpf_map_update_elem(&reaper_flows, &flow, &now, BPF_NOEXIST) == 0)
		__sync_fetch_and_add(&reaper_flows_inserted, 1);

	if (slot) {
		__builtin_memcpy(slot->src, src, 16);
		__builtin_memcpy(slot->dst, dst, 16);
		slot->generation = generation;
		slot->hits = 0;
	}
}

/*
 * What the host sends to an endpoint: when it goes to a declared service backend, remember which
 * client (address, port) it came from — after NAT, so this is the backend a client's flow to a
 * VIP is pinned to. Only runs while some backend is declared.
 */
static __always_inline void note_service_flow(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr_min *eth = data;
	struct reaper_service_flow_key flow = {};
	struct reaper_backend_key backend = {};
	__u8 *l4, protocol;

	if ((void *)(eth + 1) > data_end)
		return;
	if (eth->proto == bpf_htons(ETH_P_IP)) {
		__u8 *ip = (void *)(eth + 1);
		__u32 header;

		if ((void *)(ip + 20) > data_end)
			return;
		/* Later fragments carry no ports. */
		if ((ip[6] & 0x1f) || ip[7])
			return;
		protocol = ip[9];
		header = (ip[0] & 0x0f) * 4;
		if (header < 20)
			return;
		l4 = ip + header;
		flow.backend[10] = flow.backend[11] = 0xff;
		flow.client[10] = flow.client[11] = 0xff;
		__builtin_memcpy(flow.backend + 12, ip + 16, 4);
		__builtin_memcpy(flow.client + 12, ip + 12, 4);
	} else if (eth->proto == bpf_htons(ETH_P_IPV6)) {
		__u8 *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 40) > data_end)
			return;
		/* Only a TCP or UDP header right after the fixed one; extension headers are passed by. */
		protocol = ip6[6];
		l4 = ip6 + 40;
		__builtin_memcpy(flow.backend, ip6 + 24, 16);
		__builtin_memcpy(flow.client, ip6 + 8, 16);
	} else {
		return;
	}
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return;
	if ((void *)(l4 + 4) > data_end)
		return;

	__builtin_memcpy(backend.addr, flow.backend, 16);
	backend.port = (l4[2] << 8) | l4[3];
	backend.protocol = protocol;
	if (!bpf_map_lookup_elem(&reaper_backends, &backend))
		return;

	flow.backend_port = backend.port;
	flow.client_port = (l4[0] << 8) | l4[1];
	flow.protocol = protocol;
	if (!bpf_map_lookup_elem(&reaper_service_flows, &flow)) {
		__u64 now = bpf_ktime_get_ns();

		if (bpf_map_update_elem(&reaper_service_flows, &flow, &now, BPF_NOEXIST) == 0)
			__sync_fetch_and_add(&reaper_service_flows_inserted, 1);
	}
}

SEC("tcx/ingress")
int reaper_tcx_in(struct __sk_buff *skb)
{
	learn(skb, count(skb, REAPER_HOOK_INGRESS));
	return TCX_NEXT;
}

SEC("tcx/egress")
int reaper_tcx_out(struct __sk_buff *skb)
{
	count(skb, REAPER_HOOK_EGRESS);
	if (reaper_backend_count)
		note_service_flow(skb);
	return TCX_NEXT;
}

/*
 * The primary of the netkit pair whose primary program is running: skb->dev is the peer by then,
 * and the peer's private part points back at the primary. 0 on kernels without netkit.
 */
static __always_inline __u32 netkit_primary_of(struct __sk_buff *skb)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct net_device *peer, *primary = 0;
	unsigned long priv;
	int ifindex = 0;

	if (!bpf_core_type_exists(struct netkit))
		return 0;
	peer = kskb->dev;
	priv = (unsigned long)peer + ((bpf_core_type_size(struct net_device) + REAPER_NETDEV_ALIGN - 1) & ~(REAPER_NETDEV_ALIGN - 1));
	if (bpf_probe_read_kernel(&primary, sizeof(primary), (void *)(priv + bpf_core_field_offset(struct netkit, peer))) || !primary)
		return 0;
	bpf_probe_read_kernel(&ifindex, sizeof(ifindex), (void *)((unsigned long)primary + bpf_core_field_offset(struct net_device, ifindex)));
	return ifindex;
}

SEC("netkit/primary")
int reaper_nk_prim(struct __sk_buff *skb)
{
	__u32 primary = netkit_primary_of(skb);

	if (primary)
		count_on(primary, skb->len, REAPER_HOOK_EGRESS);
	if (reaper_backend_count)
		note_service_flow(skb);
	return NETKIT_NEXT;
}

SEC("netkit/peer")
int reaper_nk_peer(struct __sk_buff *skb)
{
	learn(skb, count(skb, REAPER_HOOK_INGRESS));
	return NETKIT_NEXT;
}
