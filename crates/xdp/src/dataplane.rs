//! The loaded XDP program and its maps: attach, services, active flag,
//! counters, detach. A thin layer over aya; what to write is decided by the
//! pure [`crate::table`].
//!
//! Contract:
//! * [`DataPlane::load`] leaves the program *inactive*: it forwards nothing
//!   and answers no ARP until [`DataPlane::set_active`]`(true)` (the VRRP
//!   master's switch).
//! * [`DataPlane::set_service`] swaps a service's table whole: packets see the
//!   old table or the new one, never a mix (map-in-map update; the kernel
//!   waits for running programs before the call returns).
//! * The program is attached through a BPF link owned by this value: dropping
//!   it, or the process dying, detaches the program, so a dead director
//!   answers nothing for the VIPs (docs/design.md, "Direct routing").

use std::collections::HashMap as StdHashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use aya::maps::{Array, ArrayOfMaps, HashMap, MapData, MapError, PerCpuArray, PerCpuValues};
use aya::programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId};
use aya::{Ebpf, EbpfLoader, TestRun, TestRunOptions};
use aya_obj::programs::XdpAttachType;

use crate::layout::{
    Config, Counters, FlowKey, FlowValue, HashInput, MacAddr, RealValue, ServiceKey, ServiceValue,
    VipKey, consts,
};
use crate::table::{self, IdPool, Placed, TableError};

const OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tacvs_xdp.o"));
const OBJECT_PERCPU_LISTS: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tacvs_xdp_percpu_lists.o"));
const OBJECT_PERCPU: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tacvs_xdp_percpu.o"));
const PASS_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tacvs_pass.o"));

/// How the flow table is shared between CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlowTable {
    /// One LRU hash for all CPUs with one LRU list (the default: a flow is
    /// found whichever CPU its packets arrive on).
    #[default]
    Shared,
    /// One hash for all CPUs, LRU lists per CPU (`BPF_F_NO_COMMON_LRU`): less
    /// lock traffic; a busy CPU evicts from its own share.
    SharedPerCpuLists,
    /// A table per CPU (`LRU_PERCPU_HASH`): a flow whose packets change CPU
    /// (RSS change, generic XDP on veth) is scheduled again on the new one.
    PerCpu,
}

/// Load options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Flow-table capacity (entries; memory is preallocated, ~100 bytes each).
    pub flow_entries: u32,
    /// Flow table sharing.
    pub flow_table: FlowTable,
}

impl Default for Options {
    fn default() -> Options {
        Options { flow_entries: consts::FLOW_ENTRIES, flow_table: FlowTable::Shared }
    }
}

/// How to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native if the driver takes it, generic otherwise.
    #[default]
    Auto,
    /// Native (driver) XDP only.
    Native,
    /// Generic (skb) XDP only.
    Generic,
}

/// The mode the program runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    /// In the driver.
    Native,
    /// In the kernel's generic receive path.
    Generic,
}

impl std::fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        })
    }
}

