//! proptest: encode → obfuscate → frame → de-obfuscate → decode is the identity
//! for every packet type; a wrong key is detected.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tacvs_proto::*;

fn field(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn arg() -> impl Strategy<Value = Argument> {
    ("[a-z][a-z0-9-]{0,20}", "[ -~]{0,60}", any::<bool>())
        .prop_map(|(n, v, m)| Argument::new(&n, &v, m).unwrap())
}

fn args() -> impl Strategy<Value = Vec<Argument>> {
    prop::collection::vec(arg(), 0..12)
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(all)
}

fn priv_lvl() -> impl Strategy<Value = PrivLvl> {
    (0u8..=15).prop_map(|v| PrivLvl::new(v).unwrap())
}

fn aaa() -> impl Strategy<Value = AaaRequest> {
    (
        pick(AuthenMethod::ALL),
        priv_lvl(),
        pick(AuthenType::ALL),
        pick(AuthenService::ALL),
        field(255),
        field(255),
        field(255),
        args(),
    )
        .prop_map(
            |(authen_method, priv_lvl, authen_type, authen_service, user, port, rem_addr, args)| {
                AaaRequest {
                    authen_method,
                    priv_lvl,
                    authen_type,
                    authen_service,
                    user,
                    port,
                    rem_addr,
                    args,
                }
            },
        )
}

fn body_and_seq() -> impl Strategy<Value = (Body, u8)> {
    let odd = (0u8..127).prop_map(|n| n * 2 + 1);
    let even = (1u8..128).prop_map(|n| n * 2);
    let cont_seq = (1u8..127).prop_map(|n| n * 2 + 1);
    prop_oneof![
        (
            pick(AuthenAction::ALL),
            priv_lvl(),
            pick(&AuthenType::ALL[1..]),
            pick(AuthenService::ALL),
            field(255),
            field(255),
            field(255),
            field(255)
        )
            .prop_map(
                |(action, priv_lvl, authen_type, authen_service, user, port, rem_addr, data)| {
                    (
                        Body::AuthenStart(AuthenStart {
                            action,
                            priv_lvl,
                            authen_type,
                            authen_service,
                            user,
                            port,
                            rem_addr,
                            data,
                        }),
                        1,
                    )
                }
            ),
        (pick(AuthenStatus::ALL), any::<bool>(), field(600), field(600), even.clone()).prop_map(
            |(status, noecho, server_msg, data, s)| (
                Body::AuthenReply(AuthenReply { status, noecho, server_msg, data }),
                s
            )
        ),
        (field(600), field(600), any::<bool>(), cont_seq).prop_map(|(user_msg, data, abort, s)| (
            Body::AuthenContinue(AuthenContinue { user_msg, data, abort }),
            s
        )),
        (aaa(), odd.clone()).prop_map(|(r, s)| (Body::AuthorRequest(r), s)),
        (pick(AuthorStatus::ALL), args(), field(600), field(600), even.clone()).prop_map(
            |(status, args, server_msg, data, s)| (
                Body::AuthorResponse(AuthorResponse { status, args, server_msg, data }),
                s
            )
        ),
        (
            pick(&[
                AcctFlags::Start,
                AcctFlags::Stop,
                AcctFlags::Watchdog,
                AcctFlags::WatchdogUpdate
            ]),
            aaa(),
            odd
        )
            .prop_map(|(flags, request, s)| (Body::AcctRequest(AcctRequest { flags, request }), s)),
        (pick(AcctStatus::ALL), field(600), field(600), even).prop_map(
            |(status, server_msg, data, s)| (
                Body::AcctReply(AcctReply { status, server_msg, data }),
                s
            )
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn roundtrip((body, seq) in body_and_seq(), session_id in any::<u32>(), key in "[ -~]{1,40}", v1 in any::<bool>(), sc in any::<bool>()) {
        let key = Key::new(key);
        let header = Header {
            minor: if v1 { MinorVersion::V1 } else { MinorVersion::Default },
            packet_type: body.packet_type(),
            seq_no: seq,
            flags: Flags::default().with(Flags::SINGLE_CONNECT, sc),
            session_id,
            length: 0,
        };
        let mut wire = Vec::new();
        let sent = seal(header, &body, Some(&key), DEFAULT_MAX_BODY, &mut wire).unwrap();
        let mut buf = BytesMut::from(&wire[..]);
        let (h, raw) = split_frame(&mut buf, DEFAULT_MAX_BODY).unwrap().unwrap();
        prop_assert_eq!(h, sent);
        prop_assert!(buf.is_empty());
        prop_assert_eq!(open_body(&h, raw, Some(&key)).unwrap(), body);
    }

    #[test]
    fn clear_text_roundtrip((body, seq) in body_and_seq()) {
        let header = Header { minor: MinorVersion::Default, packet_type: body.packet_type(), seq_no: seq, flags: Flags::default(), session_id: 1, length: 0 };
        let mut wire = Vec::new();
        seal(header, &body, None, DEFAULT_MAX_BODY, &mut wire).unwrap();
        let mut buf = BytesMut::from(&wire[..]);
        let (h, raw) = split_frame(&mut buf, DEFAULT_MAX_BODY).unwrap().unwrap();
        prop_assert!(h.flags.unencrypted());
        prop_assert_eq!(open_body(&h, raw, None).unwrap(), body);
    }

    /// Any byte string at all: decoding never panics.
    #[test]
    fn decode_arbitrary_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), seq in 1u8..=255, ty in 1u8..=3) {
        let mut frame = vec![0xc0, ty, seq, 0, 0, 0, 0, 1];
        frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        frame.extend_from_slice(&bytes);
        let mut buf = BytesMut::from(&frame[..]);
        if let Ok(Some((h, raw))) = split_frame(&mut buf, DEFAULT_MAX_BODY) {
            let _ = open_body(&h, raw, Some(&Key::new("k")));
        }
    }
}

/// A wrong key is detected for a fixed, varied corpus (deterministic: a random
/// key collision could in principle decode, so this is not a proptest).
#[test]
fn wrong_key_detected() {
    let bodies = [
        Body::AuthenStart(crate::support::pap("alice", "alice-pass")),
        Body::AuthorRequest(crate::support::author(
            "show running-config interface GigabitEthernet0/1",
        )),
        Body::AcctRequest(AcctRequest {
            flags: AcctFlags::Stop,
            request: crate::support::author("configure terminal"),
        }),
        Body::AuthenReply(AuthenReply::new(AuthenStatus::Pass, "welcome")),
        Body::AuthorResponse(AuthorResponse::new(AuthorStatus::PassAdd, "")),
        Body::AcctReply(AcctReply::new(AcctStatus::Success, "recorded")),
    ];
    let mut detected = 0;
    for (i, body) in bodies.iter().enumerate() {
        for sid in 0..200u32 {
            let seq = if matches!(
                body,
                Body::AuthenStart(_) | Body::AuthorRequest(_) | Body::AcctRequest(_)
            ) {
                1
            } else {
                2
            };
            let h = Header {
                minor: MinorVersion::Default,
                packet_type: body.packet_type(),
                seq_no: seq,
                flags: Flags::default(),
                session_id: sid * 7919 + i as u32,
                length: 0,
            };
            let mut wire = Vec::new();
            seal(h, body, Some(&Key::new("right-key")), DEFAULT_MAX_BODY, &mut wire).unwrap();
            let mut buf = BytesMut::from(&wire[..]);
            let (h, raw) = split_frame(&mut buf, DEFAULT_MAX_BODY).unwrap().unwrap();
            let err = open_body(&h, raw, Some(&Key::new("wrong-key"))).unwrap_err();
            assert!(err.is_body_garbled(), "{err}");
            detected += 1;
        }
    }
    assert_eq!(detected, 1200);
}
