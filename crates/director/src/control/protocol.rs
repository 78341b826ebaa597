//! The control protocol: one JSON request line from `tacvs director
//! status|drain|enable|weight` (or any tool), one JSON reply line back. Both
//! sides use these types; nothing reads the JSON by hand.
//!
//! ```text
//! → {"cmd":"drain","server":"10.49.1.1:49"}
//! ← {"reply":"changed","changes":[{"service":"tacacs","server":"10.49.1.1:49","from":1,"to":0}]}
//! ```

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The longest request line accepted.
pub const MAX_REQUEST: usize = 4096;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Services, real servers and VRRP.
    Status,
    /// Weight 0 for a real server in every service that has it: no new
    /// connections, open ones continue.
    Drain {
        /// The real server.
        server: SocketAddr,
    },
    /// Back to the configured weight.
    Enable {
        /// The real server.
        server: SocketAddr,
    },
    /// Set a weight (0-65535) until `enable` or a restart.
    Weight {
        /// The real server.
        server: SocketAddr,
        /// The new weight.
        weight: u32,
    },
}

/// What the director answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "lowercase")]
pub enum Reply {
    /// The answer to [`Request::Status`].
    Status(Box<StatusReport>),
    /// What a drain, enable or weight request changed.
    Changed {
        /// One entry per service that has the server.
        changes: Vec<WeightChange>,
    },
    /// The request was refused; nothing changed.
    Error {
        /// What is wrong and what to do.
        error: String,
    },
}

/// The director's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StatusReport {
    /// Virtual services, in configuration order.
    pub services: Vec<ServiceStatus>,
    /// VRRP, when `[vrrp]` is configured.
    pub vrrp: Option<VrrpStatus>,
    /// The direct-routing data plane, when a service uses it.
    #[serde(default)]
    pub dr: Option<DrStatus>,
    /// The last reload (SIGHUP), if any since start.
    #[serde(default)]
    pub last_reload: Option<ReloadStatus>,
    /// Recent state changes, oldest first (the last [`crate::events::CAPACITY`]).
    #[serde(default)]
    pub changes: Vec<StateChange>,
}

/// One state change: a real server's health, VRRP, a reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    /// Seconds since it happened.
    pub seconds_ago: f64,
    /// When, in seconds since the Unix epoch.
    pub unix_time: u64,
    /// What changed, e.g. `real server 10.0.0.1:49 in tacacs`.
    pub subject: String,
    /// State before.
    pub from: String,
    /// State after.
    pub to: String,
    /// Why.
    pub reason: String,
}

/// How the last reload went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// Seconds since it happened.
    pub seconds_ago: f64,
    /// Whether the new configuration is in force.
    pub applied: bool,
    /// What changed, or why it was refused.
    pub message: String,
}

/// A weight set by the operator, in one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightChange {
    /// The service.
    pub service: String,
    /// The real server.
    pub server: SocketAddr,
    /// Weight in force before.
    pub from: u32,
    /// Weight in force now.
    pub to: u32,
    /// The configured weight (what `enable` returns to).
    pub configured: u32,
}

/// What `status` reports for one service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// VIP:port.
    pub listen: String,
    /// Scheduler name.
    pub scheduler: String,
    /// Forwarding: "proxy" or "dr".
    #[serde(default = "proxy")]
    pub mode: String,
    /// Device connections open (proxy mode).
    pub active: usize,
    /// Real servers.
    pub reals: Vec<RealStatus>,
}

