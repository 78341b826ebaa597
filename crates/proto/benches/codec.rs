//! Codec cost of the packets an automation fleet sends most: a command
//! authorization and an accounting STOP, each encoded + obfuscated and
//! de-obfuscated + decoded, and one full server-side request/response.

use std::hint::black_box;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tacvs_proto::*;

fn arg(s: &str) -> Argument {
    s.parse().unwrap()
}

/// The request context an automation account sends with every request.
fn context(args: Vec<Argument>) -> AaaRequest {
    AaaRequest {
        authen_method: AuthenMethod::TacacsPlus,
        priv_lvl: PrivLvl::new(15).unwrap(),
        authen_type: AuthenType::Ascii,
        authen_service: AuthenService::Login,
        user: Bytes::from_static(b"automation"),
        port: Bytes::from_static(b"vty3"),
        rem_addr: Bytes::from_static(b"10.20.30.40"),
        args,
    }
}

fn author_request() -> Body {
    Body::AuthorRequest(context(vec![
        arg("service=shell"),
        arg("cmd=show"),
        arg("cmd-arg=running-config"),
        arg("cmd-arg=interface"),
        arg("cmd-arg=GigabitEthernet0/1"),
        arg("cmd-arg=<cr>"),
    ]))
}

fn acct_request() -> Body {
    Body::AcctRequest(AcctRequest {
        flags: AcctFlags::Stop,
        request: context(vec![
            arg("task_id=31337"),
            arg("timezone=UTC"),
            arg("service=shell"),
            arg("start_time=1764100000"),
            arg("stop_time=1764100002"),
            arg("elapsed_time=2"),
            arg("priv-lvl=15"),
            arg("cmd=interface GigabitEthernet0/1 <cr>"),
        ]),
    })
}

fn header(body: &Body) -> Header {
    Header {
        minor: MinorVersion::Default,
        packet_type: body.packet_type(),
        seq_no: 1,
        flags: Flags::default(),
        session_id: 0x1234_5678,
        length: 0,
    }
}

fn bench_codec(c: &mut Criterion) {
    let key = Key::new("a-typical-32-byte-shared-secret!");
    for (name, body) in [("author_request", author_request()), ("acct_request", acct_request())] {
        let mut wire = Vec::new();
        seal(header(&body), &body, Some(&key), DEFAULT_MAX_BODY, &mut wire).unwrap();
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(wire.len() as u64));
        let mut out = Vec::with_capacity(512);
        g.bench_function("encode+obfuscate", |b| {
            b.iter(|| {
                out.clear();
                seal(header(&body), black_box(&body), Some(&key), DEFAULT_MAX_BODY, &mut out)
                    .unwrap();
                black_box(out.len())
            })
        });
        g.bench_function("deobfuscate+decode", |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(black_box(&wire[..]));
                let (h, raw) = split_frame(&mut buf, DEFAULT_MAX_BODY).unwrap().unwrap();
                black_box(open_body(&h, raw, Some(&key)).unwrap())
            })
        });
        g.finish();
    }

    // One server-side authorization: frame, decode, answer, encode.
    let body = author_request();
    let mut wire = Vec::new();
    seal(header(&body), &body, Some(&key), DEFAULT_MAX_BODY, &mut wire).unwrap();
    let keys: Arc<[Key]> = vec![key.clone()].into();
    let mut out = Vec::with_capacity(512);
    c.bench_function("server_machine/authorization_roundtrip", |b| {
        b.iter(|| {
            let mut conn = ServerConnection::new(ServerConfig::default(), keys.clone());
            let mut buf = BytesMut::from(&wire[..]);
            conn.handle_input(&mut buf);
            let Some(ServerEvent::Request { session_id, .. }) = conn.poll_event() else {
                unreachable!()
            };
            let mut r = AuthorResponse::new(AuthorStatus::PassAdd, Bytes::new());
            r.args.push(arg("priv-lvl=15"));
            conn.reply_author(session_id, r).unwrap();
            out.clear();
            conn.poll_transmit(&mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
