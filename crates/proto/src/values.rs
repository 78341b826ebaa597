//! One-byte code points of RFC 8907. Each enum decodes strictly: a value the RFC
//! does not define is a [`DecodeError::UnknownValue`] naming the field.

use crate::error::DecodeError;

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($(#[$vm:meta])* $var:ident = $val:literal => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $var = $val),+ }

        impl $name {
            /// Every defined value, in code-point order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// Decode the wire byte; `packet` names the packet for the error.
            pub fn decode(v: u8, packet: &'static str) -> Result<Self, DecodeError> {
                match v {
                    $($val => Ok($name::$var),)+
                    value => Err(DecodeError::UnknownValue { packet, field: $field, value }),
                }
            }

            /// The wire byte.
            pub fn to_u8(self) -> u8 { self as u8 }

            /// The field's name in decode errors.
            #[cfg(test)]
            pub(crate) fn field(self) -> &'static str { $field }

            /// Lower-case name used in logs, JSON and the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok($name::$var),)+
                    _ => Err(format!(concat!("unknown ", $field, " {:?}; expected one of: {}"), s,
                        [$($s),+].join(", "))),
                }
            }
        }
    };
}

wire_enum!(
    /// Authentication action, RFC 8907 §5.1.
    AuthenAction, "action" {
        /// TAC_PLUS_AUTHEN_LOGIN.
        Login = 0x01 => "login",
        /// TAC_PLUS_AUTHEN_CHPASS.
        ChangePassword = 0x02 => "chpass",
        /// TAC_PLUS_AUTHEN_SENDAUTH.
        SendAuth = 0x04 => "sendauth",
    }
);

wire_enum!(
    /// Authentication type, RFC 8907 §5.1.
    AuthenType, "authen_type" {
        /// TAC_PLUS_AUTHEN_TYPE_NOT_SET: only in authorization/accounting (§6.1).
        NotSet = 0x00 => "not_set",
        /// TAC_PLUS_AUTHEN_TYPE_ASCII.
        Ascii = 0x01 => "ascii",
        /// TAC_PLUS_AUTHEN_TYPE_PAP.
        Pap = 0x02 => "pap",
        /// TAC_PLUS_AUTHEN_TYPE_CHAP.
        Chap = 0x03 => "chap",
        /// TAC_PLUS_AUTHEN_TYPE_MSCHAP (MS-CHAPv1).
        MsChapV1 = 0x05 => "mschapv1",
        /// TAC_PLUS_AUTHEN_TYPE_MSCHAPV2.
        MsChapV2 = 0x06 => "mschapv2",
    }
);

impl AuthenType {
    /// RFC 8907 §5.4.1: the minor version a login of this type uses.
    pub fn minor_version(self) -> crate::header::MinorVersion {
        match self {
            AuthenType::NotSet | AuthenType::Ascii => crate::header::MinorVersion::Default,
            _ => crate::header::MinorVersion::V1,
        }
    }
}

wire_enum!(
    /// Authentication service, RFC 8907 §5.1.
    AuthenService, "authen_service" {
        /// TAC_PLUS_AUTHEN_SVC_NONE.
        None = 0x00 => "none",
        /// TAC_PLUS_AUTHEN_SVC_LOGIN.
        Login = 0x01 => "login",
        /// TAC_PLUS_AUTHEN_SVC_ENABLE: privilege escalation (§5.4.2.6 and §5.4.3).
        Enable = 0x02 => "enable",
        /// TAC_PLUS_AUTHEN_SVC_PPP.
        Ppp = 0x03 => "ppp",
        /// TAC_PLUS_AUTHEN_SVC_PT.
        Pt = 0x05 => "pt",
        /// TAC_PLUS_AUTHEN_SVC_RCMD.
        Rcmd = 0x06 => "rcmd",
        /// TAC_PLUS_AUTHEN_SVC_X25.
        X25 = 0x07 => "x25",
        /// TAC_PLUS_AUTHEN_SVC_NASI.
        Nasi = 0x08 => "nasi",
        /// TAC_PLUS_AUTHEN_SVC_FWPROXY.
        FwProxy = 0x09 => "fwproxy",
    }
);

wire_enum!(
    /// Authentication REPLY status, RFC 8907 §5.2.
    AuthenStatus, "status" {
        /// TAC_PLUS_AUTHEN_STATUS_PASS.
        Pass = 0x01 => "pass",
        /// TAC_PLUS_AUTHEN_STATUS_FAIL.
        Fail = 0x02 => "fail",
        /// TAC_PLUS_AUTHEN_STATUS_GETDATA.
        GetData = 0x03 => "getdata",
        /// TAC_PLUS_AUTHEN_STATUS_GETUSER.
        GetUser = 0x04 => "getuser",
        /// TAC_PLUS_AUTHEN_STATUS_GETPASS.
        GetPass = 0x05 => "getpass",
        /// TAC_PLUS_AUTHEN_STATUS_RESTART.
        Restart = 0x06 => "restart",
        /// TAC_PLUS_AUTHEN_STATUS_ERROR.
        Error = 0x07 => "error",
        /// TAC_PLUS_AUTHEN_STATUS_FOLLOW.
        Follow = 0x21 => "follow",
    }
);

impl AuthenStatus {
    /// Whether the server expects a CONTINUE after this reply (§5.3).
    pub fn expects_continue(self) -> bool {
        matches!(self, AuthenStatus::GetData | AuthenStatus::GetUser | AuthenStatus::GetPass)
    }
}

