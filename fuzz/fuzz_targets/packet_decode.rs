//! Any bytes through the framer and every body decoder, with and without a key.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tacvs_proto::*;

fuzz_target!(|data: &[u8]| {
    let key = Key::new("fuzz-key");
    let mut buf = BytesMut::from(data);
    while let Ok(Some((h, body))) = split_frame(&mut buf, DEFAULT_MAX_BODY) {
        // Re-encoding what decoded must reproduce a frame that decodes identically.
        if let Ok(b) = open_body(&h, body.clone(), Some(&key)) {
            let mut out = Vec::new();
            seal(h, &b, Some(&key), DEFAULT_MAX_BODY, &mut out).expect("a decoded body re-encodes");
            let mut again = BytesMut::from(&out[..]);
            let (h2, body2) = split_frame(&mut again, DEFAULT_MAX_BODY).unwrap().unwrap();
            assert_eq!(open_body(&h2, body2, Some(&key)).unwrap(), b);
        }
        let _ = open_body(&h, body, None);
    }
    // Each body decoder on the raw bytes, as if already de-obfuscated.
    let raw = Bytes::copy_from_slice(data);
    let _ = AuthenStart::decode(&raw);
    let _ = AuthenReply::decode(&raw);
    let _ = AuthenContinue::decode(&raw);
    let _ = AaaRequest::decode(&raw);
    let _ = AuthorResponse::decode(&raw);
    let _ = AcctRequest::decode(&raw);
    let _ = AcctReply::decode(&raw);
    for ty in [AuthenType::Chap, AuthenType::MsChapV1, AuthenType::MsChapV2] {
        let _ = tacvs_proto::chap::verify(ty, data, b"u", "pw");
    }
});
