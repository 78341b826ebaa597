//! The client state machine with sessions open, fed hostile server bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tacvs_proto::*;

fuzz_target!(|data: &[u8]| {
    let mut c = ClientConnection::new(ClientConfig { single_connect: true, ..Default::default() }, Some(Key::new("fuzz-key")));
    let start = AuthenStart {
        action: AuthenAction::Login,
        priv_lvl: PrivLvl::USER,
        authen_type: AuthenType::Ascii,
        authen_service: AuthenService::Login,
        user: Bytes::new(),
        port: Bytes::new(),
        rem_addr: Bytes::new(),
        data: Bytes::new(),
    };
    let _ = c.start_authen(0x0a0b_0c0d, start);
    let mut buf = BytesMut::from(data);
    c.handle_input(&mut buf);
    while let Some(ev) = c.poll_event() {
        if let ClientEvent::AuthenReply { session_id, reply } = ev {
            if reply.status.expects_continue() {
                let _ = c.continue_authen(session_id, "x");
            }
        }
    }
});