/// What `status` reports for one real server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RealStatus {
    /// Address.
    pub address: String,
    /// up / misconfigured / down.
    pub state: String,
    /// Weight in force: the configured one, or an operator's override
    /// (drain/weight), or 0 while a failed server is inhibited.
    pub weight: u32,
    /// Configured weight.
    pub config_weight: u32,
    /// Open proxied connections (proxy mode; 0 in DR).
    pub active: u32,
    /// Connections sent here since start (DR: flows placed on it, new
    /// flow-table entries).
    pub total: u64,
    /// New connections (DR: new flows) per second, over the last second or so.
    pub cps: f64,
    /// Failed connects (each retried elsewhere).
    pub connect_failures: u64,
    /// Last check result.
    pub last_check: String,
    /// Its latency, ms.
    pub last_check_ms: Option<f64>,
    /// Seconds in the current state.
    pub state_for_s: f64,
    /// Bytes from devices to this server since start (DR: IP bytes the data
    /// plane forwarded to it).
    #[serde(default)]
    pub bytes_in: u64,
    /// DR: packets the data plane forwarded to it.
    #[serde(default)]
    pub packets: u64,
    /// DR: its MAC ("-" until known), and what is wrong when it has none.
    #[serde(default)]
    pub mac: String,
    /// Bytes from this server to devices since start.
    #[serde(default)]
    pub bytes_out: u64,
}

fn proxy() -> String {
    "proxy".into()
}

/// The direct-routing data plane.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrStatus {
    /// Interface it is attached to.
    pub interface: String,
    /// "native" or "generic".
    pub attach: String,
    /// Forwarding and answering ARP (the VRRP master), or passing.
    pub active: bool,
    /// Flow-table capacity.
    pub flow_entries: u32,
    /// Program-wide counters.
    pub counters: DrCounters,
}

/// Program-wide counters of the data plane, since start.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DrCounters {
    /// New flows dropped: no server could take them.
    pub no_server: u64,
    /// Fragments to a VIP, dropped.
    pub fragments: u64,
    /// Non-TCP to a VIP, passed.
    pub not_tcp: u64,
    /// VIP packets and ARP requests seen while inactive, passed.
    pub inactive: u64,
    /// VIP packets addressed to another MAC, passed.
    pub other_mac: u64,
    /// ARP requests for a VIP answered.
    pub arp_replies: u64,
    /// Flow entries that named a removed server (placed again).
    pub stale_flows: u64,
    /// Flow-table insertions that failed.
    pub flow_insert_failed: u64,
}

/// What `status` shows of VRRP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VrrpStatus {
    /// Interface.
    pub interface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// INIT, BACKUP or MASTER.
    pub state: String,
    /// Priority now (configured minus any tracking penalty).
    pub priority: u8,
    /// Configured priority.
    pub config_priority: u8,
    /// The virtual addresses.
    pub vips: Vec<String>,
    /// Our advertisement source.
    pub source: String,
    /// Last master heard (backup), or us.
    pub master: String,
    /// Seconds in this state.
    pub state_for_s: f64,
    /// State changes since start.
    pub transitions: u64,
    /// Why the last change happened.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_their_wire_form() {
        let r: Request = serde_json::from_str(r#"{"cmd":"status"}"#).unwrap();
        assert_eq!(r, Request::Status);
        let server: SocketAddr = "10.49.1.1:49".parse().unwrap();
        let r: Request =
            serde_json::from_str(r#"{"cmd":"weight","server":"10.49.1.1:49","weight":3}"#).unwrap();
        assert_eq!(r, Request::Weight { server, weight: 3 });
        assert_eq!(
            serde_json::to_string(&Request::Drain { server }).unwrap(),
            r#"{"cmd":"drain","server":"10.49.1.1:49"}"#
        );
        for bad in [r#"{"cmd":"reboot"}"#, r#"{"cmd":"drain"}"#, r#"{"cmd":"drain","server":"x"}"#]
        {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Status(Box::default()),
            Reply::Changed {
                changes: vec![WeightChange {
                    service: "tacacs".into(),
                    server: "10.49.1.1:49".parse().unwrap(),
                    from: 1,
                    to: 0,
                    configured: 1,
                }],
            },
            Reply::Error { error: "no".into() },
        ];
        for r in replies {
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), r, "{line}");
        }
    }
}
