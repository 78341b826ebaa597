//! The director's sans-IO core.

pub mod health;
pub mod maglev;
pub mod sched;
pub mod vrrp;
