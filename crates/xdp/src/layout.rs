//! The maps' keys and values, byte for byte as `bpf/tacvs_xdp.h` declares
//! them, and the flow hash the program computes. Pure: no kernel needed.
//!
//! Addresses and ports are kept in network byte order (as the program reads
//! them from the packet); an IPv4 address fills the first 4 of 16 bytes. The
//! kernel checks each map's key and value sizes against these types when the
//! loader opens it, and the tests below pin the sizes too.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Constants generated from `bpf/tacvs_xdp.h` (capacities, flags, stat indices).
pub mod consts {
    include!(concat!(env!("OUT_DIR"), "/layout_consts.rs"));
}

/// `IPPROTO_TCP`.
pub const PROTO_TCP: u8 = 6;

/// An Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<MacAddr, String> {
        let bad = || format!("{s:?} is not a MAC address (six hex bytes like 02:00:5e:00:00:01)");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl MacAddr {
    /// Whether the group bit is set (broadcast and multicast addresses).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

/// What a service hashes to pick a real server for a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HashInput {
    /// The device's address: every connection of a device lands on the same
    /// server (IPVS `sh`/`mh`; equal to the director's `sched::hash_addr`).
    #[default]
    SourceAddress,
    /// The device's address and port (IPVS `mh-port`): a device's
    /// connections spread over the servers.
    SourceAddressAndPort,
}

impl HashInput {
    /// The service flags the program reads.
    pub fn flags(self) -> u32 {
        match self {
            HashInput::SourceAddress => 0,
            HashInput::SourceAddressAndPort => consts::HASH_SOURCE_PORT,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// The hash the program computes for a new flow from `src` (the device's
/// address and port): FNV-1a over the address bytes (4 or 16), then the port
/// in network order when `input` asks, finished with splitmix64. With
/// [`HashInput::SourceAddress`] it equals the director's `sched::hash_addr`.
/// The slot is `hash % table.len()`.
pub fn flow_hash(src: SocketAddr, input: HashInput) -> u64 {
    let mut h = FNV_OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    };
    match src.ip() {
        IpAddr::V4(a) => feed(&a.octets()),
        IpAddr::V6(a) => feed(&a.octets()),
    }
    if input == HashInput::SourceAddressAndPort {
        feed(&src.port().to_be_bytes());
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// An address as the maps hold it, with its layout family.
pub fn addr_bytes(ip: IpAddr) -> ([u8; 16], u8) {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (out, consts::FAMILY_V4 as u8)
        }
        IpAddr::V6(a) => (a.octets(), consts::FAMILY_V6 as u8),
    }
}

/// `struct tacvs_flow_key`: the 5-tuple of a flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Source address.
    pub src: [u8; 16],
    /// Destination (VIP).
    pub dst: [u8; 16],
    /// Source port, network order.
    pub sport: [u8; 2],
    /// Destination port, network order.
    pub dport: [u8; 2],
    /// [`consts::FAMILY_V4`] or [`consts::FAMILY_V6`].
    pub family: u8,
    /// IP protocol (TCP).
    pub proto: u8,
    /// Zero.
    pub pad: u16,
}

impl FlowKey {
    /// The key of a TCP flow from `src` to `dst`; `None` when the families differ.
    pub fn tcp(src: SocketAddr, dst: SocketAddr) -> Option<FlowKey> {
        let (s, fam) = addr_bytes(src.ip());
        let (d, fam_d) = addr_bytes(dst.ip());
        (fam == fam_d).then_some(FlowKey {
            src: s,
            dst: d,
            sport: src.port().to_be_bytes(),
            dport: dst.port().to_be_bytes(),
            family: fam,
            proto: PROTO_TCP,
            pad: 0,
        })
    }
}

/// `struct tacvs_flow`: the real a flow was given, and that real's generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowValue {
    /// Real id.
    pub real: u32,
    /// The real's generation when the flow was placed.
    pub gen_: u32,
}

/// `struct tacvs_service_key`: VIP, port and protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ServiceKey {
    /// The VIP.
    pub vip: [u8; 16],
    /// Port, network order.
    pub port: [u8; 2],
    /// Family.
    pub family: u8,
    /// Protocol.
    pub proto: u8,
}

impl ServiceKey {
    /// The key of the TCP service at `vip`.
    pub fn tcp(vip: SocketAddr) -> ServiceKey {
        let (addr, family) = addr_bytes(vip.ip());
        ServiceKey { vip: addr, port: vip.port().to_be_bytes(), family, proto: PROTO_TCP }
    }
}

/// `struct tacvs_service`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ServiceValue {
    /// Index into `tables` and `service_stats`.
    pub id: u32,
    /// `HASH_*` flags.
    pub flags: u32,
}

/// `struct tacvs_vip_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VipKey {
    /// The address.
    pub addr: [u8; 16],
    /// Family (as a u32).
    pub family: u32,
}

impl VipKey {
    /// The key of `ip`.
    pub fn new(ip: IpAddr) -> VipKey {
        let (addr, family) = addr_bytes(ip);
        VipKey { addr, family: u32::from(family) }
    }
}

