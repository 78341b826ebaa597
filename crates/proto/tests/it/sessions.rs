//! Client and server state machines driven against each other, every flow.

use tacvs_proto::chap::{ChapData, chap_response, mschapv1_response, mschapv2_response};
use tacvs_proto::*;

use crate::support::*;

fn one_reply(p: &mut Pair) -> ClientEvent {
    let mut ev = p.take_client_events();
    assert_eq!(ev.len(), 1, "expected one client event, got {ev:?}");
    ev.pop().unwrap()
}

fn authen_status(ev: &ClientEvent) -> AuthenStatus {
    match ev {
        ClientEvent::AuthenReply { reply, .. } => reply.status,
        other => panic!("not an authen reply: {other:?}"),
    }
}

#[test]
fn pap_pass_and_fail_close_connection_without_single_connect() {
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client.start_authen(1, pap("alice", "alice-pass")).unwrap();
    p.round();
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::Pass);
    assert_eq!(p.server.close_reason(), Some(CloseReason::SessionDone));
    assert_eq!(p.client.single_connect(), Some(false));
    assert_eq!(
        p.client.start_authen(2, pap("alice", "x")),
        Err(SessionError::ConnectionNotReusable)
    );

    let mut p = Pair::new(KEY, &[KEY], false);
    p.client.start_authen(9, pap("alice", "wrong")).unwrap();
    p.round();
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::Fail);
}

#[test]
fn chap_mschapv1_mschapv2() {
    let challenge = *b"0123456789abcdef";
    let ch8 = *b"abcdefgh";
    let peer = [3u8; 16];
    let cases: Vec<(AuthenType, Vec<u8>, Vec<u8>)> = vec![
        (
            AuthenType::Chap,
            ChapData {
                id: 5,
                challenge: &challenge,
                response: &chap_response(5, b"alice-pass", &challenge),
            }
            .to_vec(),
            ChapData {
                id: 5,
                challenge: &challenge,
                response: &chap_response(5, b"nope", &challenge),
            }
            .to_vec(),
        ),
        (
            AuthenType::MsChapV1,
            ChapData { id: 1, challenge: &ch8, response: &mschapv1_response(&ch8, "alice-pass") }
                .to_vec(),
            ChapData { id: 1, challenge: &ch8, response: &mschapv1_response(&ch8, "nope") }
                .to_vec(),
        ),
        (
            AuthenType::MsChapV2,
            ChapData {
                id: 2,
                challenge: &challenge,
                response: &mschapv2_response(&challenge, &peer, b"alice", "alice-pass"),
            }
            .to_vec(),
            ChapData {
                id: 2,
                challenge: &challenge,
                response: &mschapv2_response(&challenge, &peer, b"alice", "nope"),
            }
            .to_vec(),
        ),
    ];
    for (ty, good, bad) in cases {
        for (data, want) in [(good, AuthenStatus::Pass), (bad, AuthenStatus::Fail)] {
            let mut p = Pair::new(KEY, &[KEY], false);
            p.client
                .start_authen(7, start(AuthenAction::Login, ty, AuthenService::Ppp, "alice", &data))
                .unwrap();
            p.round();
            assert_eq!(authen_status(&one_reply(&mut p)), want, "{ty}");
        }
    }
}

#[test]
fn ascii_login_getuser_getpass_with_retries() {
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client
        .start_authen(
            0x55,
            start(AuthenAction::Login, AuthenType::Ascii, AuthenService::Login, "", b""),
        )
        .unwrap();
    p.round();
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::GetUser);
    p.client.continue_authen(0x55, "alice").unwrap();
    p.round();
    let ev = one_reply(&mut p);
    assert_eq!(authen_status(&ev), AuthenStatus::GetPass);
    assert!(matches!(ev, ClientEvent::AuthenReply { reply: AuthenReply { noecho: true, .. }, .. }));
    p.client.continue_authen(0x55, "bad").unwrap();
    p.round();
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::GetPass);
    p.client.continue_authen(0x55, "alice-pass").unwrap();
    p.round();
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::Pass);
    assert_eq!(p.server.open_sessions(), 0);
    assert_eq!(p.server.close_reason(), Some(CloseReason::SessionDone));
}

#[test]
fn ascii_three_failures_then_fail() {
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client
        .start_authen(
            1,
            start(AuthenAction::Login, AuthenType::Ascii, AuthenService::Login, "alice", b""),
        )
        .unwrap();
    p.round();
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::GetPass);
    for want in [AuthenStatus::GetPass, AuthenStatus::GetPass, AuthenStatus::Fail] {
        p.client.continue_authen(1, "wrong").unwrap();
        p.round();
        assert_eq!(authen_status(&one_reply(&mut p)), want);
    }
}

