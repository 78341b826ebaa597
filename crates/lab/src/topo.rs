//! The lab's topology: network namespaces on one bridge, and the real
//! `tacvs` processes inside them.
//!
//! ```text
//!   {prefix}-dev  10.49.0.10   + local route 10.100.0.0/16 (the fleet: one address per device)
//!   {prefix}-d1   10.49.0.2    director, VRRP priority 150   ┐ VIP 10.49.0.100
//!   {prefix}-d2   10.49.0.3    director, VRRP priority 100   ┘
//!   {prefix}-sN   10.49.1.N    tacvs server N
//!   {prefix}-hub  bridge br0, one veth port per namespace above
//! ```
//!
//! Nothing is created in the caller's namespace: both ends of every veth
//! are created inside lab namespaces, so deleting the namespaces removes
//! every link and address. Processes are found by PID (the state file, and
//! `ip netns pids` for anything a crash left), never by name.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The lab's LAN.
pub const LAN_PREFIX: u8 = 16;
/// The devices namespace's address.
pub const DEV_ADDR: Ipv4Addr = Ipv4Addr::new(10, 49, 0, 10);
/// The virtual address the directors share.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 49, 0, 100);
/// The fleet's source addresses (a local route in the devices namespace).
pub const FLEET: &str = "10.100.0.0/16";
/// The most devices the fleet prefix holds.
pub const FLEET_SIZE: usize = 65_536;
/// The shared key of devices and directors.
pub const KEY: &str = "tacvs-lab-key";
/// VRRP virtual router id.
pub const VRID: u8 = 49;

/// Why a lab step failed.
#[derive(Debug, Error)]
pub enum LabError {
    /// A command failed.
    #[error("`{cmd}` failed: {err}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its stderr or spawn error.
        err: String,
    },
    /// File I/O.
    #[error("{path}: {err}")]
    Io {
        /// Path.
        path: String,
        /// Error.
        err: std::io::Error,
    },
    /// Something did not come up.
    #[error("{0}")]
    NotReady(String),
    /// Invalid settings.
    #[error("{0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |err| LabError::Io { path: path.display().to_string(), err }
}

/// A role in the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The devices namespace.
    Devices,
    /// Director 1 or 2.
    Director(u8),
    /// Real server 1..N.
    Server(u8),
}

impl Role {
    /// Short name: dev, d1, s3.
    pub fn short(self) -> String {
        match self {
            Role::Devices => "dev".into(),
            Role::Director(i) => format!("d{i}"),
            Role::Server(i) => format!("s{i}"),
        }
    }

    /// Address on the lab LAN.
    pub fn addr(self) -> Ipv4Addr {
        match self {
            Role::Devices => DEV_ADDR,
            Role::Director(i) => Ipv4Addr::new(10, 49, 0, 1 + i),
            Role::Server(i) => Ipv4Addr::new(10, 49, 1, i),
        }
    }

    /// Parse "dev", "d1", "s3".
    pub fn parse(s: &str) -> Option<Role> {
        if s == "dev" {
            return Some(Role::Devices);
        }
        let (k, n) = s.split_at(1.min(s.len()));
        let n: u8 = n.parse().ok().filter(|n| *n >= 1)?;
        match k {
            "d" if n <= 2 => Some(Role::Director(n)),
            "s" if n <= 200 => Some(Role::Server(n)),
            _ => None,
        }
    }
}

/// What stands between the devices and the real servers: the fronts of the
/// 2016 story, each on the same topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Front {
    /// `tacvs director`, proxy mode with PROXY v2 (VRRP between directors).
    #[default]
    Proxy,
    /// `tacvs director`, direct routing (XDP; VRRP between directors).
    Dr,
    /// Debian's HAProxy, `mode tcp`, no PROXY header: the servers see the
    /// director's address.
    HaproxyTcp,
    /// Debian's HAProxy, `mode tcp` with `send-proxy-v2`.
    HaproxyProxyV2,
    /// nftables DNAT on the director (the kernel's NAT with conntrack); the
    /// servers route the devices' replies back through it.
    Nat,
}