/// Data-plane errors.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// The kernel refused the object (no BPF, not root, verifier).
    #[error(
        "loading the XDP program failed (it needs root or CAP_BPF+CAP_NET_ADMIN and a kernel \
         with BPF): {0}"
    )]
    Load(#[source] aya::EbpfError),
    /// Loading the program into the kernel failed.
    #[error("the kernel refused the XDP program: {0}")]
    Program(#[source] ProgramError),
    /// The object lacks a map or program this code expects (a build mismatch).
    #[error("the XDP object has no {0}: the object and the loader do not match")]
    Missing(&'static str),
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// Cause.
        #[source]
        source: MapError,
    },
    /// An interface problem.
    #[error("interface {name:?}: {what}")]
    Interface {
        /// Name.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// Attaching failed.
    #[error("attaching XDP to {name:?} ({mode}): {source}")]
    Attach {
        /// Interface.
        name: String,
        /// The mode(s) tried.
        mode: &'static str,
        /// Cause.
        #[source]
        source: ProgramError,
    },
    /// A table or server list was refused.
    #[error(transparent)]
    Table(#[from] TableError),
    /// All service slots are used.
    #[error("no room for another service: the data plane holds {}", consts::MAX_SERVICES)]
    TooManyServices,
    /// Only TCP services exist, and a VIP and its servers share a family.
    #[error("service {0}: {1}")]
    Service(SocketAddr, &'static str),
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> DataPlaneError {
    move |source| DataPlaneError::Map { map, source }
}

/// One service as the caller describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// VIP and port (TCP).
    pub vip: SocketAddr,
    /// What new flows are hashed on.
    pub hash: HashInput,
    /// Every server that may hold flows: the ones in `table` and the drained
    /// ones whose established flows keep going. A server left out loses its
    /// flows (they are scheduled again).
    pub reals: Vec<(IpAddr, MacAddr)>,
    /// Slot → index into `reals`, e.g. [`crate::table_from_lookup`] of the
    /// director's Maglev built with drained/down servers at weight 0. Empty:
    /// new flows are dropped (no server).
    pub table: Vec<u32>,
}

struct ServiceSlot {
    id: u32,
    hash: HashInput,
    placed: StdHashMap<IpAddr, Placed>,
    /// Two inner tables and what each holds; `live` is published.
    buffers: [Array<MapData, u32>; 2],
    contents: [Vec<u32>; 2],
    live: usize,
}

/// What one run of the program on a frame gave (`BPF_PROG_TEST_RUN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutcome {
    /// `XDP_*` verdict.
    pub verdict: u32,
    /// The frame after the program.
    pub frame: Vec<u8>,
    /// Kernel-measured time per run.
    pub per_run: Duration,
}

/// XDP verdicts.
pub mod verdict {
    /// `XDP_ABORTED`.
    pub const ABORTED: u32 = 0;
    /// `XDP_DROP`.
    pub const DROP: u32 = 1;
    /// `XDP_PASS`.
    pub const PASS: u32 = 2;
    /// `XDP_TX`.
    pub const TX: u32 = 3;
    /// `XDP_REDIRECT`.
    pub const REDIRECT: u32 = 4;
}

/// Counters of one real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealStats {
    /// Its address.
    pub addr: IpAddr,
    /// Its MAC.
    pub mac: MacAddr,
    /// Summed over CPUs.
    pub counters: Counters,
}

/// Counters of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    /// VIP:port.
    pub vip: SocketAddr,
    /// The whole service.
    pub counters: Counters,
    /// Per server, by address.
    pub reals: Vec<RealStats>,
}

/// Program-wide counters (summed over CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GlobalStats {
    /// Fragments to a VIP (dropped).
    pub vip_fragments: u64,
    /// Non-TCP (or IPv6 with extension headers) to a VIP (passed).
    pub vip_not_tcp: u64,
    /// New flows with no server in the table (dropped).
    pub no_server: u64,
    /// VIP packets and ARP requests seen while inactive (passed).
    pub inactive: u64,
    /// VIP packets addressed to another MAC (passed).
    pub other_mac: u64,
    /// ARP requests for a VIP answered.
    pub arp_replies: u64,
    /// Flow entries that named a removed server (scheduled again).
    pub stale_flows: u64,
    /// Flow-table insertions that failed.
    pub flow_insert_failed: u64,
}

/// All counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Per service, in VIP order.
    pub services: Vec<ServiceStats>,
    /// Program-wide.
    pub global: GlobalStats,
}

