//! Authorization (RFC 8907 §6) and accounting (§7) bodies. Both requests carry
//! the same context fields and AV list, so they share [`AaaRequest`].

use bytes::Bytes;

use crate::av::Argument;
use crate::codec::{Reader, len_u8, len_u16, put_u16};
use crate::error::{DecodeError, EncodeError};
use crate::values::{AcctStatus, AuthenMethod, AuthenService, AuthenType, AuthorStatus, PrivLvl};

/// The request context shared by authorization REQUEST (§6.1) and accounting
/// REQUEST (§7.1): how the user authenticated, who and where they are, and the AVs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AaaRequest {
    /// authen_method.
    pub authen_method: AuthenMethod,
    /// priv_lvl.
    pub priv_lvl: PrivLvl,
    /// authen_type.
    pub authen_type: AuthenType,
    /// authen_service.
    pub authen_service: AuthenService,
    /// user.
    pub user: Bytes,
    /// port.
    pub port: Bytes,
    /// rem_addr.
    pub rem_addr: Bytes,
    /// AV pairs, in order.
    pub args: Vec<Argument>,
}

/// Authorization REQUEST, RFC 8907 §6.1.
pub type AuthorRequest = AaaRequest;

impl AaaRequest {
    /// A request with the usual defaults for a device shell: method TACACS+,
    /// priv-lvl 1, type ASCII, service LOGIN.
    pub fn new(user: impl Into<Bytes>, args: Vec<Argument>) -> Self {
        AaaRequest {
            authen_method: AuthenMethod::TacacsPlus,
            priv_lvl: PrivLvl::USER,
            authen_type: AuthenType::Ascii,
            authen_service: AuthenService::Login,
            user: user.into(),
            port: Bytes::new(),
            rem_addr: Bytes::new(),
            args,
        }
    }

    /// `flags` is the accounting flags byte, judged after the lengths like the rest.
    fn decode_after(
        r: &mut Reader<'_>,
        packet: &'static str,
        flags: Option<u8>,
    ) -> Result<(Self, Option<AcctFlags>), DecodeError> {
        // Lengths first: a wrong key shows there, before any code point is judged.
        let codes = [r.u8()?, r.u8()?, r.u8()?, r.u8()?];
        let (ul, pl, rl, argc) =
            (r.u8()? as usize, r.u8()? as usize, r.u8()? as usize, r.u8()? as usize);
        let arg_lens = r.lens(argc)?;
        let declared = ul + pl + rl + arg_lens.iter().map(|&l| l as usize).sum::<usize>();
        r.expect_remaining(declared)?;
        let flags = flags.map(|f| AcctFlags::decode(f, packet)).transpose()?;
        let authen_method = AuthenMethod::decode(codes[0], packet)?;
        let priv_lvl = PrivLvl::decode(codes[1], packet)?;
        let authen_type = AuthenType::decode(codes[2], packet)?;
        let authen_service = AuthenService::decode(codes[3], packet)?;
        let user = r.bytes(ul)?;
        let port = r.bytes(pl)?;
        let rem_addr = r.bytes(rl)?;
        // argc <= 255 and every length was checked against the body above.
        let mut args = Vec::with_capacity(argc);
        for &l in arg_lens {
            args.push(Argument::parse(r.bytes(l as usize)?, packet)?);
        }
        let req = AaaRequest {
            authen_method,
            priv_lvl,
            authen_type,
            authen_service,
            user,
            port,
            rem_addr,
            args,
        };
        Ok((req, flags))
    }

