//! Interoperability with the independent `tacacs-plus` / `tacacs-plus-protocol`
//! crates: their packets decode with ours, and their client accepts the replies
//! our server state machine produces.

use std::sync::Arc;

use bytes::BytesMut;
use futures::FutureExt;
use tacacs_plus::{
    AuthenticationType as TheirType, Client, ConnectionFactory, ContextBuilder, ResponseStatus,
};
use tacacs_plus_protocol as theirs;
use tacvs_proto::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::support::{KEY, answer};

/// Drive one server connection over an in-memory stream with the test policy.
async fn serve(mut io: DuplexStream) {
    let keys: Arc<[Key]> = vec![Key::new(KEY)].into();
    let mut conn = ServerConnection::new(ServerConfig::default(), keys);
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::new();
    loop {
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        conn.handle_input(&mut buf);
        while let Some(ev) = conn.poll_event() {
            if let ServerEvent::Request { session_id, request, .. } = ev {
                answer(&mut conn, session_id, &request);
            }
        }
        conn.poll_transmit(&mut out);
        if io.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
        if conn.close_reason().is_some() {
            return;
        }
    }
}

fn client() -> Client<Compat<DuplexStream>> {
    let factory: ConnectionFactory<Compat<DuplexStream>> = Box::new(|| {
        let (a, b) = tokio::io::duplex(64 * 1024);
        tokio::spawn(serve(b));
        async move { Ok(a.compat()) }.boxed()
    });
    Client::new(factory, Some(KEY))
}

#[tokio::test]
async fn their_client_pap_and_chap_against_our_server() {
    let c = client();
    for (ty, pw, want) in [
        (TheirType::Pap, "alice-pass", ResponseStatus::Success),
        (TheirType::Pap, "nope", ResponseStatus::Failure),
        (TheirType::Chap, "alice-pass", ResponseStatus::Success),
        (TheirType::Chap, "nope", ResponseStatus::Failure),
    ] {
        let ctx = ContextBuilder::new("alice".to_owned()).build();
        let r = c.authenticate(ctx, pw, ty).await.expect("exchange completes");
        assert_eq!(r.status, want, "{ty:?} with {pw}");
    }
}

#[tokio::test]
async fn their_client_authorize_and_account_against_our_server() {
    let c = client();
    let ctx = ContextBuilder::new("alice".to_owned()).build();
    let args = vec![
        theirs::Argument::new(
            theirs::FieldText::try_from("service").unwrap(),
            theirs::FieldText::try_from("shell").unwrap(),
            true,
        )
        .unwrap(),
        theirs::Argument::new(
            theirs::FieldText::try_from("cmd").unwrap(),
            theirs::FieldText::try_from("show").unwrap(),
            true,
        )
        .unwrap(),
    ];
    let r = c.authorize(ctx.clone(), args).await.expect("authorization completes");
    assert_eq!(r.status, ResponseStatus::Success);
    assert!(
        r.arguments.iter().any(|a| a.name().as_ref() == "priv-lvl" && a.value().as_ref() == "15"),
        "{:?}",
        r.arguments
    );

    let deny = vec![
        theirs::Argument::new(
            theirs::FieldText::try_from("cmd").unwrap(),
            theirs::FieldText::try_from("reload").unwrap(),
            true,
        )
        .unwrap(),
    ];
    assert_eq!(c.authorize(ctx.clone(), deny).await.unwrap().status, ResponseStatus::Failure);

    let (task, _) = c.account_begin(ctx, Vec::new()).await.expect("accounting START acknowledged");
    task.update(Vec::new()).await.expect("WATCHDOG acknowledged");
    task.stop(Vec::new()).await.expect("STOP acknowledged");
}

#[test]
fn their_bytes_decode_with_ours_and_our_reply_decodes_with_theirs() {
    // Their authorization REQUEST, obfuscated with the shared key.
    let ctx = theirs::AuthenticationContext {
        privilege_level: theirs::PrivilegeLevel::new(15).unwrap(),
        authentication_type: theirs::AuthenticationType::Ascii,
        service: theirs::AuthenticationService::Login,
    };
    let user = theirs::UserInformation::new(
        "alice",
        theirs::FieldText::try_from("vty0").unwrap(),
        theirs::FieldText::try_from("192.0.2.9").unwrap(),
    )
    .unwrap();
    let arg_list = [
        theirs::Argument::new(
            theirs::FieldText::try_from("service").unwrap(),
            theirs::FieldText::try_from("shell").unwrap(),
            true,
        )
        .unwrap(),
        theirs::Argument::new(
            theirs::FieldText::try_from("cmd").unwrap(),
            theirs::FieldText::try_from("show").unwrap(),
            true,
        )
        .unwrap(),
        theirs::Argument::new(
            theirs::FieldText::try_from("cmd-arg").unwrap(),
            theirs::FieldText::try_from("version").unwrap(),
            false,
        )
        .unwrap(),
    ];
    let req = theirs::authorization::Request::new(
        theirs::AuthenticationMethod::TacacsPlus,
        ctx,
        user,
        theirs::Arguments::new(&arg_list).unwrap(),
    );
    let header = theirs::HeaderInfo::new(
        theirs::Version::new(theirs::MajorVersion::RFC8907, theirs::MinorVersion::Default),
        1,
        theirs::PacketFlags::empty(),
        0x1234_5678,
    );
    let mut wire = [0u8; 256];
    let n = theirs::Packet::new(header, req).serialize(KEY, &mut wire).unwrap();

    let keys: Arc<[Key]> = vec![Key::new(KEY)].into();
    let mut server = ServerConnection::new(ServerConfig::default(), keys);
    let mut buf = BytesMut::from(&wire[..n]);
    server.handle_input(&mut buf);
    let Some(ServerEvent::Request { session_id: 0x1234_5678, request: Request::Author(r), .. }) =
        server.poll_event()
    else {
        panic!("their request did not decode");
    };
    assert_eq!(
        (&r.user[..], &r.port[..], &r.rem_addr[..], r.priv_lvl.get()),
        (&b"alice"[..], &b"vty0"[..], &b"192.0.2.9"[..], 15)
    );
    assert_eq!(r.authen_method, AuthenMethod::TacacsPlus);
    let names: Vec<String> = r.args.iter().map(|a| a.to_string()).collect();
    assert_eq!(names, ["service=shell", "cmd=show", "cmd-arg*version"]);

    // Our RESPONSE, read by their decoder.
    let mut resp = AuthorResponse::new(AuthorStatus::PassRepl, "hello");
    resp.args = vec!["priv-lvl=7".parse().unwrap(), "idletime*30".parse().unwrap()];
    resp.data = "admin log".into();
    server.reply_author(0x1234_5678, resp).unwrap();
    let mut out = Vec::new();
    server.poll_transmit(&mut out);
    let theirs_reply = theirs::Packet::<theirs::authorization::Reply>::deserialize(KEY, &mut out)
        .expect("they decode our reply");
    assert_eq!(*theirs_reply.body().status(), theirs::authorization::Status::PassReplace);
    assert_eq!(theirs_reply.body().server_message().as_ref(), "hello");
    assert_eq!(theirs_reply.body().data().as_ref(), "admin log");
    let got: Vec<(String, String, bool)> = theirs_reply
        .body()
        .iter_arguments()
        .map(|a| (a.name().as_ref().to_owned(), a.value().as_ref().to_owned(), a.mandatory()))
        .collect();
    assert_eq!(
        got,
        [("priv-lvl".into(), "7".into(), true), ("idletime".into(), "30".into(), false)]
    );
    assert_eq!(theirs_reply.header().sequence_number(), 2);
}