/// The loaded data plane.
pub struct DataPlane {
    ebpf: Ebpf,
    services_map: HashMap<MapData, ServiceKey, ServiceValue>,
    vips: HashMap<MapData, VipKey, u32>,
    reals: HashMap<MapData, u32, RealValue>,
    tables: ArrayOfMaps<MapData, Array<MapData, u32>>,
    flows: FlowMap,
    service_stats: PerCpuArray<MapData, Counters>,
    real_stats: PerCpuArray<MapData, Counters>,
    stats: PerCpuArray<MapData, u64>,
    config: Array<MapData, Config>,
    state: Array<MapData, u32>,
    services: StdHashMap<SocketAddr, ServiceSlot>,
    free_services: Vec<u32>,
    ids: IdPool,
    link: Option<(String, XdpLinkId, AttachedMode)>,
    cpus: usize,
}

enum FlowMap {
    Shared(HashMap<MapData, FlowKey, FlowValue>),
    PerCpu(aya::maps::PerCpuHashMap<MapData, FlowKey, FlowValue>),
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("link", &self.link)
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, DataPlaneError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let m = ebpf.take_map(name).ok_or(DataPlaneError::Missing(name))?;
    T::try_from(m).map_err(map_err(name))
}

impl DataPlane {
    /// Load the program and its maps (not attached, inactive).
    pub fn load(opts: Options) -> Result<DataPlane, DataPlaneError> {
        let object = match opts.flow_table {
            FlowTable::Shared => OBJECT,
            FlowTable::SharedPerCpuLists => OBJECT_PERCPU_LISTS,
            FlowTable::PerCpu => OBJECT_PERCPU,
        };
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("flows", opts.flow_entries.max(1))
            .load(object)
            .map_err(DataPlaneError::Load)?;
        xdp_program(&mut ebpf, "tacvs_dr")?.load().map_err(DataPlaneError::Program)?;
        let flows = match opts.flow_table {
            FlowTable::PerCpu => FlowMap::PerCpu(take(&mut ebpf, "flows")?),
            _ => FlowMap::Shared(take(&mut ebpf, "flows")?),
        };
        let cpus = aya::util::nr_cpus()
            .map_err(|(_, e)| DataPlaneError::Map { map: "stats", source: MapError::IoError(e) })?;
        Ok(DataPlane {
            services_map: take(&mut ebpf, "services")?,
            vips: take(&mut ebpf, "vips")?,
            reals: take(&mut ebpf, "reals")?,
            tables: take(&mut ebpf, "tables")?,
            flows,
            service_stats: take(&mut ebpf, "service_stats")?,
            real_stats: take(&mut ebpf, "real_stats")?,
            stats: take(&mut ebpf, "stats")?,
            config: take(&mut ebpf, "config")?,
            state: take(&mut ebpf, "state")?,
            ebpf,
            services: StdHashMap::new(),
            free_services: (0..consts::MAX_SERVICES).rev().collect(),
            ids: IdPool::new(consts::MAX_REALS),
            link: None,
            cpus,
        })
    }

    fn program(&mut self) -> &mut Xdp {
        xdp_program(&mut self.ebpf, "tacvs_dr").expect("checked in load")
    }

    /// Set our MAC (the attached interface's) and where forwarded frames
    /// leave: `None` for `XDP_TX` out of the attached interface, or another
    /// interface's (index, MAC) for `bpf_redirect`. [`DataPlane::attach`]
    /// sets the MAC itself; call this before activating.
    pub fn configure(
        &mut self,
        mac: MacAddr,
        out: Option<(u32, MacAddr)>,
    ) -> Result<(), DataPlaneError> {
        let (out_ifindex, out_mac) = out.map_or((0, [0; 6]), |(i, m)| (i, m.0));
        let c = Config { mac: mac.0, out_mac, out_ifindex };
        self.config.set(0, c, 0).map_err(map_err("config"))
    }

    /// Send forwarded frames out of `ifname` (`bpf_redirect`) instead of
    /// back out of the attached interface.
    pub fn set_output(&mut self, ifname: &str) -> Result<(), DataPlaneError> {
        let (index, mac) = interface(ifname)?;
        let own = MacAddr(self.config.get(&0, 0).map_err(map_err("config"))?.mac);
        self.configure(own, Some((index, mac)))
    }

