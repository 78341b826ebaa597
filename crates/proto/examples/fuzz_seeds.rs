//! Write seed inputs for the cargo-fuzz targets: `cargo run -p tacvs-proto --example fuzz_seeds -- fuzz/corpus`.

use std::path::PathBuf;

use bytes::Bytes;
use tacvs_proto::*;

fn frame(seq: u8, body: &Body, key: Option<&str>, sc: bool) -> Vec<u8> {
    let h = Header {
        minor: MinorVersion::Default,
        packet_type: body.packet_type(),
        seq_no: seq,
        flags: Flags::default().with(Flags::SINGLE_CONNECT, sc),
        session_id: 0x0a0b_0c0d,
        length: 0,
    };
    let mut out = Vec::new();
    seal(h, body, key.map(Key::new).as_ref(), DEFAULT_MAX_BODY, &mut out).unwrap();
    out
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let start = |ty: AuthenType, user: &'static str, data: &'static [u8]| {
        Body::AuthenStart(AuthenStart {
            action: AuthenAction::Login,
            priv_lvl: PrivLvl::USER,
            authen_type: ty,
            authen_service: AuthenService::Login,
            user: Bytes::from_static(user.as_bytes()),
            port: Bytes::from_static(b"tty0"),
            rem_addr: Bytes::from_static(b"10.0.0.1"),
            data: Bytes::from_static(data),
        })
    };
    let args: Vec<Argument> = ["service=shell", "cmd=show", "cmd-arg=version"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let req = AaaRequest::new("alice", args);
    let client_bodies: Vec<(u8, Body)> = vec![
        (1, start(AuthenType::Pap, "alice", b"alice-pass")),
        (1, start(AuthenType::Ascii, "", b"")),
        (1, start(AuthenType::Chap, "alice", &[1; 33])),
        (
            3,
            Body::AuthenContinue(AuthenContinue {
                user_msg: "alice".into(),
                data: Bytes::new(),
                abort: false,
            }),
        ),
        (1, Body::AuthorRequest(req.clone())),
        (1, Body::AcctRequest(AcctRequest { flags: AcctFlags::Start, request: req })),
    ];
    let server_bodies: Vec<(u8, Body)> = vec![
        (2, Body::AuthenReply(AuthenReply::new(AuthenStatus::GetPass, "Password: "))),
        (2, Body::AuthorResponse(AuthorResponse::new(AuthorStatus::PassAdd, "ok"))),
        (2, Body::AcctReply(AcctReply::new(AcctStatus::Success, ""))),
    ];
    let mut n = 0;
    let mut write = |dir: &str, name: String, bytes: Vec<u8>| -> std::io::Result<()> {
        let d = root.join(dir);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(name), bytes)?;
        n += 1;
        Ok(())
    };
    for (i, (seq, b)) in client_bodies.iter().chain(server_bodies.iter()).enumerate() {
        write("packet_decode", format!("seed-{i}-keyed"), frame(*seq, b, Some("fuzz-key"), false))?;
        write("packet_decode", format!("seed-{i}-clear"), frame(*seq, b, None, false))?;
    }
    for (i, (seq, b)) in client_bodies.iter().enumerate() {
        // ctl byte 0x80 | key mode 0: single-connect allowed, key "fuzz-key".
        let mut s = vec![0x80 | 0x18];
        s.extend(frame(*seq, b, Some("fuzz-key"), true));
        write("server_session", format!("seed-{i}"), s)?;
    }
    // An ASCII login: START, then CONTINUE answering the prompt.
    let mut s = vec![0x80 | 0x18];
    s.extend(frame(1, &client_bodies[1].1, Some("fuzz-key"), true));
    s.extend(frame(3, &client_bodies[3].1, Some("fuzz-key"), true));
    write("server_session", "seed-ascii".into(), s)?;
    for (i, (seq, b)) in server_bodies.iter().enumerate() {
        write("client_session", format!("seed-{i}"), frame(*seq, b, Some("fuzz-key"), true))?;
    }
    println!("wrote {n} seeds under {}", root.display());
    Ok(())
}
