//! Packets written out byte by byte from the RFC 8907 figures decode to the
//! fields we expect, and our encoder produces exactly those bytes.

use bytes::{Bytes, BytesMut};
use tacvs_proto::*;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decode a clear-text frame (UNENCRYPTED flag) and check re-encoding is byte-exact.
fn check(frame: &[u8]) -> (Header, Body) {
    let mut buf = BytesMut::from(frame);
    let (h, body) = split_frame(&mut buf, DEFAULT_MAX_BODY).unwrap().expect("whole frame");
    assert!(buf.is_empty());
    let decoded = open_body(&h, body, None).unwrap();
    let mut out = Vec::new();
    seal(h, &decoded, None, DEFAULT_MAX_BODY, &mut out).unwrap();
    assert_eq!(out, frame, "re-encoding differs");
    (h, decoded)
}

#[test]
fn authen_start_pap_figure_5_1() {
    let body = cat(&[
        &[0x01, 0x01, 0x02, 0x01, 5, 4, 9, 10],
        b"alice",
        b"tty0",
        b"192.0.2.7",
        b"alice-pass",
    ]);
    let frame =
        cat(&[&[0xc1, 0x01, 0x01, 0x01, 0, 0, 0x30, 0x39, 0, 0, 0, body.len() as u8], &body]);
    let (h, b) = check(&frame);
    assert_eq!((h.minor, h.seq_no, h.session_id, h.length), (MinorVersion::V1, 1, 12345, 36));
    assert!(h.flags.unencrypted());
    let Body::AuthenStart(s) = b else { panic!() };
    assert_eq!(
        (s.action, s.priv_lvl, s.authen_type, s.authen_service),
        (AuthenAction::Login, PrivLvl::USER, AuthenType::Pap, AuthenService::Login)
    );
    assert_eq!(
        (&s.user[..], &s.port[..], &s.rem_addr[..], &s.data[..]),
        (&b"alice"[..], &b"tty0"[..], &b"192.0.2.7"[..], &b"alice-pass"[..])
    );
    assert!(!format!("{s:?}").contains("alice-pass"), "Debug must not show the password");
}

#[test]
fn authen_reply_and_continue_figures_5_2_5_3() {
    let frame = cat(&[
        &[0xc0, 0x01, 0x02, 0x01, 0, 0, 0, 1, 0, 0, 0, 16],
        &[0x05, 0x01, 0, 10, 0, 0],
        b"Password: ",
    ]);
    let (_, b) = check(&frame);
    assert_eq!(
        b,
        Body::AuthenReply(AuthenReply {
            status: AuthenStatus::GetPass,
            noecho: true,
            server_msg: "Password: ".into(),
            data: Bytes::new()
        })
    );

    let frame = cat(&[
        &[0xc0, 0x01, 0x03, 0x01, 0, 0, 0, 1, 0, 0, 0, 15],
        &[0, 10, 0, 0, 0],
        b"alice-pass",
    ]);
    let (_, b) = check(&frame);
    let Body::AuthenContinue(c) = b else { panic!() };
    assert_eq!((&c.user_msg[..], c.abort), (&b"alice-pass"[..], false));
    assert!(!format!("{c:?}").contains("alice-pass"));

    let frame =
        cat(&[&[0xc0, 0x01, 0x05, 0x01, 0, 0, 0, 1, 0, 0, 0, 8], &[0, 0, 0, 3, 0x01], b"bye"]);
    let (_, b) = check(&frame);
    assert!(
        matches!(b, Body::AuthenContinue(AuthenContinue { abort: true, ref data, .. }) if data == "bye")
    );
}

#[test]
fn author_request_and_response_figures_6_1_6_2() {
    let body = cat(&[
        &[0x06, 0x0f, 0x01, 0x01, 5, 4, 9, 2, 13, 8],
        b"alice",
        b"tty0",
        b"192.0.2.7",
        b"service=shell",
        b"cmd=show",
    ]);
    let frame =
        cat(&[&[0xc0, 0x02, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, body.len() as u8], &body]);
    let (h, b) = check(&frame);
    assert_eq!(h.session_id, 0xdead_beef);
    let Body::AuthorRequest(r) = b else { panic!() };
    assert_eq!(
        (r.authen_method, r.priv_lvl.get(), r.authen_type),
        (AuthenMethod::TacacsPlus, 15, AuthenType::Ascii)
    );
    assert_eq!(r.args.len(), 2);
    assert_eq!(
        (r.args[0].name(), r.args[0].value(), r.args[0].mandatory()),
        (&b"service"[..], &b"shell"[..], true)
    );

    let body = cat(&[&[0x01, 2, 0, 2, 0, 3, 11, 9], b"ok", b"log", b"priv-lvl=15", b"timeout*5"]);
    let frame =
        cat(&[&[0xc0, 0x02, 0x02, 0x01, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, body.len() as u8], &body]);
    let (_, b) = check(&frame);
    let Body::AuthorResponse(r) = b else { panic!() };
    assert_eq!(
        (r.status, &r.server_msg[..], &r.data[..]),
        (AuthorStatus::PassAdd, &b"ok"[..], &b"log"[..])
    );
    assert!(!r.args[1].mandatory());
}

#[test]
fn acct_request_and_reply_figures_7_1_7_3() {
    let body = cat(&[
        &[0x02, 0x06, 0x01, 0x01, 0x01, 5, 4, 9, 2, 9, 12],
        b"alice",
        b"tty0",
        b"192.0.2.7",
        b"task_id=1",
        b"service=exec",
    ]);
    let frame = cat(&[&[0xc0, 0x03, 0x01, 0x01, 0, 0, 0, 9, 0, 0, 0, body.len() as u8], &body]);
    let (_, b) = check(&frame);
    let Body::AcctRequest(a) = b else { panic!() };
    assert_eq!(a.flags, AcctFlags::Start);
    assert_eq!(a.request.arg(b"task_id").unwrap().value(), b"1");

    let frame =
        cat(&[&[0xc0, 0x03, 0x02, 0x01, 0, 0, 0, 9, 0, 0, 0, 7], &[0, 2, 0, 0, 0x01], b"ok"]);
    let (_, b) = check(&frame);
    assert_eq!(b, Body::AcctReply(AcctReply::new(AcctStatus::Success, "ok")));
}