/// `struct tacvs_real`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RealValue {
    /// The real server's MAC.
    pub mac: [u8; 6],
    /// Zero.
    pub pad: u16,
    /// The service it belongs to.
    pub service: u32,
    /// Generation: changes whenever the id is given to another server.
    pub gen_: u32,
}

/// `struct tacvs_counters` (one CPU's share).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    /// Packets forwarded.
    pub packets: u64,
    /// IP bytes forwarded.
    pub bytes: u64,
    /// Flow-table entries made.
    pub new_flows: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.packets = self.packets.wrapping_add(o.packets);
        self.bytes = self.bytes.wrapping_add(o.bytes);
        self.new_flows = self.new_flows.wrapping_add(o.new_flows);
    }
}

/// `struct tacvs_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// The attached interface's MAC.
    pub mac: [u8; 6],
    /// Source MAC for frames redirected to `out_ifindex`.
    pub out_mac: [u8; 6],
    /// 0: frames leave by `XDP_TX`.
    pub out_ifindex: u32,
}

// SAFETY: every type here is `repr(C)`, made only of integers and byte arrays
// with explicit padding fields, so any bit pattern is valid and no byte is
// uninitialised — what `aya::Pod` requires of map keys and values.
#[allow(unsafe_code)]
mod pod {
    use super::*;
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowValue {}
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for ServiceValue {}
    unsafe impl aya::Pod for VipKey {}
    unsafe impl aya::Pod for RealValue {}
    unsafe impl aya::Pod for Counters {}
    unsafe impl aya::Pod for Config {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn sizes_match_the_header() {
        assert_eq!(size_of::<FlowKey>(), 40);
        assert_eq!(size_of::<FlowValue>(), 8);
        assert_eq!(size_of::<ServiceKey>(), 20);
        assert_eq!(size_of::<ServiceValue>(), 8);
        assert_eq!(size_of::<VipKey>(), 20);
        assert_eq!(size_of::<RealValue>(), 16);
        assert_eq!(size_of::<Counters>(), 24);
        assert_eq!(size_of::<Config>(), 16);
    }

    #[test]
    fn constants_come_from_the_header() {
        assert_eq!(consts::MAX_SERVICES, 64);
        assert_eq!(consts::TABLE_CAPACITY, 65537);
        assert_eq!(consts::STAT_COUNT, 8);
        assert_eq!(consts::HASH_SOURCE_PORT, 1);
    }

    #[test]
    fn keys_hold_network_order() {
        let k = FlowKey::tcp("10.0.0.1:40000".parse().unwrap(), "10.9.0.1:49".parse().unwrap())
            .unwrap();
        assert_eq!(&k.src[..4], &[10, 0, 0, 1]);
        assert_eq!(&k.src[4..], &[0; 12]);
        assert_eq!(k.sport, [0x9c, 0x40]);
        assert_eq!(k.dport, [0, 49]);
        assert_eq!(k.family, 4);
        let v6: SocketAddr = (Ipv6Addr::LOCALHOST, 1).into();
        assert!(FlowKey::tcp(v6, "10.9.0.1:49".parse().unwrap()).is_none());
        let s = ServiceKey::tcp((Ipv6Addr::LOCALHOST, 49).into());
        assert_eq!((s.family, s.vip[15], s.port), (6, 1, [0, 49]));
    }

    #[test]
    fn source_address_hash_is_the_directors() {
        for ip in [
            IpAddr::V4(Ipv4Addr::new(10, 100, 3, 7)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)),
            IpAddr::V6("2001:db8::1".parse().unwrap()),
        ] {
            let h = flow_hash((ip, 1234).into(), HashInput::SourceAddress);
            assert_eq!(h, tacvs_director::core::sched::hash_addr(ip), "{ip}");
            // The port changes the hash only when asked to.
            let p = flow_hash((ip, 1235).into(), HashInput::SourceAddressAndPort);
            assert_ne!(p, flow_hash((ip, 1234).into(), HashInput::SourceAddressAndPort));
            assert_ne!(p, h);
        }
    }

    #[test]
    fn mac_text() {
        let m: MacAddr = "02:00:5e:0a:0b:ff".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x5e, 0x0a, 0x0b, 0xff]);
        assert_eq!(m.to_string(), "02:00:5e:0a:0b:ff");
        for bad in [
            "",
            "02:00:5e:0a:0b",
            "02:00:5e:0a:0b:ff:00",
            "02:00:5e:0a:0b:fff",
            "zz:00:00:00:00:00",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(MacAddr([0xff; 6]).is_multicast());
        assert!(!m.is_multicast());
    }

    proptest::proptest! {
        #[test]
        fn mac_text_round_trips(b in proptest::prelude::any::<[u8; 6]>()) {
            let m = MacAddr(b);
            proptest::prop_assert_eq!(m.to_string().parse::<MacAddr>(), Ok(m));
        }

        #[test]
        fn mac_parse_never_panics(s in "\\PC{0,30}") {
            let _ = s.parse::<MacAddr>();
        }
    }
}