impl Front {
    /// As written in a scenario.
    pub fn name(self) -> &'static str {
        match self {
            Front::Proxy => "proxy",
            Front::Dr => "dr",
            Front::HaproxyTcp => "haproxy-tcp",
            Front::HaproxyProxyV2 => "haproxy-proxy-v2",
            Front::Nat => "nat",
        }
    }

    /// A `tacvs director` (control socket, VRRP, health checks).
    pub fn is_tacvs(self) -> bool {
        matches!(self, Front::Proxy | Front::Dr)
    }

    /// The servers take PROXY headers from the directors.
    pub fn sends_proxy(self) -> bool {
        matches!(self, Front::Proxy | Front::HaproxyProxyV2)
    }
}

/// nftables NAT front: conntrack settings written in the director's
/// namespace (`[nat]`; unset ones stay as the kernel has them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NatSettings {
    /// `net.netfilter.nf_conntrack_tcp_timeout_time_wait` (kernel: 120 s).
    #[serde(with = "humantime_opt", skip_serializing_if = "Option::is_none")]
    pub time_wait: Option<Duration>,
}

/// Optional durations as humantime strings.
pub mod humantime_opt {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    /// Serialize as "250ms".
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::humantime_serde_compat::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Parse "250ms".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::humantime_serde_compat::deserialize(d).map(Some)
    }
}

/// Director settings the lab writes into each director's file (a
/// scenario's `[director]` section; every field optional).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectorSettings {
    /// Scheduler name.
    pub scheduler: String,
    /// VRRP advertisement interval.
    #[serde(with = "humantime_serde_compat")]
    pub advert_interval: Duration,
    /// Health check interval.
    #[serde(with = "humantime_serde_compat")]
    pub health_interval: Duration,
    /// Health check timeout.
    #[serde(with = "humantime_serde_compat")]
    pub health_timeout: Duration,
    /// Checks to come up.
    pub rise: u32,
    /// Checks to go down.
    pub fall: u32,
    /// d1 (priority 150) takes the VIP back from d2 when it returns.
    pub preempt: bool,
    /// Direct routing: `auto`, `native` or `generic` XDP.
    pub attach: String,
}

impl Default for DirectorSettings {
    fn default() -> Self {
        DirectorSettings {
            scheduler: "wlc".into(),
            advert_interval: Duration::from_millis(100),
            health_interval: Duration::from_millis(200),
            health_timeout: Duration::from_millis(300),
            rise: 2,
            fall: 2,
            preempt: true,
            attach: "auto".into(),
        }
    }
}

/// Durations as humantime strings in the lab's files.
pub mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Serialize as "250ms".
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Parse "250ms", "2s".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} ({e}); write e.g. \"10s\", \"500ms\""
            ))
        })
    }
}

/// What `up` builds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// Namespace name prefix: everything the lab makes starts with it.
    pub prefix: String,
    /// Working directory: configurations, journals, logs, reports, state.
    pub dir: PathBuf,
    /// The `tacvs` binary every server and director runs.
    pub bin: PathBuf,
    /// Real servers.
    pub servers: u8,
    /// Directors (1 or 2).
    pub directors: u8,
    /// Director settings.
    pub director: DirectorSettings,
    /// TACACS+ over TLS 1.3 everywhere: a lab CA in `DIR/pki`, TLS listeners
    /// on the servers, the directors' checks over TLS, a certificate per device.
    #[serde(default)]
    pub tls: bool,
    /// What the directors run.
    #[serde(default)]
    pub front: Front,
    /// The NAT front's conntrack settings.
    #[serde(default)]
    pub nat: NatSettings,
    /// Steer the directors' packet processing (RPS) to the last CPU and
    /// everyone else's to the others, so that CPU's softirq time is the
    /// directors' kernel work (`[measure] steer`).
    #[serde(default)]
    pub steer: bool,
}

/// A process the lab started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proc {
    /// Role.
    pub role: Role,
    /// PID (the `tacvs` process itself: `ip netns exec` execs it).
    pub pid: u32,
}

/// The state file (`DIR/lab.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// What was built.
    pub spec: Spec,
    /// Processes started.
    pub procs: Vec<Proc>,
    /// Helpers started (PIDs): the XDP_PASS holders on the hub's veths for
    /// native XDP.
    #[serde(default)]
    pub helpers: Vec<u32>,
}

/// A lab (built or not).
#[derive(Debug, Clone)]
pub struct Lab {
    /// Settings.
    pub spec: Spec,
}

