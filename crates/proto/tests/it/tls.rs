//! RFC 9887 §4 in the session machines: inside TLS nothing is obfuscated.
//! Every packet carries TAC_PLUS_UNENCRYPTED_FLAG in both directions, a
//! packet without it gets its type's ERROR (flag set) and the connection
//! ends, and the legacy key is never used.

use std::sync::Arc;

use bytes::BytesMut;
use proptest::prelude::*;
use tacvs_proto::chap::{ChapData, chap_response};
use tacvs_proto::*;

use crate::support::*;

fn tls_server() -> ServerConnection {
    // The key is handed in and must be ignored.
    let keys: Arc<[Key]> = vec![Key::new(KEY)].into();
    ServerConnection::new(ServerConfig { tls: true, ..Default::default() }, keys)
}

/// A packet with exactly `flags` when it is not obfuscated (`seal` would set
/// the UNENCRYPTED flag for a clear body by itself).
fn packet(seq: u8, sid: u32, body: &Body, key: Option<&str>, flags: Flags) -> Vec<u8> {
    let h = Header {
        minor: MinorVersion::Default,
        packet_type: body.packet_type(),
        seq_no: seq,
        flags,
        session_id: sid,
        length: 0,
    };
    let mut out = Vec::new();
    seal(h, body, key.map(Key::new).as_ref(), 1 << 20, &mut out).unwrap();
    if key.is_none() {
        out[3] = flags.0;
    }
    out
}

/// Every frame both ways has the flag and a body readable without a key.
fn assert_all_clear(p: &Pair) {
    for (dir, wire) in [("client", &p.wire_c2s), ("server", &p.wire_s2c)] {
        let fs = frames(wire);
        assert!(!fs.is_empty(), "the {dir} sent nothing");
        for (h, body) in fs {
            assert!(h.flags.unencrypted(), "a {dir} packet without the UNENCRYPTED flag: {h:?}");
            Body::decode(&h, &body).unwrap_or_else(|e| panic!("{dir} body not clear text: {e}"));
        }
    }
}

#[test]
fn every_flow_runs_in_clear_with_the_flag_both_ways() {
    let challenge = *b"0123456789abcdef";
    let chap = ChapData {
        id: 5,
        challenge: &challenge,
        response: &chap_response(5, b"alice-pass", &challenge),
    }
    .to_vec();
    let mut p = Pair::tls(true);
    p.client.start_authen(1, pap("alice", "alice-pass")).unwrap();
    p.round(); // the first reply settles single-connect
    p.client
        .start_authen(
            3,
            start(AuthenAction::Login, AuthenType::Chap, AuthenService::Ppp, "alice", &chap),
        )
        .unwrap();
    p.round();
    p.client.authorize(5, author("show version")).unwrap();
    p.client
        .account(7, AcctRequest { flags: AcctFlags::Stop, request: author("show version") })
        .unwrap();
    p.client
        .start_authen(
            9,
            start(AuthenAction::Login, AuthenType::Ascii, AuthenService::Login, "", b""),
        )
        .unwrap();
    p.round();
    p.client.continue_authen(9, "alice").unwrap();
    p.round();
    p.client.continue_authen(9, "alice-pass").unwrap();
    p.round();
    let events = p.take_client_events();
    let passed = events
        .iter()
        .filter(|e| match e {
            ClientEvent::AuthenReply { reply, .. } => reply.status == AuthenStatus::Pass,
            ClientEvent::AuthorResponse { response, .. } => {
                response.status == AuthorStatus::PassAdd
            }
            ClientEvent::AcctReply { reply, .. } => reply.status == AcctStatus::Success,
            _ => false,
        })
        .count();
    assert_eq!(passed, 5, "PAP, CHAP, authorization, accounting, ASCII: {events:?}");
    assert_eq!(p.client.single_connect(), Some(true));
    assert_all_clear(&p);
}

#[test]
fn a_packet_obfuscated_with_the_legacy_key_gets_error_in_clear_and_closes() {
    for body in [
        Body::AuthenStart(pap("alice", "alice-pass")),
        Body::AuthorRequest(author("show version")),
        Body::AcctRequest(AcctRequest { flags: AcctFlags::Start, request: author("x") }),
    ] {
        let mut s = tls_server();
        // The right legacy key, the flag clear: exactly what a TACACS+ client
        // that "supports TLS" by wrapping its old packets would send.
        let mut buf = BytesMut::from(&packet(1, 0x77, &body, Some(KEY), Flags::default())[..]);
        s.handle_input(&mut buf);
        let ev: Vec<ServerEvent> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(
            matches!(
                ev.as_slice(),
                [ServerEvent::ProtocolError {
                    session_id: Some(0x77),
                    error: ProtocolError::ObfuscatedOverTls
                }]
            ),
            "{ev:?}"
        );
        assert_eq!(s.close_reason(), Some(CloseReason::ProtocolError));
        let mut out = Vec::new();
        s.poll_transmit(&mut out);
        let fs = frames(&out);
        assert_eq!(fs.len(), 1);
        let (h, raw) = &fs[0];
        assert!(h.flags.unencrypted(), "the ERROR reply carries the flag");
        assert_eq!((h.seq_no, h.session_id, h.packet_type), (2, 0x77, body.packet_type()));
        let status = match Body::decode(h, raw).expect("the ERROR reply is clear text") {
            Body::AuthenReply(r) => r.status == AuthenStatus::Error,
            Body::AuthorResponse(r) => r.status == AuthorStatus::Error,
            Body::AcctReply(r) => r.status == AcctStatus::Error,
            other => panic!("{other:?}"),
        };
        assert!(status, "the type's ERROR status");
        // Nothing after it is read.
        let mut more = BytesMut::from(&packet(1, 0x78, &body, None, Flags(Flags::UNENCRYPTED))[..]);
        s.handle_input(&mut more);
        assert!(s.poll_event().is_none());
    }
}

