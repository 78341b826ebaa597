//! `tacvs lab`: the whole architecture — a device fleet, two directors
//! sharing a VIP with VRRP, N real servers — on one machine in network
//! namespaces, with scenarios that break it on purpose and reports that show
//! what the devices saw. Linux only; needs root (namespaces, raw sockets).

pub mod chart;
mod configs;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod topo;

pub use report::LabReport;
pub use runner::{RunOptions, run};
pub use scenario::Scenario;
pub use topo::{Lab, LabError, Role, Spec};

/// The scenarios shipped under `lab/scenarios/`, built in.
pub const SHIPPED: &[(&str, &str)] = &[
    ("baseline", include_str!("../../../lab/scenarios/baseline.toml")),
    ("server-crash", include_str!("../../../lab/scenarios/server-crash.toml")),
    ("director-failover", include_str!("../../../lab/scenarios/director-failover.toml")),
    ("flapping-server", include_str!("../../../lab/scenarios/flapping-server.toml")),
    ("case-2016", include_str!("../../../lab/scenarios/case-2016.toml")),
];