/// Run a command; its stderr names the failure.
pub fn sh(cmd: &str, args: &[&str]) -> Result<String, LabError> {
    let line = || format!("{cmd} {}", args.join(" "));
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().map_err(|e| {
        LabError::Command { cmd: line(), err: format!("{e} (is iproute2 installed?)") }
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: line(),
            err: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `sysctl -w KEY=VALUE` inside namespace `ns`.
pub fn ns_sysctl(ns: &str, kv: &str) -> Result<(), LabError> {
    sh("ip", &["netns", "exec", ns, "sysctl", "-q", "-w", kv]).map(|_| ())
}

/// Network namespaces whose name starts with `{prefix}-`.
pub fn namespaces(prefix: &str) -> Vec<String> {
    let want = format!("{prefix}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&want))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
}

/// PIDs of processes inside a namespace.
pub fn ns_pids(ns: &str) -> Vec<u32> {
    sh("ip", &["netns", "pids", ns])
        .map(|o| o.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Whether `pid` is alive and still a tacvs (or keepalived) process the lab
/// started (guards against PID reuse).
pub fn alive(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // A zombie is dead for our purposes.
            let s = String::from_utf8_lossy(&stat);
            !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        }
        Err(_) => false,
    }
}

/// Send a signal to one PID.
pub fn signal(pid: u32, sig: i32) -> bool {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) takes plain integers and has no memory effects.
    let r = unsafe { libc::kill(pid as i32, sig) };
    r == 0
}

/// SIGKILL each PID and wait (bounded) until they are gone.
pub fn kill_all(pids: &[u32]) {
    for &p in pids {
        signal(p, libc::SIGKILL);
    }
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        reap(pids);
        if !pids.iter().any(|&p| alive(p)) || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reap those of `pids` that are exited children of this process (a zombie
/// holds its PID, and keepalived's pid-file check, until reaped). Only the
/// given PIDs: other children belong to other code in this process.
pub fn reap(pids: &[u32]) {
    for &p in pids {
        let mut status = 0;
        #[allow(unsafe_code)]
        // SAFETY: waitpid with WNOHANG writes only the status integer we own.
        let _ = unsafe { libc::waitpid(p as i32, &mut status, libc::WNOHANG) };
    }
}

impl Lab {
    /// A lab for `spec` (nothing built yet).
    pub fn new(spec: Spec) -> Result<Lab, LabError> {
        if spec.prefix.is_empty()
            || spec.prefix.len() > 32
            || !spec.prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(LabError::Invalid(format!(
                "prefix {:?}: 1-32 letters, digits or '-'",
                spec.prefix
            )));
        }
        if !(1..=2).contains(&spec.directors) || !(1..=200).contains(&spec.servers) {
            return Err(LabError::Invalid("a lab has 1-2 directors and 1-200 real servers".into()));
        }
        if !spec.front.is_tacvs() && spec.directors != 1 {
            return Err(LabError::Invalid(format!(
                "the {} front runs on one director (d1 holds the VIP as its own address; no VRRP in front of it)",
                spec.front.name()
            )));
        }
        Ok(Lab { spec })
    }

    /// Namespace of a role.
    pub fn ns(&self, r: Role) -> String {
        format!("{}-{}", self.spec.prefix, r.short())
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.spec.prefix)
    }

    /// Every role, devices first.
    pub fn roles(&self) -> Vec<Role> {
        let mut v = vec![Role::Devices];
        v.extend((1..=self.spec.directors).map(Role::Director));
        v.extend((1..=self.spec.servers).map(Role::Server));
        v
    }

    /// Working directory of a role.
    pub fn role_dir(&self, r: Role) -> PathBuf {
        self.spec.dir.join(r.short())
    }

    /// A director's control socket.
    pub fn control_socket(&self, i: u8) -> PathBuf {
        self.role_dir(Role::Director(i)).join("director.sock")
    }

    fn state_path(&self) -> PathBuf {
        self.spec.dir.join("lab.json")
    }

    /// The state file, if the lab is up.
    pub fn state(&self) -> Option<State> {
        std::fs::read(self.state_path()).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    fn save(&self, st: &State) -> Result<(), LabError> {
        let p = self.state_path();
        std::fs::write(&p, serde_json::to_vec_pretty(st).unwrap_or_default()).map_err(io_err(&p))
    }

    /// Build the namespaces and links, write the configurations, start every
    /// server and director, and wait until the VIP has a master and every
    /// real server is up. Idempotent: a lab that is already up and whole is
    /// left alone; a partial one (a crash) is torn down and rebuilt.
    pub fn up(&self) -> Result<State, LabError> {
        if let Some(st) = self.state()
            && st.procs.iter().all(|p| alive(p.pid))
            && self.roles().iter().all(|r| namespaces(&self.spec.prefix).contains(&self.ns(*r)))
            && st.spec.servers == self.spec.servers
            && st.spec.directors == self.spec.directors
            && st.spec.front == self.spec.front
        {
            return Ok(st);
        }
        self.down()?;
        std::fs::create_dir_all(&self.spec.dir).map_err(io_err(&self.spec.dir))?;
        self.build_network()?;
        let mut st = State { spec: self.spec.clone(), procs: Vec::new(), helpers: Vec::new() };
        if self.spec.tls {
            self.write_pki()?;
        }
        self.build_front(&mut st)?;
        self.save(&st)?;
        for i in 1..=self.spec.servers {
            let r = Role::Server(i);
            self.write_server_config(i)?;
            st.procs.push(Proc { role: r, pid: self.spawn(r)? });
            self.save(&st)?;
        }
        for i in 1..=self.spec.servers {
            self.wait_listening(
                Role::Server(i),
                st.procs.iter().find(|p| p.role == Role::Server(i)).map(|p| p.pid).unwrap_or(0),
            )?;
        }
        for i in 1..=self.spec.directors {
            let r = Role::Director(i);
            self.write_director_config(i)?;
            if self.spec.front == Front::Nat {
                // The kernel is the front: rules, no process.
                self.nat_rules(i)?;
                continue;
            }
            st.procs.push(Proc { role: r, pid: self.spawn(r)? });
            self.save(&st)?;
        }
        Ok(st)
    }

    /// What each front needs of the network before the daemons start.
    fn build_front(&self, st: &mut State) -> Result<(), LabError> {
        let dirs = 1..=self.spec.directors;
        let ns_of = |r: Role| self.ns(r);
        match self.spec.front {
            Front::Proxy => {}
            Front::HaproxyTcp | Front::HaproxyProxyV2 | Front::Nat => {
                // One director holding the VIP as its own address, as in the
                // case study (no VRRP in front of HAProxy or the NAT).
                for i in dirs.clone() {
                    let ns = ns_of(Role::Director(i));
                    sh("ip", &["-n", &ns, "addr", "add", &format!("{VIP}/32"), "dev", "eth0"])?;
                }
            }
            Front::Dr => {
                // The real servers hold the VIP on lo and neither answer nor
                // use it in ARP: the operator's command, in each namespace.
                let bin = self.spec.bin.display().to_string();
                for i in 1..=self.spec.servers {
                    let ns = ns_of(Role::Server(i));
                    sh(
                        "ip",
                        &[
                            "netns",
                            "exec",
                            &ns,
                            &bin,
                            "dr",
                            "real-server",
                            "setup",
                            "--vip",
                            &VIP.to_string(),
                        ],
                    )?;
                }
                if self.spec.director.attach != "generic" {
                    // Native XDP_TX on a veth: an XDP program on the peer
                    // (the hub's port), and no partial checksums from the
                    // devices (docs/operations.md).
                    let dev = ns_of(Role::Devices);
                    sh("ip", &["netns", "exec", &dev, "ethtool", "-K", "eth0", "tx", "off"])?;
                    for i in dirs.clone() {
                        let port = format!("v-{}", Role::Director(i).short());
                        st.helpers.push(self.spawn_pass(&port)?);
                    }
                }
            }
        }
        if self.spec.front == Front::Nat {
            for i in dirs {
                let ns = ns_of(Role::Director(i));
                // Forward, and never tell a server to bypass us (an ICMP
                // redirect to the devices' next hop would send replies
                // around the NAT).
                for kv in [
                    "net.ipv4.ip_forward=1",
                    "net.ipv4.conf.all.send_redirects=0",
                    "net.ipv4.conf.eth0.send_redirects=0",
                ] {
                    ns_sysctl(&ns, kv)?;
                }
            }
            let d1 = Role::Director(1).addr().to_string();
            for i in 1..=self.spec.servers {
                let ns = ns_of(Role::Server(i));
                // NAT needs the replies back through the director.
                sh("ip", &["-n", &ns, "route", "replace", FLEET, "via", &d1])?;
                ns_sysctl(&ns, "net.ipv4.conf.all.accept_redirects=0")?;
            }
        }
        if self.spec.steer {
            self.steer()?;
        }
        Ok(())
    }

    /// RPS: the directors' receive processing on the last CPU, everyone
    /// else's on the others. On veth, a packet is processed in softirq on
    /// the CPU RPS picks for the interface that receives it, so the last
    /// CPU's softirq time is the directors' kernel work: NAT and
    /// forwarding, generic XDP, and the proxies' TCP receive path.
    fn steer(&self) -> Result<(), LabError> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get()).min(63);
        if n < 2 {
            return Err(LabError::Invalid(
                "[measure] steer needs at least two CPUs (one for the directors' packets)".into(),
            ));
        }
        let director_mask = format!("{:x}", 1u64 << (n - 1));
        let others_mask = format!("{:x}", (1u64 << (n - 1)) - 1);
        let set = |ns: &str, dev: &str, mask: &str| {
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sh",
                    "-c",
                    &format!("echo {mask} > /sys/class/net/{dev}/queues/rx-0/rps_cpus"),
                ],
            )
        };
        for r in self.roles() {
            let mask = if matches!(r, Role::Director(_)) { &director_mask } else { &others_mask };
            set(&self.ns(r), "eth0", mask)?;
            set(&self.hub(), &format!("v-{}", r.short()), &others_mask)?;
        }
        Ok(())
    }

    /// The CPU whose softirq time is the directors' with [`Spec::steer`].
    pub fn director_cpu() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(63) - 1
    }

    /// Director `i`'s nftables rules and conntrack settings (NAT front).
    fn nat_rules(&self, i: u8) -> Result<(), LabError> {
        let ns = self.ns(Role::Director(i));
        let p = self.role_dir(Role::Director(i)).join("nat.nft");
        sh("ip", &["netns", "exec", &ns, "nft", "-f", &p.display().to_string()])?;
        if let Some(tw) = self.spec.nat.time_wait {
            let kv =
                format!("net.netfilter.nf_conntrack_tcp_timeout_time_wait={}", tw.as_secs().max(1));
            ns_sysctl(&ns, &kv)?;
        }
        Ok(())
    }

    /// Hold an `XDP_PASS` program on a hub port (`tacvs dr xdp-pass`, a
    /// process of its own: the program goes when it does).
    fn spawn_pass(&self, port: &str) -> Result<u32, LabError> {
        let hub = self.hub();
        let bin = self.spec.bin.display().to_string();
        let log_path = self.spec.dir.join(format!("xdp-pass-{port}.log"));
        let args = ["dr", "xdp-pass", "--interface", port];
        let pid = self.start_logged(&hub, &bin, &args, &self.spec.dir, &log_path, "")?;
        // Attached when `ip link` shows a program on the port.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let out = sh("ip", &["-n", &hub, "link", "show", port])?;
            if out.contains("xdp") {
                return Ok(pid);
            }
            if !alive(pid) || Instant::now() > until {
                return Err(LabError::NotReady(format!(
                    "no XDP_PASS program on {port}: see {}",
                    log_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn build_network(&self) -> Result<(), LabError> {
        let hub = self.hub();
        create_hub(&hub)?;
        for r in self.roles() {
            let ns = self.ns(r);
            attach(&hub, &ns, &r.short(), r.addr())?;
            if r == Role::Devices {
                // Tens of thousands of device addresses without one entry each.
                sh("ip", &["-n", &ns, "route", "add", "local", FLEET, "dev", "lo"])?;
            } else {
                sh("ip", &["-n", &ns, "route", "add", FLEET, "via", &DEV_ADDR.to_string()])?;
            }
            // Directors open a connection to a real server per device session
            // from one address: reuse TIME_WAIT ports and use the whole range.
            for kv in [
                "net.ipv4.tcp_tw_reuse=1",
                "net.ipv4.ip_local_port_range=1024 65000",
                "net.core.somaxconn=8192",
            ] {
                ns_sysctl(&ns, kv)?;
            }
        }
        Ok(())
    }

    /// Start the role's process (server or director: `tacvs director` or
    /// HAProxy) in its namespace.
    pub fn spawn(&self, r: Role) -> Result<u32, LabError> {
        let dir = self.role_dir(r);
        if matches!(r, Role::Director(_)) && !self.spec.front.is_tacvs() {
            return self.spawn_haproxy(r);
        }
        let (what, conf) = match r {
            Role::Server(_) => ("server", dir.join("server.toml")),
            Role::Director(_) => ("director", dir.join("director.toml")),
            Role::Devices => {
                return Err(LabError::Invalid(
                    "the devices namespace runs `tacvs sim`, not a daemon".into(),
                ));
            }
        };
        let bin = self.spec.bin.display().to_string();
        self.start_logged(
            &self.ns(r),
            &bin,
            &[what, "-c", &conf.display().to_string()],
            &dir,
            &dir.join(format!("{what}.log")),
            "",
        )
    }

    /// Start `program ARGS` in namespace `ns` from `dir`, its output appended
    /// to `log`; its PID. `hint` is added to a failure to start.
    fn start_logged(
        &self,
        ns: &str,
        program: &str,
        args: &[&str],
        dir: &Path,
        log: &Path,
        hint: &str,
    ) -> Result<u32, LabError> {
        let out =
            std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(io_err(log))?;
        let err = out.try_clone().map_err(io_err(log))?;
        let child = self
            .command(ns, program)
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| LabError::Command {
                cmd: format!("ip netns exec {ns} {program} {}", args.join(" ")),
                err: format!("{e}{hint}"),
            })?;
        Ok(child.id())
    }

    /// Debian's HAProxy in director `r`'s namespace, in the foreground (`-db`)
    /// so its PID is the one to signal.
    fn spawn_haproxy(&self, r: Role) -> Result<u32, LabError> {
        if self.spec.front == Front::Nat {
            return Err(LabError::Invalid("the NAT front has no process to start".into()));
        }
        let dir = self.role_dir(r);
        let bin =
            if Path::new("/usr/sbin/haproxy").exists() { "/usr/sbin/haproxy" } else { "haproxy" };
        let conf = dir.join("haproxy.cfg").display().to_string();
        let log = dir.join("haproxy.log");
        self.start_logged(
            &self.ns(r),
            bin,
            &["-db", "-f", &conf],
            &dir,
            &log,
            " (apt-get install haproxy)",
        )
    }

    /// `ip netns exec NS PROGRAM` in its own process group (a Ctrl-C at the
    /// lab's terminal does not hit the daemons; `down` stops them).
    pub fn command(&self, ns: &str, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c.process_group(0);
        c
    }

    /// Wait until a server listens on port 49 (read from its own
    /// /proc/PID/net/tcp, which shows its namespace's sockets).
    fn wait_listening(&self, r: Role, pid: u32) -> Result<(), LabError> {
        let want = format!("{}:0031", hex_addr(r.addr()));
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if !alive(pid) {
                return Err(LabError::NotReady(format!(
                    "{} exited at start-up: see {}",
                    r.short(),
                    self.role_dir(r).join("server.log").display()
                )));
            }
            let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
            if tcp.lines().any(|l| {
                l.split_whitespace().nth(1) == Some(want.as_str())
                    && l.split_whitespace().nth(3) == Some("0A")
            }) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(LabError::NotReady(format!(
            "{} does not listen on {}:49 after 20 s",
            r.short(),
            r.addr()
        )))
    }

    /// The lab's certificates (with `tls`): `ca.pem`/`ca.key` (the devices'
    /// certificates are minted from it by `tacvs sim`), `ca.crl`, `sN.pem` for
    /// each real server (naming the VIP, which devices connect to, and its
    /// own address, which the directors check), `director.pem`.
    pub fn pki_dir(&self) -> PathBuf {
        self.spec.dir.join("pki")
    }

    fn write_pki(&self) -> Result<(), LabError> {
        use tacvs_tls::certs::{self, Role as CertRole, Validity};
        let dir = self.pki_dir();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let bad = |e: tacvs_tls::certs::CertError| {
            LabError::NotReady(format!("cannot make the lab's certificates: {e}"))
        };
        let put = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(io_err(&p))
        };
        let ca = certs::ca("tacvs lab CA", Validity::days(7)).map_err(bad)?;
        put("ca.pem", &ca.cert)?;
        put("ca.key", &ca.key)?;
        put("ca.crl", &certs::crl(&ca, &[], 7, 1).map_err(bad)?)?;
        for i in 1..=self.spec.servers {
            let r = Role::Server(i);
            let names = [VIP.to_string(), r.addr().to_string()];
            let p = certs::issue(&ca, CertRole::Server, &r.short(), &names, Validity::days(30))
                .map_err(bad)?;
            put(&format!("{}.pem", r.short()), &p.cert)?;
            put(&format!("{}.key", r.short()), &p.key)?;
        }
        let d = certs::issue(&ca, CertRole::Device, "tacvs lab director", &[], Validity::days(30))
            .map_err(bad)?;
        put("director.pem", &d.cert)?;
        put("director.key", &d.key)
    }

    fn write_server_config(&self, i: u8) -> Result<(), LabError> {
        let r = Role::Server(i);
        let dir = self.role_dir(r);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let pki = self.spec.tls.then(|| self.pki_dir());
        let text = crate::configs::server(i, self.spec.front, pki.as_deref());
        let p = dir.join("server.toml");
        std::fs::write(&p, text).map_err(io_err(&p))
    }

    fn write_director_config(&self, i: u8) -> Result<(), LabError> {
        let r = Role::Director(i);
        let dir = self.role_dir(r);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let notify = dir.join("notify.sh");
        std::fs::write(
            &notify,
            format!(
                "#!/bin/sh\necho \"$(date +%s.%N) $*\" >> {}\n",
                dir.join("vrrp-events.log").display()
            ),
        )
        .map_err(io_err(&notify))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755));
        }
        let pki = self.spec.tls.then(|| self.pki_dir());
        let (name, text) = match self.spec.front {
            Front::Proxy | Front::Dr => (
                "director.toml",
                crate::configs::director(
                    i,
                    self.spec.servers,
                    &self.spec.director,
                    &self.control_socket(i),
                    &notify,
                    self.spec.front,
                    pki.as_deref(),
                ),
            ),
            Front::HaproxyTcp | Front::HaproxyProxyV2 => (
                "haproxy.cfg",
                crate::configs::haproxy(
                    self.spec.servers,
                    &self.spec.director,
                    self.spec.front == Front::HaproxyProxyV2,
                ),
            ),
            Front::Nat => ("nat.nft", crate::configs::nft(self.spec.servers)),
        };
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(io_err(&p))
    }

    /// Stop every process the lab started and delete its namespaces (which
    /// takes every link and address with them). Safe to run again, and after
    /// a crash: processes are found from the state file and from the
    /// namespaces themselves.
    pub fn down(&self) -> Result<(), LabError> {
        down(&self.spec.prefix, Some(&self.state_path()))
    }
}