#[test]
fn enable_login_carries_the_service_and_level_through_getpass_to_pass() {
    let mut p = Pair::new(KEY, &[KEY], false);
    let mut st = start(AuthenAction::Login, AuthenType::Ascii, AuthenService::Enable, "alice", b"");
    st.priv_lvl = PrivLvl::new(15).unwrap();
    p.client.start_authen(3, st).unwrap();
    p.deliver_to_server();
    match &p.server_events[..] {
        [ServerEvent::Request { session_id: 3, request: Request::AuthenStart(s), .. }] => {
            assert_eq!(
                (s.authen_service, s.priv_lvl.get(), &s.user[..]),
                (AuthenService::Enable, 15, &b"alice"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    let (sid, req) = match p.server_events.pop() {
        Some(ServerEvent::Request { session_id, request, .. }) => (session_id, request),
        other => panic!("{other:?}"),
    };
    answer(&mut p.server, sid, &req);
    p.deliver_to_client();
    let ev = one_reply(&mut p);
    assert!(matches!(ev, ClientEvent::AuthenReply { reply: AuthenReply { noecho: true, .. }, .. }));
    assert_eq!(authen_status(&ev), AuthenStatus::GetPass);
    // The enable password goes out as a CONTINUE of the same session…
    p.client.continue_authen(3, "alice-pass").unwrap();
    p.deliver_to_server();
    match &p.server_events[..] {
        [ServerEvent::Request { session_id: 3, request: Request::AuthenContinue(c), .. }] => {
            assert_eq!(&c.user_msg[..], b"alice-pass");
            assert!(!c.abort);
        }
        other => panic!("{other:?}"),
    }
    let req = match p.server_events.pop() {
        Some(ServerEvent::Request { request, .. }) => request,
        other => panic!("{other:?}"),
    };
    answer(&mut p.server, 3, &req);
    p.deliver_to_client();
    // …and the PASS ends it on both sides.
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::Pass);
    assert_eq!(p.server.open_sessions(), 0);
    assert_eq!(p.server.close_reason(), Some(CloseReason::SessionDone));
}

#[test]
fn the_server_machine_delivers_the_start_fields_the_client_sent() {
    let mut p = Pair::new(KEY, &[KEY], false);
    let mut st = pap("al\u{e9}ce", "pa ss\u{1}word");
    st.port = bytes::Bytes::from_static(b"vty7");
    st.rem_addr = bytes::Bytes::from_static(b"2001:db8::7");
    st.priv_lvl = PrivLvl::new(7).unwrap();
    p.client.start_authen(0x0102_0304, st.clone()).unwrap();
    p.deliver_to_server();
    match &p.server_events[..] {
        [ServerEvent::Request { session_id: 0x0102_0304, key_index: 0, request }] => {
            assert_eq!(request, &Request::AuthenStart(st));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_final_authen_status_reaches_the_client_as_sent_and_ends_the_session() {
    for status in [AuthenStatus::Pass, AuthenStatus::Fail, AuthenStatus::Error] {
        let mut p = Pair::new(KEY, &[KEY], false);
        p.client.start_authen(5, pap("alice", "whatever")).unwrap();
        p.deliver_to_server();
        assert_eq!(p.server_events.len(), 1);
        let mut sent = AuthenReply::new(status, "message \u{2028} from the server");
        sent.data = bytes::Bytes::from_static(b"\x00data");
        p.server.reply_authen(5, sent.clone()).unwrap();
        p.deliver_to_client();
        match one_reply(&mut p) {
            ClientEvent::AuthenReply { session_id: 5, reply } => assert_eq!(reply, sent),
            other => panic!("{status}: {other:?}"),
        }
        assert_eq!(p.server.open_sessions(), 0, "{status}");
        assert_eq!(p.server.close_reason(), Some(CloseReason::SessionDone), "{status}");
        assert!(!p.client.can_start_session(), "{status}: no single-connect, nothing more");
    }
}

#[test]
fn abort_ends_session_without_reply() {
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client
        .start_authen(
            4,
            start(AuthenAction::Login, AuthenType::Ascii, AuthenService::Login, "", b""),
        )
        .unwrap();
    p.round();
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::GetUser);
    p.client.abort_authen(4, "user hit ^C").unwrap();
    p.deliver_to_server();
    assert!(matches!(
        &p.server_events[..],
        [ServerEvent::AuthenAborted { session_id: 4, reason }] if reason == "user hit ^C"
    ));
    assert!(!p.server.has_output(), "no reply to an abort");
    assert_eq!(p.server.open_sessions(), 0);
    assert_eq!(p.client.open_sessions(), 0);
}

#[test]
fn continue_before_prompt_is_refused_locally() {
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client.start_authen(4, pap("alice", "alice-pass")).unwrap();
    assert!(matches!(p.client.continue_authen(4, "x"), Err(SessionError::NotExpected { .. })));
    p.round();
    // the session is over: a continue is for no session
    assert_eq!(p.client.continue_authen(4, "x"), Err(SessionError::NoSuchSession(4)));
}

#[test]
fn server_refuses_prompt_in_pap() {
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client.start_authen(4, pap("alice", "alice-pass")).unwrap();
    p.deliver_to_server();
    let r = p.server.reply_authen(4, AuthenReply::new(AuthenStatus::GetPass, "pw?"));
    assert!(matches!(r, Err(SessionError::BadStatus { .. })), "{r:?}");
    assert!(matches!(
        p.server.reply_author(4, AuthorResponse::new(AuthorStatus::PassAdd, "")),
        Err(SessionError::NotExpected { .. })
    ));
    assert_eq!(
        p.server.reply_authen(99, AuthenReply::new(AuthenStatus::Pass, "")),
        Err(SessionError::NoSuchSession(99))
    );
}

#[test]
fn authorization_and_accounting() {
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client.authorize(10, author("show version")).unwrap();
    p.deliver_to_server();
    match &p.server_events[..] {
        [ServerEvent::Request { request: Request::Author(r), .. }] => {
            let v: Vec<String> = r.args.iter().map(|a| a.to_string()).collect();
            assert_eq!(v, ["service=shell", "cmd=show", "cmd-arg=version"]);
        }
        other => panic!("{other:?}"),
    }
    p.server_events.clear();
    answer(&mut p.server, 10, &Request::Author(author("show version")));
    p.deliver_to_client();
    match one_reply(&mut p) {
        ClientEvent::AuthorResponse { response, .. } => {
            assert_eq!(response.status, AuthorStatus::PassAdd);
            assert_eq!(response.args[0].to_string(), "priv-lvl=15");
        }
        other => panic!("{other:?}"),
    }

    let mut p = Pair::new(KEY, &[KEY], false);
    p.client.authorize(11, author("reload in 5")).unwrap();
    p.round();
    assert!(matches!(
        one_reply(&mut p),
        ClientEvent::AuthorResponse {
            response: AuthorResponse { status: AuthorStatus::Fail, .. },
            ..
        }
    ));

    for flags in [AcctFlags::Start, AcctFlags::Stop, AcctFlags::Watchdog, AcctFlags::WatchdogUpdate]
    {
        let mut p = Pair::new(KEY, &[KEY], false);
        p.client.account(12, AcctRequest { flags, request: author("show clock") }).unwrap();
        p.deliver_to_server();
        assert!(matches!(
            &p.server_events[..],
            [ServerEvent::Request { request: Request::Acct(AcctRequest { flags: f, .. }), .. }] if *f == flags
        ));
        p.server.reply_acct(12, AcctReply::new(AcctStatus::Success, "")).unwrap();
        p.deliver_to_client();
        assert!(matches!(
            one_reply(&mut p),
            ClientEvent::AcctReply { reply: AcctReply { status: AcctStatus::Success, .. }, .. }
        ));
    }
}

#[test]
fn single_connect_multiplexes_interleaved_sessions() {
    let mut p = Pair::new(KEY, &[KEY], true);
    p.client.start_authen(100, pap("alice", "alice-pass")).unwrap();
    p.round();
    assert_eq!(p.client.single_connect(), Some(true));
    assert_eq!(p.server.single_connect(), Some(true));
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::Pass);
    assert_eq!(p.server.close_reason(), None);

    // Interleave: an ASCII login waiting on a prompt, plus authorizations and accounting.
    p.client
        .start_authen(
            200,
            start(AuthenAction::Login, AuthenType::Ascii, AuthenService::Login, "alice", b""),
        )
        .unwrap();
    for sid in 300..310 {
        p.client.authorize(sid, author("show run")).unwrap();
    }
    p.client.account(400, AcctRequest { flags: AcctFlags::Start, request: author("x") }).unwrap();
    p.round();
    let ev = p.take_client_events();
    assert_eq!(ev.len(), 12);
    assert_eq!(p.client.open_sessions(), 1, "the ascii session waits for our password");
    p.client.continue_authen(200, "alice-pass").unwrap();
    p.round();
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::Pass);
    assert_eq!(p.server.open_sessions(), 0);
    assert_eq!(p.server.close_reason(), None);
}

#[test]
fn server_may_decline_single_connect() {
    let mut p = Pair::new(KEY, &[KEY], true);
    p.server = ServerConnection::new(
        ServerConfig { single_connect: false, ..Default::default() },
        vec![Key::new(KEY)].into(),
    );
    p.client.start_authen(1, pap("alice", "alice-pass")).unwrap();
    p.round();
    assert_eq!(p.client.single_connect(), Some(false));
    assert_eq!(p.server.close_reason(), Some(CloseReason::SessionDone));
    assert!(!p.client.can_start_session());
}

#[test]
fn wrong_key_is_detected_on_both_sides() {
    // Server side: ERROR reply, protocol error event, connection closes.
    let mut p = Pair::new("not-the-key", &[KEY], false);
    p.client.authorize(1, author("show version")).unwrap();
    p.deliver_to_server();
    assert!(matches!(
        &p.server_events[..],
        [ServerEvent::ProtocolError {
            session_id: Some(1),
            error: ProtocolError::WrongKey { keys: 1, .. }
        }]
    ));
    assert_eq!(p.server.close_reason(), Some(CloseReason::ProtocolError));
    // The ERROR reply is obfuscated with the server's key: the client cannot read it.
    p.deliver_to_client();
    assert!(matches!(
        one_reply(&mut p),
        ClientEvent::SessionFailed { session_id: 1, error: ClientSessionError::WrongKey(_) }
    ));
}

#[test]
fn key_rotation_tries_each_key_and_sticks() {
    let mut p = Pair::new("new-key", &["old-key", "new-key"], true);
    p.client.start_authen(1, pap("alice", "alice-pass")).unwrap();
    p.round();
    assert_eq!(authen_status(&one_reply(&mut p)), AuthenStatus::Pass);
    assert_eq!(p.server.matched_key(), Some(1));
    assert_eq!(p.client.single_connect(), Some(true));
    // The next session on the connection is opened with the key that matched…
    p.client.authorize(2, author("show version")).unwrap();
    p.deliver_to_server();
    assert!(
        matches!(&p.server_events[..], [ServerEvent::Request { session_id: 2, key_index: 1, .. }]),
        "{:?}",
        p.server_events
    );
    p.server_events.clear();
    // …and only with it: a packet under the first key is a wrong key now, although
    // that key would have been accepted on a new connection.
    let mut old = ClientConnection::new(
        ClientConfig { single_connect: true, ..Default::default() },
        Some(Key::new("old-key")),
    );
    old.authorize(3, author("show version")).unwrap();
    let mut wire = Vec::new();
    old.poll_transmit(&mut wire);
    let mut buf = bytes::BytesMut::from(&wire[..]);
    p.server.handle_input(&mut buf);
    let mut events = Vec::new();
    while let Some(e) = p.server.poll_event() {
        events.push(e);
    }
    assert!(
        matches!(
            &events[..],
            [ServerEvent::ProtocolError {
                session_id: Some(3),
                error: ProtocolError::WrongKey { keys: 2, .. }
            }]
        ),
        "{events:?}"
    );
    assert_eq!(p.server.matched_key(), Some(1));
}

#[test]
fn seq_exhaustion_ends_the_session() {
    let mut p = Pair::new(KEY, &[KEY], false);
    p.client
        .start_authen(
            1,
            start(AuthenAction::Login, AuthenType::Ascii, AuthenService::Login, "", b""),
        )
        .unwrap();
    p.deliver_to_server();
    p.server_events.clear();
    let mut n = 0;
    // The server keeps prompting; the client keeps answering, until seq_no runs out.
    loop {
        match p.server.reply_authen(1, AuthenReply::new(AuthenStatus::GetData, "more")) {
            Ok(()) => {}
            Err(SessionError::SeqExhausted(1)) => break,
            Err(e) => panic!("{e}"),
        }
        p.deliver_to_client();
        p.take_client_events();
        p.client.continue_authen(1, "x").unwrap();
        p.deliver_to_server();
        p.server_events.clear();
        n += 1;
    }
    assert_eq!(n, 126, "server replies 2..=252 prompt, then 254 must be final");
    p.server.reply_authen(1, AuthenReply::new(AuthenStatus::Fail, "")).unwrap();
    p.deliver_to_client();
    assert!(matches!(
        one_reply(&mut p),
        ClientEvent::AuthenReply { reply: AuthenReply { status: AuthenStatus::Fail, .. }, .. }
    ));
}
