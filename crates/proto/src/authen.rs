//! Authentication bodies, RFC 8907 §5.

use std::fmt;

use bytes::Bytes;

use crate::codec::{Reader, len_u8, len_u16, put_u16};
use crate::error::{DecodeError, EncodeError};
use crate::values::{AuthenAction, AuthenService, AuthenStatus, AuthenType, PrivLvl};

/// Authentication START, RFC 8907 §5.1 (always seq_no 1).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthenStart {
    /// action.
    pub action: AuthenAction,
    /// priv_lvl the user asks for.
    pub priv_lvl: PrivLvl,
    /// authen_type.
    pub authen_type: AuthenType,
    /// authen_service.
    pub authen_service: AuthenService,
    /// user (may be empty: the server then asks with GETUSER).
    pub user: Bytes,
    /// port, e.g. `tty0` or `vty3`.
    pub port: Bytes,
    /// rem_addr: where the user connects from.
    pub rem_addr: Bytes,
    /// data: the PAP password, or the CHAP / MS-CHAP id, challenge and response.
    /// Secret: `Debug` shows only its length.
    pub data: Bytes,
}

const START_FIXED: usize = 8;

impl AuthenStart {
    /// Decode a de-obfuscated START body.
    pub fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        const P: &str = "authentication START";
        let mut r = Reader::new(body, P);
        r.need_fixed(START_FIXED)?;
        // Lengths first: a wrong key shows there, before any code point is judged.
        let codes = [r.u8()?, r.u8()?, r.u8()?, r.u8()?];
        let (ul, pl, rl, dl) =
            (r.u8()? as usize, r.u8()? as usize, r.u8()? as usize, r.u8()? as usize);
        r.expect_remaining(ul + pl + rl + dl)?;
        let action = AuthenAction::decode(codes[0], P)?;
        let priv_lvl = PrivLvl::decode(codes[1], P)?;
        let authen_type = AuthenType::decode(codes[2], P)?;
        let authen_service = AuthenService::decode(codes[3], P)?;
        if authen_type == AuthenType::NotSet {
            return Err(DecodeError::Invalid {
                packet: P,
                field: "authen_type",
                reason: "not_set is only valid in authorization and accounting",
            });
        }
        let start = AuthenStart {
            action,
            priv_lvl,
            authen_type,
            authen_service,
            user: r.bytes(ul)?,
            port: r.bytes(pl)?,
            rem_addr: r.bytes(rl)?,
            data: r.bytes(dl)?,
        };
        r.finish()?;
        Ok(start)
    }

    /// Append the body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let lens = [
            len_u8("user", &self.user)?,
            len_u8("port", &self.port)?,
            len_u8("rem_addr", &self.rem_addr)?,
            len_u8("data", &self.data)?,
        ];
        out.extend_from_slice(&[
            self.action.to_u8(),
            self.priv_lvl.get(),
            self.authen_type.to_u8(),
            self.authen_service.to_u8(),
        ]);
        out.extend_from_slice(&lens);
        for f in [&self.user, &self.port, &self.rem_addr, &self.data] {
            out.extend_from_slice(f);
        }
        Ok(())
    }
}

impl fmt::Debug for AuthenStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenStart")
            .field("action", &self.action)
            .field("priv_lvl", &self.priv_lvl.get())
            .field("authen_type", &self.authen_type)
            .field("authen_service", &self.authen_service)
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("port", &String::from_utf8_lossy(&self.port))
            .field("rem_addr", &String::from_utf8_lossy(&self.rem_addr))
            .field("data", &format_args!("<redacted {} bytes>", self.data.len()))
            .finish()
    }
}

/// Authentication REPLY, RFC 8907 §5.2 (server to client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenReply {
    /// status.
    pub status: AuthenStatus,
    /// TAC_PLUS_REPLY_FLAG_NOECHO: the client should not echo the answer (§5.2).
    pub noecho: bool,
    /// server_msg, shown to the user.
    pub server_msg: Bytes,
    /// data (not shown to the user).
    pub data: Bytes,
}

/// TAC_PLUS_REPLY_FLAG_NOECHO.
pub const REPLY_FLAG_NOECHO: u8 = 0x01;
/// TAC_PLUS_CONTINUE_FLAG_ABORT.
pub const CONTINUE_FLAG_ABORT: u8 = 0x01;

impl AuthenReply {
    /// A reply with a status and message and nothing else.
    pub fn new(status: AuthenStatus, server_msg: impl Into<Bytes>) -> Self {
        AuthenReply { status, noecho: false, server_msg: server_msg.into(), data: Bytes::new() }
    }

    /// Decode a de-obfuscated REPLY body.
    pub fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        const P: &str = "authentication REPLY";
        let mut r = Reader::new(body, P);
        r.need_fixed(6)?;
        let (status, flags) = (r.u8()?, r.u8()?);
        let (ml, dl) = (r.u16()? as usize, r.u16()? as usize);
        r.expect_remaining(ml + dl)?;
        let status = AuthenStatus::decode(status, P)?;
        let reply = AuthenReply {
            status,
            noecho: flags & REPLY_FLAG_NOECHO != 0,
            server_msg: r.bytes(ml)?,
            data: r.bytes(dl)?,
        };
        r.finish()?;
        Ok(reply)
    }

    /// Append the body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let ml = len_u16("server_msg", &self.server_msg)?;
        let dl = len_u16("data", &self.data)?;
        out.extend_from_slice(&[
            self.status.to_u8(),
            if self.noecho { REPLY_FLAG_NOECHO } else { 0 },
        ]);
        put_u16(out, ml);
        put_u16(out, dl);
        out.extend_from_slice(&self.server_msg);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Authentication CONTINUE, RFC 8907 §5.3 (client to server).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthenContinue {
    /// user_msg: the user's answer to the prompt (a password after GETPASS).
    /// Secret: `Debug` shows only its length.
    pub user_msg: Bytes,
    /// data.
    pub data: Bytes,
    /// TAC_PLUS_CONTINUE_FLAG_ABORT: the client abandons the session.
    pub abort: bool,
}

impl AuthenContinue {
    /// Decode a de-obfuscated CONTINUE body.
    pub fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        const P: &str = "authentication CONTINUE";
        let mut r = Reader::new(body, P);
        r.need_fixed(5)?;
        let (ml, dl) = (r.u16()? as usize, r.u16()? as usize);
        let flags = r.u8()?;
        r.expect_remaining(ml + dl)?;
        let c = AuthenContinue {
            user_msg: r.bytes(ml)?,
            data: r.bytes(dl)?,
            abort: flags & CONTINUE_FLAG_ABORT != 0,
        };
        r.finish()?;
        Ok(c)
    }

    /// Append the body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let ml = len_u16("user_msg", &self.user_msg)?;
        let dl = len_u16("data", &self.data)?;
        put_u16(out, ml);
        put_u16(out, dl);
        out.push(if self.abort { CONTINUE_FLAG_ABORT } else { 0 });
        out.extend_from_slice(&self.user_msg);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

impl fmt::Debug for AuthenContinue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenContinue")
            .field("user_msg", &format_args!("<redacted {} bytes>", self.user_msg.len()))
            .field("data", &format_args!("<redacted {} bytes>", self.data.len()))
            .field("abort", &self.abort)
            .finish()
    }
}