/// A namespace holding bridge `br0` (up, no STP delay).
pub fn create_hub(hub: &str) -> Result<(), LabError> {
    sh("ip", &["netns", "add", hub])?;
    sh("ip", &["-n", hub, "link", "set", "lo", "up"])?;
    sh("ip", &["-n", hub, "link", "add", "br0", "type", "bridge", "forward_delay", "0"])?;
    sh("ip", &["-n", hub, "link", "set", "br0", "up"])?;
    Ok(())
}

/// A new namespace `ns` whose `eth0` (with `addr`/16) is a port of the hub's
/// bridge. Both veth ends are created inside lab namespaces.
pub fn attach(hub: &str, ns: &str, name: &str, addr: Ipv4Addr) -> Result<(), LabError> {
    let port = format!("v-{name}");
    sh("ip", &["netns", "add", ns])?;
    sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    sh(
        "ip",
        &["-n", hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns],
    )?;
    sh("ip", &["-n", hub, "link", "set", &port, "master", "br0", "up"])?;
    sh("ip", &["-n", ns, "addr", "add", &format!("{addr}/{LAN_PREFIX}"), "dev", "eth0"])?;
    sh("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
    Ok(())
}

/// Tear down everything under `prefix` (see [`Lab::down`]).
pub fn down(prefix: &str, state: Option<&Path>) -> Result<(), LabError> {
    let mut pids: Vec<u32> = Vec::new();
    if let Some(st) = state
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<State>(&b).ok())
    {
        pids.extend(st.procs.iter().map(|p| p.pid).filter(|&p| alive(p) && is_ours(p)));
        pids.extend(st.helpers.iter().copied().filter(|&p| alive(p) && is_ours(p)));
    }
    let nss = namespaces(prefix);
    for ns in &nss {
        pids.extend(ns_pids(ns));
    }
    pids.sort_unstable();
    pids.dedup();
    kill_all(&pids);
    for ns in &nss {
        // Deleting a namespace destroys its veths (and their peers in the hub).
        sh("ip", &["netns", "del", ns])?;
    }
    if let Some(p) = state {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// A PID from the state file still runs a program the lab starts (a PID the
/// kernel reused for something else is left alone).
fn is_ours(pid: u32) -> bool {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = String::from_utf8_lossy(&cmd);
    cmd.contains("tacvs") || cmd.contains("keepalived") || cmd.contains("haproxy")
}

/// /proc/net/tcp's address form (little-endian hex).
pub fn hex_addr(a: Ipv4Addr) -> String {
    let o = a.octets();
    format!("{:02X}{:02X}{:02X}{:02X}", o[3], o[2], o[1], o[0])
}

/// Whether the kernel has the netem queueing discipline.
pub fn have_netem(ns: &str) -> bool {
    let ok =
        sh("tc", &["-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]).is_ok();
    if ok {
        let _ = sh("tc", &["-n", ns, "qdisc", "del", "dev", "lo", "root"]);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_address() {
        assert_eq!(Role::parse("d2"), Some(Role::Director(2)));
        assert_eq!(Role::parse("s12"), Some(Role::Server(12)));
        assert_eq!(Role::parse("dev"), Some(Role::Devices));
        assert_eq!(Role::parse("d3"), None);
        assert_eq!(Role::parse("s0"), None);
        assert_eq!(Role::parse("x1"), None);
        assert_eq!(Role::parse(""), None);
        assert_eq!(Role::Server(3).addr(), Ipv4Addr::new(10, 49, 1, 3));
        assert_eq!(hex_addr(Ipv4Addr::new(10, 49, 1, 3)), "0301310A");
    }

    #[test]
    fn generated_configs_are_valid() {
        let dir = std::env::temp_dir().join(format!("tacvs-lab-unit-{}", std::process::id()));
        let lab = Lab::new(Spec {
            prefix: "unit".into(),
            dir: dir.clone(),
            bin: "tacvs".into(),
            servers: 3,
            directors: 2,
            director: DirectorSettings::default(),
            tls: false,
            front: Front::Proxy,
            nat: NatSettings::default(),
            steer: false,
        })
        .unwrap();
        lab.write_server_config(2).unwrap();
        lab.write_director_config(1).unwrap();
        let d = tacvs_director::config::load(&dir.join("d1/director.toml")).unwrap();
        assert_eq!(d.services[0].reals.len(), 3);
        assert_eq!((d.vrrp.as_ref().unwrap().priority, d.vrrp.as_ref().unwrap().vrid), (150, VRID));
        let text = std::fs::read_to_string(dir.join("s2/server.toml")).unwrap();
        assert!(text.contains("10.49.1.2:49"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn over_tls_the_configs_take_the_labs_certificates() {
        let dir = std::env::temp_dir().join(format!("tacvs-lab-unit-tls-{}", std::process::id()));
        let lab = Lab::new(Spec {
            prefix: "unit".into(),
            dir: dir.clone(),
            bin: "tacvs".into(),
            servers: 2,
            directors: 2,
            director: DirectorSettings::default(),
            tls: true,
            front: Front::Proxy,
            nat: NatSettings::default(),
            steer: false,
        })
        .unwrap();
        lab.write_pki().unwrap();
        lab.write_server_config(2).unwrap();
        lab.write_director_config(1).unwrap();
        let p = tacvs_policy::load(&dir.join("s2/server.toml")).unwrap();
        let t = p.listeners[0].tls.as_ref().expect("a TLS listener");
        assert_eq!(t.certificate.subject, "CN=s2");
        let d = tacvs_director::config::check(&dir.join("d1/director.toml")).unwrap();
        assert!(d.file.services[0].health.tls.is_some());
        assert!(
            d.warnings.iter().all(|w| !w.to_string().contains("[service.health.tls]")),
            "{:?}",
            d.warnings
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
