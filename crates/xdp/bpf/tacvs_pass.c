// SPDX-License-Identifier: Apache-2.0
/*
 * XDP_PASS and nothing else. A veth delivers frames that its peer sends with
 * XDP_TX only while an XDP program is attached on the receiving end (the
 * veth's NAPI is set up for XDP then): the lab puts this on the peer of a
 * director's veth. Its own object, so loading it costs no maps.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int tacvs_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

char _license[] SEC("license") = "Apache-2.0";
