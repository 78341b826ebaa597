//! tacvs-server end to end over loopback TCP, with the real client driver or the
//! sans-IO client machine where a test needs to pipeline. One binary, one module
//! per area.

mod authn;
mod control;
mod flows;
mod ldap;
mod limits;
mod logs;
mod reload;
mod slapd;
mod support;
mod tls;
