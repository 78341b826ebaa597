//! tacvs direct routing (LVS-DR) in XDP.
//!
//! What the crate offers:
//! * [`DataPlane`]: the XDP program (`bpf/tacvs_xdp.c`, built by `build.rs`
//!   with Debian's clang) loaded through aya — attach natively or generically
//!   ([`AttachMode`]), services with their Maglev lookup tables swapped whole
//!   ([`DataPlane::set_service`]), the VRRP master's switch
//!   ([`DataPlane::set_active`]), per-service and per-server counters
//!   ([`DataPlane::stats`]), and `BPF_PROG_TEST_RUN` ([`DataPlane::test_run`]).
//! * [`PassProgram`]: the `XDP_PASS` program a veth peer needs for native
//!   `XDP_TX`.
//! * [`layout`]: the maps' keys and values and the flow hash (pure).
//! * [`table`]: lookup-table checks, stable real-server ids, and the write
//!   plan behind a service change (pure).
//! * [`realserver`]: setting up and checking a real server for DR (VIP on
//!   `lo`, `arp_ignore`, `arp_announce`).
//! * [`neighbour`]: a real server's MAC from the kernel's neighbour table,
//!   refused with a reason when the server is not on the director's segment.
//! * [`frames`]: Ethernet/ARP/IPv4/IPv6/TCP frame builders for tests and
//!   benchmarks.
//!
//! The program's behaviour, packet by packet, is documented at the top of
//! `bpf/tacvs_xdp.c` and in docs/design.md ("Direct routing").

pub mod dataplane;
pub mod frames;
pub mod layout;
pub mod neighbour;
pub mod realserver;

pub mod table;

pub use dataplane::{
    AttachMode, AttachedMode, DataPlane, DataPlaneError, FlowTable, GlobalStats, Options,
    PassProgram, RealStats, Runner, Service, ServiceStats, Stats, TestRunOutcome,
    enable_run_time_stats, interface, verdict,
};
pub use layout::{Counters, HashInput, MacAddr, flow_hash};
pub use table::{TableError, table_from_lookup};
