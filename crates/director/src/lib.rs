//! # tacvs-director
//!
//! The director: virtual services in front of real servers. `core` is pure
//! (schedulers, the Maglev table, health state machines): state and time in,
//! decisions out, so every behaviour is tested with fake time and fixed seeds.

pub mod config;
pub mod core;
pub mod failover;
pub mod run;
pub mod splice;
