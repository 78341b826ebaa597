//! Any bytes as a raw IPPROTO_VRRP socket would deliver them (IPv4 header
//! included): parse_packet must return an error or an advertisement, never
//! panic; an advertisement re-encodes to one that parses the same (reserved
//! bits, ignored on receipt per RFC 5798 §5.2.5, are sent as zero).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tacvs_director::core::vrrp::{ipv4_packet, parse_packet};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_packet(data) {
        let again = ipv4_packet(r.src, r.dst, 255, &r.advert.encode(r.src, r.dst));
        assert_eq!(parse_packet(&again), Ok(r));
    }
});