    /// Attach to `ifname` and take its MAC as ours. `Auto` tries native
    /// first and falls back to generic; the mode that took is returned (and
    /// kept for [`DataPlane::attached`]).
    pub fn attach(
        &mut self,
        ifname: &str,
        mode: AttachMode,
    ) -> Result<AttachedMode, DataPlaneError> {
        if self.link.is_some() {
            self.detach()?;
        }
        let (_, mac) = interface(ifname)?;
        let cfg = self.config.get(&0, 0).map_err(map_err("config"))?;
        let out = (cfg.out_ifindex != 0).then_some((cfg.out_ifindex, MacAddr(cfg.out_mac)));
        self.configure(mac, out)?;
        let tries: &[(XdpMode, AttachedMode)] = match mode {
            AttachMode::Native => &[(XdpMode::Driver, AttachedMode::Native)],
            AttachMode::Generic => &[(XdpMode::Skb, AttachedMode::Generic)],
            AttachMode::Auto => {
                &[(XdpMode::Driver, AttachedMode::Native), (XdpMode::Skb, AttachedMode::Generic)]
            }
        };
        let mut last = None;
        for &(xm, am) in tries {
            match self.program().attach(ifname, xm) {
                Ok(id) => {
                    self.link = Some((ifname.to_owned(), id, am));
                    return Ok(am);
                }
                Err(e) => last = Some(e),
            }
        }
        let mode = match mode {
            AttachMode::Auto => "native, then generic",
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        };
        Err(DataPlaneError::Attach {
            name: ifname.to_owned(),
            mode,
            source: last.expect("at least one mode tried"),
        })
    }

    /// The interface and mode attached to, if any.
    pub fn attached(&self) -> Option<(&str, AttachedMode)> {
        self.link.as_ref().map(|(n, _, m)| (n.as_str(), *m))
    }

    /// Deactivate and detach. Dropping the data plane does the same.
    pub fn detach(&mut self) -> Result<(), DataPlaneError> {
        self.set_active(false)?;
        if let Some((_, id, _)) = self.link.take() {
            self.program().detach(id).map_err(DataPlaneError::Program)?;
        }
        Ok(())
    }

    /// Forward and answer ARP for the VIPs (`true`, the VRRP master), or pass
    /// everything to the kernel (`false`, a backup).
    pub fn set_active(&mut self, active: bool) -> Result<(), DataPlaneError> {
        self.state.set(0, u32::from(active), 0).map_err(map_err("state"))
    }

    /// Whether the program is active.
    pub fn active(&self) -> Result<bool, DataPlaneError> {
        Ok(self.state.get(&0, 0).map_err(map_err("state"))? == 1)
    }

