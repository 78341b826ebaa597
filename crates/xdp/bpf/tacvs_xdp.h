/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The data plane's layout, shared by the XDP program (tacvs_xdp.c) and the
 * Rust loader: build.rs turns every `#define TACVS_...` below into a Rust
 * constant, and the Rust `#[repr(C)]` mirrors of the structs are checked
 * against the maps' key and value sizes when the object is opened.
 *
 * Byte order: addresses and ports are stored as on the wire (network order);
 * everything else is host order.
 */
#ifndef TACVS_XDP_H
#define TACVS_XDP_H

/* Capacities. A service's Maglev table lives in an inner array of
 * TACVS_TABLE_CAPACITY u32: element 0 is the table size m (a prime), elements
 * 1..=m the real ids. 65537 holds the director's table for up to 512 servers
 * (1,000 slots per server up to 64, then 65521, the largest prime that fits). */
#define TACVS_MAX_SERVICES 64
#define TACVS_MAX_REALS 4096
#define TACVS_TABLE_CAPACITY 65537
#define TACVS_FLOW_ENTRIES 262144

/* tacvs_service.flags */
#define TACVS_HASH_SOURCE_PORT 1 /* hash the source port as well as the address */

/* Address families in keys (not AF_*: fixed values of this layout). */
#define TACVS_FAMILY_V4 4
#define TACVS_FAMILY_V6 6

/* Indices of the global per-CPU `stats` array. */
#define TACVS_STAT_VIP_FRAGMENT 0   /* fragment to a VIP: dropped */
#define TACVS_STAT_VIP_NOT_TCP 1    /* other protocol (or IPv6 extension header) to a VIP: passed */
#define TACVS_STAT_NO_SERVER 2      /* new flow for a service with no server in its table: dropped */
#define TACVS_STAT_INACTIVE 3       /* VIP packet or ARP while inactive (backup): passed */
#define TACVS_STAT_OTHER_MAC 4      /* VIP packet not addressed to our MAC (flooded): passed */
#define TACVS_STAT_ARP_REPLIES 5    /* ARP requests for a VIP answered */
#define TACVS_STAT_FLOW_STALE 6     /* flow entry naming a removed real: rescheduled */
#define TACVS_STAT_FLOW_INSERT_FAILED 7
#define TACVS_STAT_COUNT 8

#ifdef __BPF__
/* 40 bytes. IPv4 addresses sit in word 0, words 1..3 zero. */
struct tacvs_flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u16 pad;
};

/* The real a flow was given, and that real's generation when it was: a real
 * removed (or its id reused) no longer matches, and the flow is scheduled
 * again. */
struct tacvs_flow {
	__u32 real;
	__u32 gen;
};

/* 20 bytes. */
struct tacvs_service_key {
	__u32 vip[4];
	__u16 port;
	__u8 family;
	__u8 proto;
};

struct tacvs_service {
	__u32 id;    /* index into `tables` and `service_stats` */
	__u32 flags; /* TACVS_HASH_* */
};

/* 20 bytes: the VIP addresses (ARP answers, fragments, non-TCP). */
struct tacvs_vip_key {
	__u32 addr[4];
	__u32 family;
};

/* 16 bytes. */
struct tacvs_real {
	__u8 mac[6];
	__u16 pad;
	__u32 service; /* the service id this real belongs to */
	__u32 gen;
};

struct tacvs_counters {
	__u64 packets;
	__u64 bytes;     /* IP bytes (from the IP header to the end of the frame) */
	__u64 new_flows; /* flow-table entries made */
};

/* 16 bytes; written before the program is made active. */
struct tacvs_config {
	__u8 mac[6];       /* the attached interface's MAC: our address for VIP frames */
	__u8 out_mac[6];   /* source MAC when out_ifindex is set */
	__u32 out_ifindex; /* 0: XDP_TX back out of the attached interface */
};
#endif

#endif
