//! # tacvs-director
//!
//! The director: virtual services in front of real servers, like LVS and
//! keepalived together.
//!
//! * [`core`] is pure (schedulers, the Maglev table, the health and VRRP state
//!   machines): state and time in, decisions out, so every behaviour is tested
//!   with fake time and fixed seeds.
//! * [`config`]: the configuration file, validated with `file:line:column`.
//! * [`service`]: one virtual service's live state (real servers, counts,
//!   scheduler); [`proxy`]: the proxy-mode data plane (accept, connect, PROXY
//!   header, relay); [`dr`]: direct routing, the XDP data plane of
//!   `tacvs-xdp` kept in step with health and weights (the table itself is
//!   [`core::dr`]); [`checker`]: health checks through `tacvs-client`;
//!   [`failover`]: VRRPv3 I/O; [`control`]: the local control socket (typed
//!   protocol, server, client, status table).
//! * [`caps`]: the Linux capabilities a configuration needs, checked at start.
//! * [`runtime`]: [`start`] a director, [`DirectorHandle::reload`] it, stop it.
//!
//! What the `tacvs director` command uses is re-exported here.

pub mod caps;
pub mod checker;
pub mod config;
pub mod control;
pub mod core;
pub mod dr;
pub mod events;
pub mod failover;
pub mod proxy;
pub mod runtime;
pub mod service;

pub use config::{ConfigErrors, DirectorFile};
pub use control::client::{ControlError, request, status};
pub use control::html::render_html;
pub use control::protocol::{
    RealStatus, ReloadStatus, Reply, Request, ServiceStatus, StateChange, StatusReport, VrrpStatus,
    WeightChange,
};
pub use control::render::{render, render_report};
pub use proxy::{proxy_header, proxy_local};
pub use runtime::{
    DirectorHandle, ReloadError, ReloadFileError, Reloaded, Signals, StartError, start,
};
