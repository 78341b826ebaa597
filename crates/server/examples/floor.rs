//! The floor for server benchmarks: a TACACS+ responder that does nothing but
//! what every server must — accept, read, de-obfuscate and decode a request
//! with the same protocol machine as `tacvs server`, and send a fixed reply
//! (authentication PASS, authorization PASS_ADD with no arguments, accounting
//! SUCCESS without writing anything). No policy, no logging, no metrics, no
//! journal, one thread.
//!
//! `scripts/bench` runs it and `tacvs server` under the same load and reports
//! the server's CPU per request as a ratio to this floor (docs/benchmarks.md).
//!
//!     cargo run --release -p tacvs-server --example floor -- 127.0.0.1:4950 tacvs-demo-key
//!
//! Prints `listening ADDR` on stdout once bound.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tacvs_proto::{
    AcctReply, AcctStatus, AuthenReply, AuthenStatus, AuthorResponse, AuthorStatus, Key, Request,
    ServerConfig, ServerConnection, ServerEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().unwrap_or("127.0.0.1:4950".into()).parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("listen address: {e}"))
    })?;
    let key = args.next().unwrap_or("tacvs-demo-key".into());
    let keys: Arc<[Key]> = Arc::from(vec![Key::new(key.as_str())]);
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        println!("listening {}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                // Out of descriptors and the like: keep serving the others.
                Err(_) => continue,
            };
            tokio::spawn(serve(stream, keys.clone()));
        }
    })
}

async fn serve(mut stream: TcpStream, keys: Arc<[Key]>) {
    stream.set_nodelay(true).ok();
    let mut conn = ServerConnection::new(ServerConfig::default(), keys);
    let mut rbuf = BytesMut::with_capacity(4096);
    let mut wbuf = Vec::with_capacity(4096);
    loop {
        match stream.read_buf(&mut rbuf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        conn.handle_input(&mut rbuf);
        while let Some(ev) = conn.poll_event() {
            let ServerEvent::Request { session_id, request, .. } = ev else { continue };
            let _ = match request {
                Request::AuthenStart(_) | Request::AuthenContinue(_) => conn
                    .reply_authen(session_id, AuthenReply::new(AuthenStatus::Pass, Bytes::new())),
                Request::Author(_) => conn.reply_author(
                    session_id,
                    AuthorResponse::new(AuthorStatus::PassAdd, Bytes::new()),
                ),
                Request::Acct(_) => {
                    conn.reply_acct(session_id, AcctReply::new(AcctStatus::Success, Bytes::new()))
                }
            };
        }
        wbuf.clear();
        conn.poll_transmit(&mut wbuf);
        if !wbuf.is_empty() && stream.write_all(&wbuf).await.is_err() {
            return;
        }
        if conn.close_reason().is_some() && !conn.has_output() {
            return;
        }
    }
}