wire_enum!(
    /// How the user was authenticated, carried in authorization and accounting (§6.1).
    AuthenMethod, "authen_method" {
        /// TAC_PLUS_AUTHEN_METH_NOT_SET.
        NotSet = 0x00 => "not_set",
        /// TAC_PLUS_AUTHEN_METH_NONE.
        None = 0x01 => "none",
        /// TAC_PLUS_AUTHEN_METH_KRB5.
        Krb5 = 0x02 => "krb5",
        /// TAC_PLUS_AUTHEN_METH_LINE.
        Line = 0x03 => "line",
        /// TAC_PLUS_AUTHEN_METH_ENABLE.
        Enable = 0x04 => "enable",
        /// TAC_PLUS_AUTHEN_METH_LOCAL.
        Local = 0x05 => "local",
        /// TAC_PLUS_AUTHEN_METH_TACACSPLUS.
        TacacsPlus = 0x06 => "tacacsplus",
        /// TAC_PLUS_AUTHEN_METH_GUEST.
        Guest = 0x08 => "guest",
        /// TAC_PLUS_AUTHEN_METH_RADIUS.
        Radius = 0x10 => "radius",
        /// TAC_PLUS_AUTHEN_METH_KRB4.
        Krb4 = 0x11 => "krb4",
        /// TAC_PLUS_AUTHEN_METH_RCMD.
        Rcmd = 0x20 => "rcmd",
    }
);

wire_enum!(
    /// Authorization RESPONSE status, RFC 8907 §6.2.
    AuthorStatus, "status" {
        /// TAC_PLUS_AUTHOR_STATUS_PASS_ADD: add the returned AVs to the request's.
        PassAdd = 0x01 => "pass_add",
        /// TAC_PLUS_AUTHOR_STATUS_PASS_REPL: replace the request's AVs with the returned ones.
        PassRepl = 0x02 => "pass_repl",
        /// TAC_PLUS_AUTHOR_STATUS_FAIL.
        Fail = 0x10 => "fail",
        /// TAC_PLUS_AUTHOR_STATUS_ERROR.
        Error = 0x11 => "error",
        /// TAC_PLUS_AUTHOR_STATUS_FOLLOW.
        Follow = 0x21 => "follow",
    }
);

wire_enum!(
    /// Accounting REPLY status, RFC 8907 §7.3.
    AcctStatus, "status" {
        /// TAC_PLUS_ACCT_STATUS_SUCCESS.
        Success = 0x01 => "success",
        /// TAC_PLUS_ACCT_STATUS_ERROR.
        Error = 0x02 => "error",
        /// TAC_PLUS_ACCT_STATUS_FOLLOW.
        Follow = 0x21 => "follow",
    }
);

/// Privilege level 0..=15 (RFC 8907 §5.1: TAC_PLUS_PRIV_LVL_MIN..MAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrivLvl(u8);

impl PrivLvl {
    /// TAC_PLUS_PRIV_LVL_MIN.
    pub const MIN: PrivLvl = PrivLvl(0);
    /// TAC_PLUS_PRIV_LVL_USER.
    pub const USER: PrivLvl = PrivLvl(1);
    /// TAC_PLUS_PRIV_LVL_MAX / ROOT.
    pub const MAX: PrivLvl = PrivLvl(15);

    /// A level, `None` above 15.
    pub fn new(v: u8) -> Option<PrivLvl> {
        (v <= 15).then_some(PrivLvl(v))
    }
    /// Decode the wire byte.
    pub fn decode(v: u8, packet: &'static str) -> Result<Self, DecodeError> {
        PrivLvl::new(v).ok_or(DecodeError::UnknownValue { packet, field: "priv_lvl", value: v })
    }
    /// The numeric level.
    pub fn get(self) -> u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte through every code-point enum: the values the RFC defines (and
    /// only those) decode, re-encode to the same byte and parse back from their
    /// name; every other byte is an error naming the field.
    fn every_byte_of<T>(
        all: &[T],
        field: &str,
        decode: fn(u8) -> Result<T, DecodeError>,
        encode: fn(T) -> u8,
    ) where
        T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr + std::fmt::Display,
    {
        let mut decoded = Vec::new();
        for v in 0..=255u8 {
            match decode(v) {
                Ok(t) => {
                    assert_eq!(encode(t), v, "{field}: {t} re-encodes to another byte");
                    assert!(t.to_string().parse::<T>().is_ok_and(|p| p == t), "{field}: {t}");
                    decoded.push(t);
                }
                Err(DecodeError::UnknownValue { field: f, value, .. }) => {
                    assert_eq!((f, value), (field, v))
                }
                Err(e) => panic!("{field} {v}: unexpected error {e}"),
            }
        }
        assert_eq!(decoded, all, "{field}: the decodable bytes are exactly the defined values");
    }

    #[test]
    fn enums_roundtrip_every_byte() {
        macro_rules! each {
            ($($t:ident),+) => {$(
                every_byte_of($t::ALL, $t::ALL[0].field(), |v| $t::decode(v, "t"), $t::to_u8);
            )+};
        }
        each!(
            AuthenAction,
            AuthenType,
            AuthenService,
            AuthenStatus,
            AuthenMethod,
            AuthorStatus,
            AcctStatus
        );
        assert_eq!(
            AuthenType::decode(4, "start"),
            Err(DecodeError::UnknownValue { packet: "start", field: "authen_type", value: 4 })
        );
        assert!("bogus".parse::<AuthenType>().unwrap_err().contains("mschapv2"));
        for v in 0..=255u8 {
            assert_eq!(PrivLvl::new(v).map(PrivLvl::get), (v <= 15).then_some(v));
        }
    }
}
