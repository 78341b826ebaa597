//! # tacvs-sim
//!
//! A fleet of simulated network devices, each with its own source address,
//! running a workload profile against a TACACS+ target. Open loop (a fixed
//! aggregate rate, latency measured from each request's *intended* send time,
//! so a slow target cannot slow the generator and hide its own latency) or
//! closed loop (a fixed number of requesters). Every outcome is classified.
//!
//! What it offers: [`SimConfig`] and [`run`] / [`run_with_progress`], which
//! return a [`Report`] (schema in `docs/sim-report.md`); [`Profile`]s of
//! what a device does; [`Expect`] assertions over a report; [`plan`], the
//! server count for a fleet from a report that saturated one server.
//!
//! Inside: `config` (a run's settings and what makes one invalid), `request`
//! (a profile step as a TACACS+ request, a reply as an outcome), `collect`
//! (outcomes into histograms, series and the report), `engine` (devices,
//! the socket budget, the run), and the drivers: `open` (a fixed rate),
//! `closed` (a fixed number of requesters, one session at a time) and
//! `pipeline` (single-connect connections with many sessions in flight).

mod closed;
mod collect;
mod config;
mod engine;
pub mod expect;
mod open;
mod pipeline;
pub mod plan;
pub mod profile;
pub mod report;
mod request;
mod sys;

pub use collect::Progress;
pub use config::{DeviceCerts, Load, SimConfig, SimError, SimTls, nth_address};
pub use engine::{run, run_with_progress};
pub use expect::Expect;
pub use profile::{Login, Op, Profile, Style};
pub use report::{Report, TlsHandshakes, Totals};
pub use request::ack_key;
pub use sys::{cpu_seconds, open_file_limit};
