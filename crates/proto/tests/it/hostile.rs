//! Hostile and broken input: every case is a precise error value, never a panic.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tacvs_proto::*;

use crate::support::*;

fn server() -> ServerConnection {
    let keys: Arc<[Key]> = vec![Key::new(KEY)].into();
    ServerConnection::new(ServerConfig { max_body: 1024, ..Default::default() }, keys)
}

fn feed(s: &mut ServerConnection, bytes: &[u8]) -> Vec<ServerEvent> {
    let mut buf = BytesMut::from(bytes);
    s.handle_input(&mut buf);
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn packet(seq: u8, session_id: u32, body: &Body, key: Option<&str>) -> Vec<u8> {
    packet_flags(seq, session_id, body, key, Flags::default())
}

fn packet_flags(seq: u8, session_id: u32, body: &Body, key: Option<&str>, flags: Flags) -> Vec<u8> {
    let mut out = Vec::new();
    let h = Header {
        minor: MinorVersion::Default,
        packet_type: body.packet_type(),
        seq_no: seq,
        flags,
        session_id,
        length: 0,
    };
    seal(h, body, key.map(Key::new).as_ref(), 1 << 20, &mut out).unwrap();
    out
}

fn the_error(ev: &[ServerEvent]) -> &ProtocolError {
    match ev {
        [ServerEvent::ProtocolError { error, .. }] => error,
        other => panic!("expected one protocol error, got {other:?}"),
    }
}

#[test]
fn truncated_header_waits_for_more() {
    let mut s = server();
    let p = packet(1, 1, &Body::AuthorRequest(author("show")), Some(KEY));
    for cut in 0..p.len() {
        let mut s2 = server();
        assert!(feed(&mut s2, &p[..cut]).is_empty(), "cut at {cut}");
    }
    assert_eq!(feed(&mut s, &p).len(), 1);
}

#[test]
fn bad_major_version_gets_zero_length_reply_and_close() {
    let mut s = server();
    let mut p = packet(1, 0xabcd, &Body::AuthorRequest(author("show")), Some(KEY));
    p[0] = 0xd0;
    let ev = feed(&mut s, &p);
    assert_eq!(the_error(&ev), &ProtocolError::Decode(DecodeError::BadMajorVersion(0xd)));
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    assert_eq!(out.len(), HEADER_LEN, "§4.1: header only");
    assert_eq!(out[2], 2, "seq_no + 1");
    assert_eq!(&out[8..12], &[0, 0, 0, 0]);
    assert_eq!(s.close_reason(), Some(CloseReason::ProtocolError));
}

#[test]
fn length_over_cap_is_refused_before_buffering() {
    let mut s = server();
    let mut hdr = Header {
        minor: MinorVersion::Default,
        packet_type: PacketType::Authorization,
        seq_no: 1,
        flags: Flags::default(),
        session_id: 1,
        length: u32::MAX,
    }
    .to_bytes()
    .to_vec();
    let ev = feed(&mut s, &hdr);
    assert_eq!(
        the_error(&ev),
        &ProtocolError::Decode(DecodeError::BodyTooLong { len: u32::MAX, max: 1024 })
    );
    hdr.truncate(11);
    assert!(feed(&mut server(), &hdr).is_empty());
}

#[test]
fn trailing_bytes_and_field_overflow() {
    // Build a clear-text body with a declared user length of 200 but 5 bytes present.
    let start = pap("alice", "alice-pass");
    let mut body = Vec::new();
    start.encode(&mut body).unwrap();
    let mut overflow = body.clone();
    overflow[4] = 200;
    let d = AuthenStart::decode(&Bytes::from(overflow)).unwrap_err();
    assert!(matches!(d, DecodeError::FieldsOverflow { packet: "authentication START", .. }), "{d}");
    let mut trailing = body.clone();
    trailing.push(0);
    assert_eq!(
        AuthenStart::decode(&Bytes::from(trailing)),
        Err(DecodeError::TrailingBytes { packet: "authentication START", trailing: 1 })
    );
    assert!(matches!(
        AuthenStart::decode(&Bytes::from(body[..7].to_vec())),
        Err(DecodeError::Truncated { .. })
    ));

    // Same through the server: wrong lengths with the right key are still a "wrong key" class error.
    let mut s = server();
    let mut p = Vec::new();
    p.extend_from_slice(&packet(1, 5, &Body::AuthenStart(start), Some(KEY)));
    let ev = feed(&mut s, &p[..p.len() - 1]);
    assert!(ev.is_empty());
}

#[test]
fn unknown_enum_values_are_named() {
    let mut body = Vec::new();
    pap("a", "b").encode(&mut body).unwrap();
    body[2] = 4; // ARAP: removed by RFC 8907
    assert_eq!(
        AuthenStart::decode(&Bytes::from(body.clone())),
        Err(DecodeError::UnknownValue {
            packet: "authentication START",
            field: "authen_type",
            value: 4
        })
    );
    body[2] = 2;
    body[1] = 16;
    assert_eq!(
        AuthenStart::decode(&Bytes::from(body)),
        Err(DecodeError::UnknownValue {
            packet: "authentication START",
            field: "priv_lvl",
            value: 16
        })
    );
    let mut acct = Vec::new();
    AcctRequest { flags: AcctFlags::Start, request: author("x") }.encode(&mut acct).unwrap();
    acct[0] = 0x06; // START|STOP: invalid per §7.2
    assert!(matches!(
        AcctRequest::decode(&Bytes::from(acct)),
        Err(DecodeError::UnknownValue { field: "flags", .. })
    ));
}

#[test]
fn seq_out_of_order_and_at_255() {
    // CONTINUE with seq 5 where 3 is expected.
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client
        .start_authen(
            1,
            start(AuthenAction::Login, AuthenType::Ascii, AuthenService::Login, "", b""),
        )
        .unwrap();
    p.round();
    let cont = Body::AuthenContinue(AuthenContinue {
        user_msg: "alice".into(),
        data: Bytes::new(),
        abort: false,
    });
    let ev = feed(&mut p.server, &packet(5, 1, &cont, Some(KEY)));
    assert_eq!(
        the_error(&ev),
        &ProtocolError::SeqOutOfOrder { session_id: 1, expected: 3, got: 5 }
    );
    let mut out = Vec::new();
    p.server.poll_transmit(&mut out);
    let h = Header::decode(&out, 1 << 16).unwrap();
    assert_eq!(
        (h.seq_no, h.packet_type),
        (6, PacketType::Authentication),
        "ERROR reply follows the bad packet"
    );
    let body = open_body(&h, BytesMut::from(&out[HEADER_LEN..]), Some(&Key::new(KEY))).unwrap();
    assert!(matches!(body, Body::AuthenReply(AuthenReply { status: AuthenStatus::Error, .. })));

    let mut s = server();
    let ev = feed(&mut s, &packet(255, 9, &Body::AuthorRequest(author("x")), Some(KEY)));
    assert_eq!(the_error(&ev), &ProtocolError::SeqWrapped(9));
    assert!(!s.has_output(), "no reply can follow seq_no 255");

    let mut s = server();
    let ev = feed(
        &mut s,
        &packet(
            2,
            9,
            &Body::AuthorResponse(AuthorResponse::new(AuthorStatus::PassAdd, "")),
            Some(KEY),
        ),
    );
    assert!(matches!(the_error(&ev), ProtocolError::WrongDirection(PacketType::Authorization, 2)));
}

#[test]
fn continue_on_finished_or_unknown_session() {
    let mut p = Pair::new(KEY, &[KEY], true);
    p.client.start_authen(1, pap("alice", "alice-pass")).unwrap();
    p.round();
    let cont = Body::AuthenContinue(AuthenContinue {
        user_msg: "x".into(),
        data: Bytes::new(),
        abort: false,
    });
    let ev = feed(&mut p.server, &packet(3, 1, &cont, Some(KEY)));
    assert_eq!(the_error(&ev), &ProtocolError::UnknownSession { session_id: 1, seq_no: 3 });
}

#[test]
fn duplicate_session_and_second_session_without_single_connect() {
    let mut s = server();
    let a = packet(1, 7, &Body::AuthorRequest(author("x")), Some(KEY));
    assert!(matches!(&feed(&mut s, &a)[..], [ServerEvent::Request { .. }]));
    let ev = feed(&mut s, &a);
    assert_eq!(the_error(&ev), &ProtocolError::DuplicateSession(7));

    let mut s = server();
    let mut both = packet(1, 7, &Body::AuthorRequest(author("x")), Some(KEY));
    both.extend(packet(1, 8, &Body::AuthorRequest(author("y")), Some(KEY)));
    let ev = feed(&mut s, &both);
    assert!(matches!(
        &ev[..],
        [
            ServerEvent::Request { session_id: 7, .. },
            ServerEvent::ProtocolError { error: ProtocolError::NotSingleConnect, .. }
        ]
    ));
}

#[test]
fn unencrypted_refused_when_keyed() {
    let mut s = server();
    let ev = feed(&mut s, &packet(1, 7, &Body::AuthorRequest(author("x")), None));
    assert_eq!(the_error(&ev), &ProtocolError::UnencryptedRefused);
    // And accepted by a server with no key at all.
    let mut open = ServerConnection::new(ServerConfig::default(), Vec::new().into());
    assert!(matches!(
        &feed(&mut open, &packet(1, 7, &Body::AuthorRequest(author("x")), None))[..],
        [ServerEvent::Request { .. }]
    ));
}

#[test]
fn too_many_sessions_on_one_connection() {
    let keys: Arc<[Key]> = vec![Key::new(KEY)].into();
    let mut s = ServerConnection::new(ServerConfig { max_sessions: 2, ..Default::default() }, keys);
    // A client pipelining sessions right after asking for single-connect mode.
    let sc = Flags(Flags::SINGLE_CONNECT);
    let out: Vec<u8> = (1..=3)
        .flat_map(|sid| packet_flags(1, sid, &Body::AuthorRequest(author("x")), Some(KEY), sc))
        .collect();
    let ev = feed(&mut s, &out);
    assert!(matches!(
        ev.last(),
        Some(ServerEvent::ProtocolError { error: ProtocolError::TooManySessions(2), .. })
    ));
}

#[test]
fn garbage_never_panics() {
    // A deterministic stream of pseudo-random junk, fed in odd-sized pieces.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..2000 {
        let mut s = server();
        let mut c = ClientConnection::new(ClientConfig::default(), Some(Key::new(KEY)));
        c.authorize(1, author("x")).unwrap();
        let len = (round % 97) + 1;
        let mut junk = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk.push(x as u8);
        }
        if round % 3 == 0 {
            junk[0] = 0xc0; // a valid version so we reach deeper code
            if junk.len() > 3 {
                junk[1] = (round % 3 + 1) as u8;
            }
        }
        let _ = feed(&mut s, &junk);
        let mut b = BytesMut::from(&junk[..]);
        c.handle_input(&mut b);
        while c.poll_event().is_some() {}
    }
}

#[test]
fn malformed_av_with_the_right_key_is_not_called_a_wrong_key() {
    // service=shell and a separator-less "show version", hand-built (our encoder refuses it).
    let mut body = vec![0x06, 0x01, 0x01, 0x01, 3, 0, 0, 2, 13, 12];
    body.extend_from_slice(b"bobservice=shellshow version");
    let h = Header {
        minor: MinorVersion::Default,
        packet_type: PacketType::Authorization,
        seq_no: 1,
        flags: Flags::default(),
        session_id: 3,
        length: body.len() as u32,
    };
    tacvs_proto::obfuscation::apply_pad(&h, &Key::new(KEY), &mut body);
    let mut frame = h.to_bytes().to_vec();
    frame.extend_from_slice(&body);
    let mut s = server();
    let ev = feed(&mut s, &frame);
    assert!(
        matches!(
            the_error(&ev),
            ProtocolError::Decode(DecodeError::Invalid { field: "argument", .. })
        ),
        "{:?}",
        the_error(&ev)
    );
}
