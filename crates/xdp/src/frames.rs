//! Frame builders for tests and benchmarks: Ethernet II carrying ARP (RFC
//! 826), IPv4 (RFC 791, with options and fragment fields) or IPv6 (RFC 8200)
//! and TCP (RFC 9293) or any other payload, checksums filled in.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::layout::MacAddr;

/// EtherType IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// TCP SYN flag.
pub const SYN: u8 = 0x02;
/// TCP ACK flag.
pub const ACK: u8 = 0x10;

/// An IP packet to build.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// IP protocol (6 = TCP: a TCP header is built from the ports).
    pub proto: u8,
    /// TCP flags.
    pub tcp_flags: u8,
    /// IPv4 options (padded to 4 bytes).
    pub ip_options: Vec<u8>,
    /// IPv4 flags and fragment offset field (host order), e.g. 0x2000 = MF.
    pub frag: u16,
    /// IPv6: put a fragment header (44) before the payload.
    pub v6_fragment: bool,
    /// Bytes after the TCP header (or the whole L4 payload when not TCP).
    pub payload: Vec<u8>,
}

impl Packet {
    /// A TCP segment with `flags` and no payload, DF set.
    pub fn tcp(
        src_mac: MacAddr,
        dst_mac: MacAddr,
        src: SocketAddr,
        dst: SocketAddr,
        flags: u8,
    ) -> Packet {
        Packet {
            src_mac,
            dst_mac,
            src,
            dst,
            proto: 6,
            tcp_flags: flags,
            ip_options: Vec::new(),
            frag: 0x4000,
            v6_fragment: false,
            payload: Vec::new(),
        }
    }

    /// The frame.
    pub fn build(&self) -> Vec<u8> {
        let l4 = if self.proto == 6 {
            let mut t = Vec::with_capacity(20 + self.payload.len());
            t.extend_from_slice(&self.src.port().to_be_bytes());
            t.extend_from_slice(&self.dst.port().to_be_bytes());
            t.extend_from_slice(&1u32.to_be_bytes()); // seq
            t.extend_from_slice(&0u32.to_be_bytes()); // ack
            t.push(5 << 4);
            t.push(self.tcp_flags);
            t.extend_from_slice(&65535u16.to_be_bytes());
            t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
            t.extend_from_slice(&self.payload);
            let c = l4_checksum(self.src.ip(), self.dst.ip(), 6, &t);
            t[16..18].copy_from_slice(&c.to_be_bytes());
            t
        } else {
            self.payload.clone()
        };
        let mut f = Vec::with_capacity(14 + 60 + l4.len());
        f.extend_from_slice(&self.dst_mac.0);
        f.extend_from_slice(&self.src_mac.0);
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&ETH_P_IP.to_be_bytes());
                let mut opts = self.ip_options.clone();
                while !opts.len().is_multiple_of(4) {
                    opts.push(0);
                }
                let ihl = 5 + opts.len() / 4;
                let total = (ihl * 4 + l4.len()) as u16;
                let mut h = vec![0x40 | ihl as u8, 0];
                h.extend_from_slice(&total.to_be_bytes());
                h.extend_from_slice(&0x1234u16.to_be_bytes());
                h.extend_from_slice(&self.frag.to_be_bytes());
                h.extend_from_slice(&[64, self.proto, 0, 0]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                h.extend_from_slice(&opts);
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
                let frag_len = if self.v6_fragment { 8 } else { 0 };
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&((l4.len() + frag_len) as u16).to_be_bytes());
                f.push(if self.v6_fragment { 44 } else { self.proto });
                f.push(64);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                if self.v6_fragment {
                    f.extend_from_slice(&[self.proto, 0, 0, 1, 0, 0, 0, 7]);
                }
            }
            _ => panic!("source and destination families differ"),
        }
        f.extend_from_slice(&l4);
        f
    }
}

/// An ARP request (broadcast) from `sender` asking for `target`.
pub fn arp_request(sender_mac: MacAddr, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp(MacAddr([0xff; 6]), sender_mac, 1, sender_mac, sender, MacAddr([0; 6]), target)
}

/// An ARP frame over Ethernet (RFC 826) with every field given.
pub fn arp(
    eth_dst: MacAddr,
    eth_src: MacAddr,
    op: u16,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&eth_dst.0);
    f.extend_from_slice(&eth_src.0);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha.0);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha.0);
    f.extend_from_slice(&tpa.octets());
    f
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40 + l4.len());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => return 0,
    }
    pseudo.extend_from_slice(l4);
    checksum(&pseudo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_tcp_layout_and_checksums() {
        let p = Packet::tcp(
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.9:49".parse().unwrap(),
            SYN,
        );
        let f = p.build();
        assert_eq!(f.len(), 14 + 20 + 20);
        assert_eq!(&f[12..14], &[8, 0]);
        assert_eq!(checksum(&f[14..34]), 0, "IP header checksum verifies");
        assert_eq!(&f[34..38], &[0x9c, 0x40, 0, 49]);
        let with_opts = Packet { ip_options: vec![1, 1, 1], ..p.clone() }.build();
        assert_eq!(with_opts[14], 0x46);
        assert_eq!(checksum(&with_opts[14..38]), 0);
    }

    #[test]
    fn arp_layout() {
        let f =
            arp_request(MacAddr([2, 0, 0, 0, 0, 1]), [10, 0, 0, 1].into(), [10, 0, 0, 9].into());
        assert_eq!(f.len(), 42);
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[38..42], &[10, 0, 0, 9]);
    }
}