    /// Add a service or change it. The change is published in one step;
    /// servers that stay keep their flows, servers left out lose them.
    pub fn set_service(&mut self, svc: &Service) -> Result<(), DataPlaneError> {
        if svc.reals.iter().any(|(a, _)| a.is_ipv4() != svc.vip.is_ipv4()) {
            return Err(DataPlaneError::Service(
                svc.vip,
                "a real server's address family differs from the VIP's",
            ));
        }
        let created = !self.services.contains_key(&svc.vip);
        if created {
            self.add_slot(svc.vip, svc.hash)?;
        }
        let slot = self.services.get_mut(&svc.vip).expect("just added");
        let plan = match table::plan(&slot.placed, &svc.reals, &svc.table, &mut self.ids) {
            Ok(p) => p,
            Err(e) => {
                if created {
                    self.remove_service(svc.vip)?;
                }
                return Err(e.into());
            }
        };
        let sid = slot.id;
        for p in &plan.upsert {
            if !slot.placed.values().any(|old| old.id == p.id) {
                zero_counters(&mut self.real_stats, p.id, self.cpus)
                    .map_err(map_err("real_stats"))?;
            }
            let v = RealValue { mac: p.mac.0, pad: 0, service: sid, gen_: p.gen_ };
            self.reals.insert(p.id, v, 0).map_err(map_err("reals"))?;
        }
        let spare = 1 - slot.live;
        for i in table::changed_slots(&slot.contents[spare], &plan.table) {
            slot.buffers[spare].set(i as u32, plan.table[i], 0).map_err(map_err("table"))?;
        }
        slot.contents[spare] = plan.table;
        // The swap: returns once no running program can see the old table.
        self.tables.set(sid, &slot.buffers[spare], 0).map_err(map_err("tables"))?;
        slot.live = spare;
        // A hash change is a service value change (one atomic replace).
        if slot.hash != svc.hash {
            slot.hash = svc.hash;
            let v = ServiceValue { id: sid, flags: svc.hash.flags() };
            self.services_map
                .insert(ServiceKey::tcp(svc.vip), v, 0)
                .map_err(map_err("services"))?;
        }
        for id in &plan.remove {
            match self.reals.remove(id) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err("reals")(e)),
            }
            self.ids.put(*id);
        }
        slot.placed = plan.placed;
        Ok(())
    }

    fn add_slot(&mut self, vip: SocketAddr, hash: HashInput) -> Result<(), DataPlaneError> {
        let id = self.free_services.pop().ok_or(DataPlaneError::TooManyServices)?;
        let make = || Array::<MapData, u32>::create(consts::TABLE_CAPACITY, 0);
        let buffers = match (make(), make()) {
            (Ok(a), Ok(b)) => [a, b],
            (Err(e), _) | (_, Err(e)) => {
                self.free_services.push(id);
                return Err(map_err("table")(e));
            }
        };
        let result = (|| {
            zero_counters(&mut self.service_stats, id, self.cpus)
                .map_err(map_err("service_stats"))?;
            // Buffer 0 (all zeros: m = 0, no server) is live from the start.
            self.tables.set(id, &buffers[0], 0).map_err(map_err("tables"))?;
            let v = ServiceValue { id, flags: hash.flags() };
            self.services_map.insert(ServiceKey::tcp(vip), v, 0).map_err(map_err("services"))?;
            let vk = VipKey::new(vip.ip());
            let refs = self.vips.get(&vk, 0).unwrap_or(0);
            self.vips.insert(vk, refs + 1, 0).map_err(map_err("vips"))
        })();
        if let Err(e) = result {
            let _ = self.services_map.remove(&ServiceKey::tcp(vip));
            self.free_services.push(id);
            return Err(e);
        }
        let slot = ServiceSlot {
            id,
            hash,
            placed: StdHashMap::new(),
            buffers,
            contents: [Vec::new(), Vec::new()],
            live: 0,
        };
        self.services.insert(vip, slot);
        Ok(())
    }

    /// Remove a service: its VIP:port passes to the kernel from now on.
    pub fn remove_service(&mut self, vip: SocketAddr) -> Result<(), DataPlaneError> {
        let Some(slot) = self.services.remove(&vip) else {
            return Err(DataPlaneError::Service(vip, "no such service"));
        };
        let gone = |r: Result<(), MapError>, map| match r {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(map)(e)),
        };
        gone(self.services_map.remove(&ServiceKey::tcp(vip)), "services")?;
        let vk = VipKey::new(vip.ip());
        match self.vips.get(&vk, 0) {
            Ok(n) if n > 1 => self.vips.insert(vk, n - 1, 0).map_err(map_err("vips"))?,
            _ => gone(self.vips.remove(&vk), "vips")?,
        }
        for p in slot.placed.values() {
            gone(self.reals.remove(&p.id), "reals")?;
            self.ids.put(p.id);
        }
        self.free_services.push(slot.id);
        Ok(())
    }

    /// Services configured.
    pub fn services(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.services.keys().copied()
    }

    /// The real server a flow is pinned to in the flow table, if any (on any
    /// CPU for a per-CPU table).
    pub fn flow(&self, src: SocketAddr, vip: SocketAddr) -> Result<Option<IpAddr>, DataPlaneError> {
        let Some(key) = FlowKey::tcp(src, vip) else { return Ok(None) };
        let v = match &self.flows {
            FlowMap::Shared(m) => match m.get(&key, 0) {
                Ok(v) => Some(v),
                Err(MapError::KeyNotFound) => None,
                Err(e) => return Err(map_err("flows")(e)),
            },
            FlowMap::PerCpu(m) => match m.get(&key, 0) {
                Ok(vs) => vs.iter().find(|v| v.gen_ != 0).copied(),
                Err(MapError::KeyNotFound) => None,
                Err(e) => return Err(map_err("flows")(e)),
            },
        };
        let Some(v) = v else { return Ok(None) };
        Ok(self.services.get(&vip).and_then(|s| {
            s.placed.iter().find(|(_, p)| p.id == v.real && p.gen_ == v.gen_).map(|(a, _)| *a)
        }))
    }

    /// Counters per service and per real server, and program-wide.
    pub fn stats(&self) -> Result<Stats, DataPlaneError> {
        let sum = |m: &PerCpuArray<MapData, Counters>, i: u32, name| {
            let vs = m.get(&i, 0).map_err(map_err(name))?;
            let mut c = Counters::default();
            for v in vs.iter() {
                c += *v;
            }
            Ok::<_, DataPlaneError>(c)
        };
        let mut services = Vec::new();
        for (vip, slot) in &self.services {
            let mut reals = Vec::new();
            for (addr, p) in &slot.placed {
                let counters = sum(&self.real_stats, p.id, "real_stats")?;
                reals.push(RealStats { addr: *addr, mac: p.mac, counters });
            }
            reals.sort_by_key(|r| r.addr);
            let counters = sum(&self.service_stats, slot.id, "service_stats")?;
            services.push(ServiceStats { vip: *vip, counters, reals });
        }
        services.sort_by_key(|s| s.vip);
        let mut g = [0u64; consts::STAT_COUNT as usize];
        for (i, slot) in g.iter_mut().enumerate() {
            let vs = self.stats.get(&(i as u32), 0).map_err(map_err("stats"))?;
            *slot = vs.iter().copied().fold(0u64, u64::wrapping_add);
        }
        let s = |i: u32| g[i as usize];
        let global = GlobalStats {
            vip_fragments: s(consts::STAT_VIP_FRAGMENT),
            vip_not_tcp: s(consts::STAT_VIP_NOT_TCP),
            no_server: s(consts::STAT_NO_SERVER),
            inactive: s(consts::STAT_INACTIVE),
            other_mac: s(consts::STAT_OTHER_MAC),
            arp_replies: s(consts::STAT_ARP_REPLIES),
            stale_flows: s(consts::STAT_FLOW_STALE),
            flow_insert_failed: s(consts::STAT_FLOW_INSERT_FAILED),
        };
        Ok(Stats { services, global })
    }

    /// Run the program on `frame` once or `repeat` times with
    /// `BPF_PROG_TEST_RUN` (see [`Runner::run`]).
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<TestRunOutcome, DataPlaneError> {
        self.runner()?.run(frame, repeat)
    }

    /// A second handle on the loaded program, to run it on frames from
    /// another thread while this one changes services.
    pub fn runner(&self) -> Result<Runner, DataPlaneError> {
        let prog: &Xdp = self
            .ebpf
            .program("tacvs_dr")
            .ok_or(DataPlaneError::Missing("program tacvs_dr"))?
            .try_into()
            .map_err(DataPlaneError::Program)?;
        let info = prog.info().map_err(DataPlaneError::Program)?;
        let prog = Xdp::from_program_info(info, "tacvs_dr".into(), XdpAttachType::Interface)
            .map_err(DataPlaneError::Program)?;
        Ok(Runner(prog))
    }
}

