//! The server state machine fed hostile bytes in arbitrary pieces, answering each
//! request with a reply chosen by the input: no panic, bounded buffering, and
//! replies only while the machine allows them. Bit 0x40 of the control byte
//! runs the machine in TLS mode (RFC 9887 §4): then every byte it sends must
//! be a whole packet carrying TAC_PLUS_UNENCRYPTED_FLAG with a clear body.
#![no_main]

use std::sync::Arc;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tacvs_proto::*;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let keys: Arc<[Key]> = match ctl % 3 {
        0 => vec![Key::new("fuzz-key")].into(),
        1 => vec![Key::new("old"), Key::new("fuzz-key")].into(),
        _ => Vec::new().into(),
    };
    let tls = ctl & 0x40 != 0;
    let cfg =
        ServerConfig { max_body: 4096, single_connect: ctl & 0x80 != 0, max_sessions: 4, tls };
    let mut conn = ServerConnection::new(cfg, keys);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let chunk = 1 + (ctl as usize >> 3) % 31;
    for (i, piece) in rest.chunks(chunk).enumerate() {
        buf.extend_from_slice(piece);
        conn.handle_input(&mut buf);
        assert!(buf.len() < 4096 + HEADER_LEN + chunk, "buffered beyond one frame");
        while let Some(ev) = conn.poll_event() {
            if let ServerEvent::Request { session_id, request, .. } = ev {
                let pick = piece.get(i % piece.len().max(1)).copied().unwrap_or(0);
                let _ = match request {
                    Request::AuthenStart(_) | Request::AuthenContinue(_) => {
                        let status = AuthenStatus::ALL[pick as usize % AuthenStatus::ALL.len()];
                        conn.reply_authen(session_id, AuthenReply::new(status, "m"))
                    }
                    Request::Author(_) => conn.reply_author(session_id, AuthorResponse::new(AuthorStatus::PassAdd, "")),
                    Request::Acct(_) => conn.reply_acct(session_id, AcctReply::new(AcctStatus::Success, "")),
                };
            }
        }
        conn.poll_transmit(&mut out);
        if tls {
            let mut frames = BytesMut::from(&out[..]);
            while !frames.is_empty() {
                let (h, body) = split_frame(&mut frames, u32::MAX)
                    .expect("the server's own output decodes")
                    .expect("the server sends whole packets");
                assert!(h.flags.unencrypted(), "a packet without the UNENCRYPTED flag over TLS");
                assert!(
                    h.length == 0 || Body::decode(&h, &body.freeze()).is_ok(),
                    "a body that is not clear text over TLS"
                );
            }
        }
        out.clear();
    }
});
