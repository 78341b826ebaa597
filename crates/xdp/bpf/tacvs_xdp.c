// SPDX-License-Identifier: Apache-2.0
/*
 * tacvs direct-routing data plane (LVS-DR in XDP).
 *
 * A TCP packet to a configured VIP:port addressed to our MAC gets its real
 * server from the flow table (LRU hash of the 5-tuple), or else from the
 * service's Maglev table by a hash of the source address (and port, per
 * service); its destination MAC becomes the real server's, its source MAC
 * ours, and it leaves with XDP_TX (or bpf_redirect to `out_ifindex`). The IP
 * packet is not touched: the real server holds the VIP on `lo` and answers the
 * device directly.
 *
 * Every other frame passes to the kernel untouched, with these deliberate
 * exceptions (docs/design.md, "Direct routing"):
 *   - ARP requests for a VIP are answered here while `state[0]` (active) is 1;
 *   - fragments to a VIP are dropped (a non-first fragment has no ports, so it
 *     cannot follow its flow to the same real server);
 *   - a new flow for a service whose table is empty is dropped (the device
 *     retransmits its SYN; nothing on the director would answer it anyway).
 * Short or malformed headers pass (the kernel drops what is malformed).
 *
 * Every check that bounds a packet read is written against data_end right
 * before the read: the verifier demands it, and every byte here is hostile.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tacvs_xdp.h"

#ifndef TACVS_FLOW_MAP_TYPE
#define TACVS_FLOW_MAP_TYPE BPF_MAP_TYPE_LRU_HASH
#endif
#ifndef TACVS_FLOW_MAP_FLAGS
#define TACVS_FLOW_MAP_FLAGS 0
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TACVS_MAX_SERVICES);
	__type(key, struct tacvs_service_key);
	__type(value, struct tacvs_service);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TACVS_MAX_SERVICES);
	__type(key, struct tacvs_vip_key);
	__type(value, __u32);
} vips SEC(".maps");

/* A hash, not an array: user space replaces an entry whole (an array update
 * is a memcpy a reader could see half done). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TACVS_MAX_REALS);
	__type(key, __u32);
	__type(value, struct tacvs_real);
} reals SEC(".maps");

struct table_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TACVS_TABLE_CAPACITY);
	__type(key, __u32);
	__type(value, __u32);
};

/* Service id -> its current Maglev table. User space fills a spare inner map
 * and swaps it in; the kernel waits for running programs before the update
 * returns (synchronize_rcu for map-in-map updates), so no packet sees a
 * half-built table and the replaced one is free to be refilled. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, TACVS_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct table_inner);
} tables SEC(".maps");

struct {
	__uint(type, TACVS_FLOW_MAP_TYPE);
	__uint(max_entries, TACVS_FLOW_ENTRIES);
	__uint(map_flags, TACVS_FLOW_MAP_FLAGS);
	__type(key, struct tacvs_flow_key);
	__type(value, struct tacvs_flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TACVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct tacvs_counters);
} service_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TACVS_MAX_REALS);
	__type(key, __u32);
	__type(value, struct tacvs_counters);
} real_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TACVS_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tacvs_config);
} config SEC(".maps");

/* state[0]: 1 while this director is the one answering for the VIPs (the
 * VRRP master), 0 otherwise. One aligned u32: flipping it is atomic. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} state SEC(".maps");

/* ARP over Ethernet for IPv4 (RFC 826), addresses as bytes: unaligned. */
struct arp_eth {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
} __attribute__((packed));

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline int is_active(void)
{
	__u32 zero = 0;
	__u32 *a = bpf_map_lookup_elem(&state, &zero);
	return a && *a == 1;
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

static __always_inline __u64 fnv(__u64 h, const __u8 *p, const int n)
{
#pragma clang loop unroll(full)
	for (int i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

/* FNV-1a over the source address (4 or 16 bytes, network order), then the
 * source port (2 bytes, network order) when the service asks, finished with
 * splitmix64. The Rust twin is `tacvs_xdp::flow_hash`; with the address alone
 * it equals the director's `sched::hash_addr`, so proxy and DR directors and
 * both VRRP peers pick the same server for a device. */
static __always_inline __u64 flow_hash(const struct tacvs_flow_key *k, __u32 flags)
{
	__u64 h = FNV_OFFSET;
	if (k->family == TACVS_FAMILY_V4)
		h = fnv(h, (const __u8 *)k->src, 4);
	else
		h = fnv(h, (const __u8 *)k->src, 16);
	if (flags & TACVS_HASH_SOURCE_PORT)
		h = fnv(h, (const __u8 *)&k->sport, 2);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

static __always_inline void count(void *map, __u32 idx, __u64 bytes, int new_flow)
{
	struct tacvs_counters *c = bpf_map_lookup_elem(map, &idx);
	if (!c)
		return;
	c->packets += 1;
	c->bytes += bytes;
	if (new_flow)
		c->new_flows += 1;
}

/* A fragment or a non-TCP packet: only our business if it is to a VIP. */
static __always_inline int vip_other(const struct tacvs_flow_key *k, __u32 stat, int verdict)
{
	struct tacvs_vip_key vk;
	__builtin_memset(&vk, 0, sizeof(vk));
	__builtin_memcpy(vk.addr, k->dst, sizeof(vk.addr));
	vk.family = k->family;
	if (!bpf_map_lookup_elem(&vips, &vk))
		return XDP_PASS;
	stat_inc(stat);
	return verdict;
}

static __always_inline int handle_arp(struct ethhdr *eth, void *end)
{
	struct arp_eth *arp = (void *)(eth + 1);
	if ((void *)(arp + 1) > end)
		return XDP_PASS;
	if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != 6 ||
	    arp->plen != 4 || arp->op != bpf_htons(1))
		return XDP_PASS;

	struct tacvs_vip_key vk;
	__builtin_memset(&vk, 0, sizeof(vk));
	__builtin_memcpy(vk.addr, arp->tpa, 4);
	vk.family = TACVS_FAMILY_V4;
	if (!bpf_map_lookup_elem(&vips, &vk))
		return XDP_PASS;
	/* A gratuitous request for the VIP (sender = target) is someone else
	 * announcing it, e.g. the other director taking over: not a question. */
	__u32 spa, tpa;
	__builtin_memcpy(&spa, arp->spa, 4);
	__builtin_memcpy(&tpa, arp->tpa, 4);
	if (spa == tpa)
		return XDP_PASS;
	if (!is_active()) {
		stat_inc(TACVS_STAT_INACTIVE);
		return XDP_PASS;
	}
	__u32 zero = 0;
	struct tacvs_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return XDP_PASS;

	/* The reply goes to the asker's hardware address (RFC 826: sha). */
	__builtin_memcpy(eth->h_dest, arp->sha, 6);
	__builtin_memcpy(eth->h_source, cfg->mac, 6);
	arp->op = bpf_htons(2);
	__builtin_memcpy(arp->tha, arp->sha, 6);
	__builtin_memcpy(arp->tpa, &spa, 4);
	__builtin_memcpy(arp->sha, cfg->mac, 6);
	__builtin_memcpy(arp->spa, &tpa, 4);
	stat_inc(TACVS_STAT_ARP_REPLIES);
	return XDP_TX;
}

SEC("xdp")
int tacvs_dr(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;

	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return handle_arp(eth, end);

	struct tacvs_flow_key key;
	__builtin_memset(&key, 0, sizeof(key));
	struct tcphdr *tcp;
	void *l3 = (void *)(eth + 1);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		if (ip->version != 4 || ip->ihl < 5)
			return XDP_PASS;
		key.family = TACVS_FAMILY_V4;
		key.src[0] = ip->saddr;
		key.dst[0] = ip->daddr;
		/* MF set or a non-zero offset: a fragment. */
		if (ip->frag_off & bpf_htons(0x3fff))
			return vip_other(&key, TACVS_STAT_VIP_FRAGMENT, XDP_DROP);
		if (ip->protocol != IPPROTO_TCP)
			return vip_other(&key, TACVS_STAT_VIP_NOT_TCP, XDP_PASS);
		/* IP options are skipped, not refused: only the MAC changes. */
		tcp = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		if (ip6->version != 6)
			return XDP_PASS;
		key.family = TACVS_FAMILY_V6;
		__builtin_memcpy(key.src, &ip6->saddr, 16);
		__builtin_memcpy(key.dst, &ip6->daddr, 16);
		if (ip6->nexthdr == IPPROTO_FRAGMENT)
			return vip_other(&key, TACVS_STAT_VIP_FRAGMENT, XDP_DROP);
		/* Extension headers are not walked: such packets pass. */
		if (ip6->nexthdr != IPPROTO_TCP)
			return vip_other(&key, TACVS_STAT_VIP_NOT_TCP, XDP_PASS);
		tcp = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}

	if ((void *)(tcp + 1) > end)
		return XDP_PASS;
	key.sport = tcp->source;
	key.dport = tcp->dest;
	key.proto = IPPROTO_TCP;

	struct tacvs_service_key skey;
	__builtin_memset(&skey, 0, sizeof(skey));
	__builtin_memcpy(skey.vip, key.dst, sizeof(skey.vip));
	skey.port = key.dport;
	skey.family = key.family;
	skey.proto = IPPROTO_TCP;
	struct tacvs_service *svc = bpf_map_lookup_elem(&services, &skey);
	if (!svc)
		return XDP_PASS;
	__u32 sid = svc->id;

	if (!is_active()) {
		stat_inc(TACVS_STAT_INACTIVE);
		return XDP_PASS;
	}
	__u32 zero = 0;
	struct tacvs_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return XDP_PASS;
	if (!mac_eq(eth->h_dest, cfg->mac)) {
		stat_inc(TACVS_STAT_OTHER_MAC);
		return XDP_PASS;
	}

	struct tacvs_real *real = 0;
	__u32 real_id = 0;
	int new_flow = 0;
	struct tacvs_flow *f = bpf_map_lookup_elem(&flows, &key);
	if (f) {
		real_id = f->real;
		real = bpf_map_lookup_elem(&reals, &real_id);
		if (!real || real->gen != f->gen || real->service != sid) {
			real = 0;
			stat_inc(TACVS_STAT_FLOW_STALE);
		}
	}
	if (!real) {
		void *table = bpf_map_lookup_elem(&tables, &sid);
		if (!table)
			goto no_server;
		__u32 *m = bpf_map_lookup_elem(table, &zero);
		if (!m || *m == 0)
			goto no_server;
		__u32 slot = 1 + (__u32)(flow_hash(&key, svc->flags) % *m);
		__u32 *rid = bpf_map_lookup_elem(table, &slot);
		if (!rid)
			goto no_server;
		real_id = *rid;
		real = bpf_map_lookup_elem(&reals, &real_id);
		if (!real || real->service != sid)
			goto no_server;
		struct tacvs_flow nf = { .real = real_id, .gen = real->gen };
		if (bpf_map_update_elem(&flows, &key, &nf, BPF_ANY))
			stat_inc(TACVS_STAT_FLOW_INSERT_FAILED);
		new_flow = 1;
	}

	__u64 bytes = end - l3;
	count(&service_stats, sid, bytes, new_flow);
	count(&real_stats, real_id, bytes, new_flow);

	__builtin_memcpy(eth->h_dest, real->mac, 6);
	if (cfg->out_ifindex) {
		__builtin_memcpy(eth->h_source, cfg->out_mac, 6);
		return bpf_redirect(cfg->out_ifindex, 0);
	}
	__builtin_memcpy(eth->h_source, cfg->mac, 6);
	return XDP_TX;

no_server:
	stat_inc(TACVS_STAT_NO_SERVER);
	return XDP_DROP;
}

char _license[] SEC("license") = "Apache-2.0";