/// A handle for `BPF_PROG_TEST_RUN` on the data plane's program.
#[derive(Debug)]
pub struct Runner(Xdp);

impl Runner {
    /// Run the program on `frame` `repeat` times (the maps are the live ones:
    /// flows are inserted, counters count). For tests and benchmarks; needs
    /// no attachment. Frames shorter than 14 bytes are refused by the kernel.
    pub fn run(&self, frame: &[u8], repeat: u32) -> Result<TestRunOutcome, DataPlaneError> {
        let mut out = vec![0u8; frame.len() + 256];
        let r = self
            .0
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat: repeat.max(1),
                ..TestRunOptions::new()
            })
            .map_err(DataPlaneError::Program)?;
        out.truncate(r.data_size_out as usize);
        Ok(TestRunOutcome { verdict: r.return_value, frame: out, per_run: r.duration })
    }
}

fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, DataPlaneError> {
    ebpf.program_mut(name)
        .ok_or(DataPlaneError::Missing(name))?
        .try_into()
        .map_err(DataPlaneError::Program)
}

fn zero_counters(
    m: &mut PerCpuArray<MapData, Counters>,
    index: u32,
    cpus: usize,
) -> Result<(), MapError> {
    let zeros = PerCpuValues::try_from(vec![Counters::default(); cpus])?;
    m.set(index, zeros, 0)
}

