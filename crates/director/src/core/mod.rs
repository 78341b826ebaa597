//! The director's sans-IO core.

pub mod dr;
pub mod health;
pub mod maglev;
pub mod sched;
pub mod vrrp;
