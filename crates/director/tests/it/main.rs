//! Integration tests of tacvs-director: one binary, one module per concern.

mod core;
mod e2e;
mod vrrp;