/// Make the kernel time every BPF program's runs (`BPF_ENABLE_STATS`,
/// `run_time_ns` / `run_cnt` in each program's fdinfo) while the returned
/// descriptor is open. Machine-wide while held, and it costs each program
/// run two clock reads: for measurements (the lab's), not for production.
pub fn enable_run_time_stats() -> Result<std::os::fd::OwnedFd, DataPlaneError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| DataPlaneError::Program(ProgramError::SyscallError(e)))
}

/// An interface's index and MAC, in the calling thread's network namespace.
pub fn interface(name: &str) -> Result<(u32, MacAddr), DataPlaneError> {
    let err = |what: String| DataPlaneError::Interface { name: name.to_owned(), what };
    let index =
        nix::net::if_::if_nametoindex(name).map_err(|e| err(format!("no such interface ({e})")))?;
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| err(format!("listing interfaces: {e}")))?;
    for a in addrs {
        if a.interface_name != name {
            continue;
        }
        if let Some(mac) = a.address.as_ref().and_then(|s| s.as_link_addr()).and_then(|l| l.addr())
        {
            if mac == [0; 6] {
                return Err(err("has no Ethernet address (XDP DR needs an Ethernet link)".into()));
            }
            return Ok((index, MacAddr(mac)));
        }
    }
    Err(err("has no link-layer address".into()))
}

/// An `XDP_PASS` program attached to an interface while this value lives:
/// on a veth it makes the peer's native `XDP_TX` frames arrive (the lab puts
/// it on the far end of a director's veth; docs/operations.md).
pub struct PassProgram {
    _ebpf: Ebpf,
    mode: AttachedMode,
}

impl std::fmt::Debug for PassProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassProgram").field("mode", &self.mode).finish()
    }
}

impl PassProgram {
    /// Attach natively to `ifname` (generic would not set up the veth's NAPI).
    pub fn attach(ifname: &str) -> Result<PassProgram, DataPlaneError> {
        let mut ebpf = Ebpf::load(PASS_OBJECT).map_err(DataPlaneError::Load)?;
        let prog = xdp_program(&mut ebpf, "tacvs_pass")?;
        prog.load().map_err(DataPlaneError::Program)?;
        prog.attach(ifname, XdpMode::Driver).map_err(|source| DataPlaneError::Attach {
            name: ifname.to_owned(),
            mode: "native",
            source,
        })?;
        Ok(PassProgram { _ebpf: ebpf, mode: AttachedMode::Native })
    }
}
