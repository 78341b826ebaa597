//! `tacvs lab`: the whole architecture — a device fleet, two directors
//! sharing a VIP with VRRP, N real servers — on one machine in network
//! namespaces, with scenarios that break it on purpose and reports that show
//! what the devices saw. Linux only; needs root (namespaces, raw sockets).

pub mod chart;
pub mod compare;
mod configs;
pub mod measure;
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
    ("dr-director-failover", include_str!("../../../lab/scenarios/dr-director-failover.toml")),
    ("dr-server-crash", include_str!("../../../lab/scenarios/dr-server-crash.toml")),
    ("story-haproxy-tcp", include_str!("../../../lab/scenarios/story-haproxy-tcp.toml")),
    ("story-haproxy-proxyv2", include_str!("../../../lab/scenarios/story-haproxy-proxyv2.toml")),
    ("story-nat", include_str!("../../../lab/scenarios/story-nat.toml")),
    ("story-nat-tuned", include_str!("../../../lab/scenarios/story-nat-tuned.toml")),
    ("story-proxy", include_str!("../../../lab/scenarios/story-proxy.toml")),
    ("story-dr", include_str!("../../../lab/scenarios/story-dr.toml")),
];