    fn encode_after(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let argc = u8::try_from(self.args.len())
            .map_err(|_| EncodeError::TooManyArgs { count: self.args.len() })?;
        let lens = [
            len_u8("user", &self.user)?,
            len_u8("port", &self.port)?,
            len_u8("rem_addr", &self.rem_addr)?,
        ];
        out.extend_from_slice(&[
            self.authen_method.to_u8(),
            self.priv_lvl.get(),
            self.authen_type.to_u8(),
            self.authen_service.to_u8(),
        ]);
        out.extend_from_slice(&lens);
        out.push(argc);
        for a in &self.args {
            out.push(len_u8("argument", a.as_bytes())?);
        }
        out.extend_from_slice(&self.user);
        out.extend_from_slice(&self.port);
        out.extend_from_slice(&self.rem_addr);
        for a in &self.args {
            out.extend_from_slice(a.as_bytes());
        }
        Ok(())
    }

    /// Decode a de-obfuscated authorization REQUEST body.
    pub fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        const P: &str = "authorization REQUEST";
        let mut r = Reader::new(body, P);
        r.need_fixed(8)?;
        let (req, _) = Self::decode_after(&mut r, P, None)?;
        r.finish()?;
        Ok(req)
    }

    /// Append the authorization REQUEST body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode_after(out)
    }

    /// The first argument with this name.
    pub fn arg(&self, name: &[u8]) -> Option<&Argument> {
        self.args.iter().find(|a| a.name() == name)
    }
}

/// Encode the arg list of a response: (arg_cnt, lengths) then the args later.
fn arg_header(args: &[Argument]) -> Result<u8, EncodeError> {
    for a in args {
        len_u8("argument", a.as_bytes())?;
    }
    u8::try_from(args.len()).map_err(|_| EncodeError::TooManyArgs { count: args.len() })
}

/// Authorization RESPONSE, RFC 8907 §6.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorResponse {
    /// status.
    pub status: AuthorStatus,
    /// AVs to add (PASS_ADD) or to use instead of the request's (PASS_REPL).
    pub args: Vec<Argument>,
    /// server_msg, for the user.
    pub server_msg: Bytes,
    /// data, for the administrator's log.
    pub data: Bytes,
}

impl AuthorResponse {
    /// A response with a status, a message and no AVs.
    pub fn new(status: AuthorStatus, server_msg: impl Into<Bytes>) -> Self {
        AuthorResponse {
            status,
            args: Vec::new(),
            server_msg: server_msg.into(),
            data: Bytes::new(),
        }
    }

    /// Decode a de-obfuscated RESPONSE body.
    pub fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        const P: &str = "authorization RESPONSE";
        let mut r = Reader::new(body, P);
        r.need_fixed(6)?;
        let status = r.u8()?;
        let argc = r.u8()? as usize;
        let (ml, dl) = (r.u16()? as usize, r.u16()? as usize);
        let arg_lens = r.lens(argc)?;
        r.expect_remaining(ml + dl + arg_lens.iter().map(|&l| l as usize).sum::<usize>())?;
        let status = AuthorStatus::decode(status, P)?;
        let server_msg = r.bytes(ml)?;
        let data = r.bytes(dl)?;
        let mut args = Vec::with_capacity(argc);
        for &l in arg_lens {
            args.push(Argument::parse(r.bytes(l as usize)?, P)?);
        }
        r.finish()?;
        Ok(AuthorResponse { status, args, server_msg, data })
    }

    /// Append the body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let argc = arg_header(&self.args)?;
        let ml = len_u16("server_msg", &self.server_msg)?;
        let dl = len_u16("data", &self.data)?;
        out.extend_from_slice(&[self.status.to_u8(), argc]);
        put_u16(out, ml);
        put_u16(out, dl);
        out.extend(self.args.iter().map(|a| a.as_bytes().len() as u8));
        out.extend_from_slice(&self.server_msg);
        out.extend_from_slice(&self.data);
        for a in &self.args {
            out.extend_from_slice(a.as_bytes());
        }
        Ok(())
    }
}

