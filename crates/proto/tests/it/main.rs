//! Integration tests of tacvs-proto: one binary, one module per concern.

mod figures;
mod hostile;
mod interop;
mod roundtrip;
mod sessions;
mod support;
mod tls;
