//! Integration tests of tacvs-director: one binary, one module per concern.

mod control;
mod core;
mod e2e;
mod lifecycle;
mod limits;
mod tls;
mod vrrp;
