/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel types SocketReaper's BPF programs read, written by hand instead of a vmlinux.h
 * dumped from the build host: the build must not depend on the running kernel. Every struct is
 * marked preserve_access_index, so libbpf relocates each field access against the target
 * kernel's BTF at load time (CO-RE); only the fields we read are declared, and their order and
 * offsets here do not matter.
 */
#ifndef REAPER_VMLINUX_H
#define REAPER_VMLINUX_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u32 __wsum;
typedef __u32 uid_t;
typedef _Bool bool;
typedef struct {
	__s64 counter;
} atomic64_t;
#define true 1
#define false 0

/* UAPI constants (stable ABI, values from include/uapi/linux/bpf.h). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
	BPF_F_NO_PREALLOC = 1U << 0,
	BPF_F_RDONLY_PROG = 1U << 7,
};

enum {
	AF_INET = 2,
	AF_INET6 = 10,
};

/* include/uapi/linux/in.h */
enum {
	IPPROTO_TCP = 6,
	IPPROTO_UDP = 17,
};

/* include/net/tcp_states.h */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT = 2,
	TCP_SYN_RECV = 3,
	TCP_FIN_WAIT1 = 4,
	TCP_FIN_WAIT2 = 5,
	TCP_TIME_WAIT = 6,
	TCP_CLOSE = 7,
	TCP_CLOSE_WAIT = 8,
	TCP_LAST_ACK = 9,
	TCP_LISTEN = 10,
	TCP_CLOSING = 11,
	TCP_NEW_SYN_RECV = 12,
};

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
};

struct net {
	__u64 net_cookie;
} __attribute__((preserve_access_index));

/* struct net before 5.12: the cookie was an atomic64_t, made on first use (0 until then). */
struct net___atomic {
	atomic64_t net_cookie;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	int skc_bound_dev_if;
	possible_net_t skc_net;
	/* Made on first use (0 until then); bpf_get_socket_cookie makes it. */
	atomic64_t skc_cookie;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct udp_sock {
	struct inet_sock inet;
} __attribute__((preserve_access_index));

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
	uid_t uid;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
	uid_t uid;
	int bucket;
} __attribute__((preserve_access_index));

/*
 * UAPI: the head of the tc/tcx/netkit program context (include/uapi/linux/bpf.h). The verifier
 * rewrites these fixed offsets; only the head we read is declared.
 */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
	__u32 napi_id;
	__u32 family;
	__u32 remote_ip4;
	__u32 local_ip4;
	__u32 remote_ip6[4];
	__u32 local_ip6[4];
	__u32 remote_port;
	__u32 local_port;
	__u32 data_meta;
	__u64 flow_keys;
	__u64 tstamp;
	__u32 wire_len;
	__u32 gso_segs;
	/* struct bpf_sock *, the sending socket (kernel >= 5.1); a union so it is 8 bytes on any target. */
	union {
		struct bpf_sock *sk;
		__u64 : 64;
	} __attribute__((aligned(8)));
};

enum {
	ETH_P_IP = 0x0800,
	ETH_P_IPV6 = 0x86DD,
};

/* TCX and netkit verdicts (include/uapi/linux/bpf.h, enum tcx_action_base / netkit_action). */
enum {
	TCX_NEXT = -1,
	TCX_PASS = 0,
	TCX_DROP = 2,
	TCX_REDIRECT = 7,
	NETKIT_NEXT = -1,
	NETKIT_PASS = 0,
	NETKIT_DROP = 2,
	NETKIT_REDIRECT = 7,
};

/*
 * UAPI: the program contexts of cgroup/connect4|6 and sockops, up to the socket pointer (fixed
 * offsets the verifier rewrites). Of bpf_sock only its first field is read (the socket index);
 * otherwise it is handed to helpers.
 */
struct bpf_sock {
	__u32 bound_dev_if;
};

#define REAPER_MD_PTR(type, name) union { type name; __u64 : 64; } __attribute__((aligned(8)))

struct bpf_sock_addr {
	__u32 user_family;
	__u32 user_ip4;
	__u32 user_ip6[4];
	__u32 user_port;
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 msg_src_ip4;
	__u32 msg_src_ip6[4];
	REAPER_MD_PTR(struct bpf_sock *, sk);
};

struct bpf_sock_ops {
	__u32 op;
	union {
		__u32 args[4];
		__u32 reply;
		__u32 replylong[4];
	};
	__u32 family;
	__u32 remote_ip4;
	__u32 local_ip4;
	__u32 remote_ip6[4];
	__u32 local_ip6[4];
	__u32 remote_port;
	__u32 local_port;
	__u32 is_fullsock;
	__u32 snd_cwnd;
	__u32 srtt_us;
	__u32 bpf_sock_ops_cb_flags;
	__u32 state;
	__u32 rtt_min;
	__u32 snd_ssthresh;
	__u32 rcv_nxt;
	__u32 snd_nxt;
	__u32 snd_una;
	__u32 mss_cache;
	__u32 ecn_flags;
	__u32 rate_delivered;
	__u32 rate_interval_us;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 total_retrans;
	__u32 segs_in;
	__u32 data_segs_in;
	__u32 segs_out;
	__u32 data_segs_out;
	__u32 lost_out;
	__u32 sacked_out;
	__u32 sk_txhash;
	__u64 bytes_received;
	__u64 bytes_acked;
	REAPER_MD_PTR(struct bpf_sock *, sk);
};

/* enum bpf_sock_ops_op values we handle, the state callback's flag, and bpf_sk_storage_get's create flag. */
enum {
	BPF_SOCK_OPS_TCP_CONNECT_CB = 3,
	BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB = 4,
	BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB = 5,
	BPF_SOCK_OPS_STATE_CB = 10,
	BPF_SOCK_OPS_STATE_CB_FLAG = 1 << 2,
	BPF_SK_STORAGE_GET_F_CREATE = 1ULL << 0,
};

enum {
	SOCK_STREAM = 1,
	SOCK_DGRAM = 2,
};

/*
 * The kernel's struct sk_buff behind a tc/tcx/netkit context (bpf_cast_to_kern_ctx): only the
 * sending socket, which survives the veth/netkit crossing for traffic an endpoint originates.
 */
struct sk_buff {
	struct sock *sk;
	struct net_device *dev;
} __attribute__((preserve_access_index));

/* Only its size (netdev_priv follows it) and the index are used. */
struct net_device {
	int ifindex;
} __attribute__((preserve_access_index));

/* drivers/net/netkit.c's private part of a netkit device; present only with CONFIG_NETKIT. */
struct netkit {
	struct net_device *peer;
} __attribute__((preserve_access_index));

/* include/linux/netdevice.h: private data starts at ALIGN(sizeof(struct net_device), NETDEV_ALIGN). */
#define REAPER_NETDEV_ALIGN 32

/* kfunc, kernel >= 6.3: the kernel object behind a program context. */
extern void *bpf_cast_to_kern_ctx(void *obj) __attribute__((section(".ksyms")));

/* kfunc, kernel >= 6.5; callable from iter/tcp and iter/udp programs only. */
extern int bpf_sock_destroy(struct sock_common *sk) __attribute__((section(".ksyms")));

#endif