/// Accounting record kind: the flags byte of RFC 8907 §7.1, restricted to the
/// combinations §7.2 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcctFlags {
    /// TAC_PLUS_ACCT_FLAG_START.
    Start,
    /// TAC_PLUS_ACCT_FLAG_STOP.
    Stop,
    /// TAC_PLUS_ACCT_FLAG_WATCHDOG without an update.
    Watchdog,
    /// TAC_PLUS_ACCT_FLAG_WATCHDOG | START: watchdog with an update.
    WatchdogUpdate,
}

impl AcctFlags {
    const START: u8 = 0x02;
    const STOP: u8 = 0x04;
    const WATCHDOG: u8 = 0x08;

    /// Decode the flags byte; invalid combinations are errors (§7.2).
    pub fn decode(v: u8, packet: &'static str) -> Result<Self, DecodeError> {
        // Bit 0 was TAC_PLUS_ACCT_FLAG_MORE in older drafts; RFC 8907 drops it, so ignore it.
        match v & (Self::START | Self::STOP | Self::WATCHDOG) {
            Self::START => Ok(AcctFlags::Start),
            Self::STOP => Ok(AcctFlags::Stop),
            Self::WATCHDOG => Ok(AcctFlags::Watchdog),
            x if x == Self::WATCHDOG | Self::START => Ok(AcctFlags::WatchdogUpdate),
            _ => Err(DecodeError::UnknownValue { packet, field: "flags", value: v }),
        }
    }

    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            AcctFlags::Start => Self::START,
            AcctFlags::Stop => Self::STOP,
            AcctFlags::Watchdog => Self::WATCHDOG,
            AcctFlags::WatchdogUpdate => Self::WATCHDOG | Self::START,
        }
    }

    /// Lower-case name for logs and journals.
    pub fn as_str(self) -> &'static str {
        match self {
            AcctFlags::Start => "start",
            AcctFlags::Stop => "stop",
            AcctFlags::Watchdog => "watchdog",
            AcctFlags::WatchdogUpdate => "watchdog-update",
        }
    }
}

/// Accounting REQUEST, RFC 8907 §7.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcctRequest {
    /// Record kind.
    pub flags: AcctFlags,
    /// The context and AVs, laid out as in authorization.
    pub request: AaaRequest,
}

impl AcctRequest {
    /// Decode a de-obfuscated accounting REQUEST body.
    pub fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        const P: &str = "accounting REQUEST";
        let mut r = Reader::new(body, P);
        r.need_fixed(9)?;
        let flags = r.u8()?;
        let (request, flags) = AaaRequest::decode_after(&mut r, P, Some(flags))?;
        r.finish()?;
        Ok(AcctRequest { flags: flags.expect("flags were passed in"), request })
    }

    /// Append the body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.flags.to_u8());
        self.request.encode_after(out)
    }
}

/// Accounting REPLY, RFC 8907 §7.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcctReply {
    /// status.
    pub status: AcctStatus,
    /// server_msg.
    pub server_msg: Bytes,
    /// data.
    pub data: Bytes,
}

impl AcctReply {
    /// A reply with a status and message.
    pub fn new(status: AcctStatus, server_msg: impl Into<Bytes>) -> Self {
        AcctReply { status, server_msg: server_msg.into(), data: Bytes::new() }
    }

    /// Decode a de-obfuscated REPLY body.
    pub fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        const P: &str = "accounting REPLY";
        let mut r = Reader::new(body, P);
        r.need_fixed(5)?;
        let (ml, dl) = (r.u16()? as usize, r.u16()? as usize);
        let status = r.u8()?;
        r.expect_remaining(ml + dl)?;
        let status = AcctStatus::decode(status, P)?;
        let reply = AcctReply { status, server_msg: r.bytes(ml)?, data: r.bytes(dl)? };
        r.finish()?;
        Ok(reply)
    }

    /// Append the body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let ml = len_u16("server_msg", &self.server_msg)?;
        let dl = len_u16("data", &self.data)?;
        put_u16(out, ml);
        put_u16(out, dl);
        out.push(self.status.to_u8());
        out.extend_from_slice(&self.server_msg);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}