#[test]
fn a_later_packet_without_the_flag_ends_a_single_connect_connection() {
    let mut s = tls_server();
    let sc = Flags(Flags::UNENCRYPTED | Flags::SINGLE_CONNECT);
    let mut buf = BytesMut::from(&packet(1, 1, &Body::AuthorRequest(author("a")), None, sc)[..]);
    s.handle_input(&mut buf);
    assert!(matches!(s.poll_event(), Some(ServerEvent::Request { .. })));
    s.reply_author(1, AuthorResponse::new(AuthorStatus::PassAdd, "")).unwrap();
    let mut buf = BytesMut::from(
        &packet(1, 2, &Body::AuthorRequest(author("b")), None, Flags(Flags::SINGLE_CONNECT))[..],
    );
    s.handle_input(&mut buf);
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::ProtocolError { error: ProtocolError::ObfuscatedOverTls, .. })
    ));
    assert_eq!(s.close_reason(), Some(CloseReason::ProtocolError));
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    let fs = frames(&out);
    assert_eq!(fs.len(), 2);
    assert!(fs.iter().all(|(h, _)| h.flags.unencrypted()));
    assert!(fs[1].0.flags.single_connect(), "still the connection's flags");
}

#[test]
fn the_tls_client_refuses_a_reply_without_the_flag() {
    let mut c = ClientConnection::new(
        ClientConfig { tls: true, ..Default::default() },
        Some(Key::new(KEY)),
    );
    c.authorize(9, author("show")).unwrap();
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    let fs = frames(&out);
    assert!(fs[0].0.flags.unencrypted(), "the client sends in clear, the key unused");
    // An obfuscated reply, as a server that ignores RFC 9887 §4 would send.
    let reply = packet(
        2,
        9,
        &Body::AuthorResponse(AuthorResponse::new(AuthorStatus::PassAdd, "")),
        Some(KEY),
        Flags::default(),
    );
    c.handle_input(&mut BytesMut::from(&reply[..]));
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::SessionFailed {
            session_id: 9,
            error: ClientSessionError::ObfuscatedOverTls
        })
    );
}

#[test]
fn outside_tls_the_machines_are_unchanged() {
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client.authorize(5, author("show version")).unwrap();
    p.round();
    assert!(frames(&p.wire_c2s).iter().all(|(h, _)| !h.flags.unencrypted()));
    assert!(frames(&p.wire_s2c).iter().all(|(h, _)| !h.flags.unencrypted()));
}

fn any_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        ("[a-z]{0,8}", "[ -~]{0,12}").prop_map(|(u, p)| Body::AuthenStart(pap(&u, &p))),
        "[a-z]{1,12}".prop_map(|c| Body::AuthorRequest(author(&c))),
        "[a-z]{1,12}".prop_map(|c| Body::AcctRequest(AcctRequest {
            flags: AcctFlags::Stop,
            request: author(&c)
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a TLS peer sends (new sessions with or without the flag,
    /// obfuscated or not, in any pieces): every byte the server sends is a
    /// whole frame with the flag and a clear body, and once a packet without
    /// the flag was read the connection is closing with nothing more read.
    #[test]
    fn over_tls_every_reply_has_the_flag_and_a_flagless_packet_closes(
        packets in prop::collection::vec((any_body(), any::<bool>(), any::<bool>()), 1..8),
        chunk in 1usize..64,
    ) {
        let mut s = tls_server();
        let mut wire = Vec::new();
        let mut first_bad = None;
        for (i, (body, flagged, keyed)) in packets.iter().enumerate() {
            let flags = Flags::default().with(Flags::SINGLE_CONNECT, true).with(Flags::UNENCRYPTED, *flagged);
            let key = (!*flagged && *keyed).then_some(KEY);
            let p = packet(1, i as u32 + 1, body, key, flags);
            if !*flagged && first_bad.is_none() {
                first_bad = Some(i as u32 + 1);
            }
            wire.extend_from_slice(&p);
        }
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        let mut requests = Vec::new();
        let mut errors = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            s.handle_input(&mut buf);
            while let Some(ev) = s.poll_event() {
                match ev {
                    ServerEvent::Request { session_id, request, .. } => {
                        requests.push(session_id);
                        let _ = match request {
                            Request::AuthenStart(_) | Request::AuthenContinue(_) => s.reply_authen(session_id, AuthenReply::new(AuthenStatus::Fail, "")),
                            Request::Author(_) => s.reply_author(session_id, AuthorResponse::new(AuthorStatus::Fail, "")),
                            Request::Acct(_) => s.reply_acct(session_id, AcctReply::new(AcctStatus::Success, "")),
                        };
                    }
                    ServerEvent::ProtocolError { session_id, error } => errors.push((session_id, error)),
                    ServerEvent::AuthenAborted { .. } => {}
                }
            }
            s.poll_transmit(&mut out);
        }
        for (h, body) in frames(&out) {
            prop_assert!(h.flags.unencrypted());
            prop_assert!(Body::decode(&h, &body).is_ok());
        }
        match first_bad {
            Some(bad) => {
                prop_assert_eq!(s.close_reason(), Some(CloseReason::ProtocolError));
                prop_assert_eq!(errors, vec![(Some(bad), ProtocolError::ObfuscatedOverTls)]);
                prop_assert!(requests.iter().all(|&r| r < bad), "nothing after the bad packet was served");
            }
            None => {
                prop_assert!(errors.is_empty());
                prop_assert_eq!(requests.len(), packets.len());
            }
        }
    }
}
