//! The local control socket: `tacvs director status|drain|enable|weight`.
//!
//! * [`protocol`]: the typed request and reply, shared by both sides;
//! * [`server`]: the director's end (one short-lived task per request);
//! * [`client`]: the tool's end;
//! * [`render`]: the status table people read; [`html`]: the status page;
//! * [`access`]: the socket's mode and the peer-credential check.

pub mod access;
pub mod client;
pub mod html;
pub mod protocol;
pub mod render;
pub mod server;
