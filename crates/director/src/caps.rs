//! The Linux capabilities a director needs for its configuration, checked at
//! start so that a missing one fails before anything is bound or changed,
//! with the capability named and what needs it.
//!
//! | needs | capability |
//! |---|---|
//! | a service or the metrics address on a port below 1024 | `CAP_NET_BIND_SERVICE` |
//! | `[vrrp]`: advertisements on a raw IP socket, gratuitous ARP on a packet socket | `CAP_NET_RAW` |
//! | `[vrrp]`: adding and removing the virtual addresses (netlink) | `CAP_NET_ADMIN` |
//! | `mode = "dr"`: attaching the XDP program, reading routes and neighbours | `CAP_NET_ADMIN` |
//! | `mode = "dr"`: loading the XDP program and its maps | `CAP_BPF` |
//! | `mode = "dr"`: the verifier accepts the program's pointer arithmetic only with it (Linux 6.18) | `CAP_PERFMON` |
//! | `mode = "dr"`: the data plane sends and answers ARP for the VIPs | `CAP_NET_RAW` |
//!
//! Root has them all. [`needed`] and [`missing`] are pure; [`effective`] reads
//! `CapEff` from `/proc/self/status`.

use std::fmt;

use crate::config::{DirectorFile, Mode};

/// A capability, by its number in `linux/capability.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cap {
    /// Bind ports below 1024.
    NetBindService = 10,
    /// Network administration (addresses, XDP attach).
    NetAdmin = 12,
    /// Raw and packet sockets.
    NetRaw = 13,
    /// Performance monitoring (the BPF verifier's pointer rules).
    Perfmon = 38,
    /// BPF programs and maps.
    Bpf = 39,
}

impl Cap {
    /// Its bit in a capability mask.
    pub fn bit(self) -> u64 {
        1 << (self as u32)
    }

    /// `CAP_NET_RAW` etc.
    pub fn name(self) -> &'static str {
        match self {
            Cap::NetBindService => "CAP_NET_BIND_SERVICE",
            Cap::NetAdmin => "CAP_NET_ADMIN",
            Cap::NetRaw => "CAP_NET_RAW",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        }
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One capability the configuration needs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The capability.
    pub cap: Cap,
    /// What needs it, in words.
    pub why: String,
}

/// Pure: what `conf` needs, in a stable order (by capability, then reason).
pub fn needed(conf: &DirectorFile) -> Vec<Need> {
    let mut out = Vec::new();
    let mut need = |cap, why: String| out.push(Need { cap, why });
    for s in &conf.services {
        if s.mode == Mode::Proxy && s.listen.port() != 0 && s.listen.port() < 1024 {
            need(
                Cap::NetBindService,
                format!("service {:?} listens on {} (a port below 1024)", s.name, s.listen),
            );
        }
    }
    if let Some(m) = &conf.metrics
        && m.listen.port() != 0
        && m.listen.port() < 1024
    {
        need(Cap::NetBindService, format!("[metrics] listen on {} (a port below 1024)", m.listen));
    }
    if conf.vrrp.is_some() {
        need(Cap::NetRaw, "VRRP (raw socket for advertisements, gratuitous ARP)".into());
        need(Cap::NetAdmin, "VRRP (adding and removing the virtual addresses)".into());
    }
    if conf.services.iter().any(|s| s.mode == Mode::Dr) {
        need(
            Cap::NetAdmin,
            "direct routing (attaching the XDP program, routes, neighbours)".into(),
        );
        need(Cap::Bpf, "direct routing (loading the XDP program and its maps)".into());
        need(
            Cap::Perfmon,
            "direct routing (the kernel's verifier refuses the XDP program's pointer arithmetic \
             without it)"
                .into(),
        );
        need(Cap::NetRaw, "direct routing (ARP for the virtual addresses)".into());
    }
    out.sort_by(|a, b| (a.cap, &a.why).cmp(&(b.cap, &b.why)));
    out
}

/// Pure: the needs whose capability is not in the effective mask `eff`.
pub fn missing(needs: &[Need], eff: u64) -> Vec<Need> {
    needs.iter().filter(|n| eff & n.cap.bit() == 0).cloned().collect()
}

/// The error for a non-empty `missing` list: each capability and what needs
/// it, then how to grant them.
pub fn explain(missing: &[Need]) -> String {
    let mut caps: Vec<Cap> = missing.iter().map(|n| n.cap).collect();
    caps.dedup();
    let mut s = String::from("the director lacks capabilities its configuration needs:\n");
    for n in missing {
        s.push_str(&format!("  {} is needed by {}\n", n.cap, n.why));
    }
    let names: Vec<&str> = caps.iter().map(|c| c.name()).collect();
    let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    s.push_str(&format!(
        "run it as root, or grant them: under systemd AmbientCapabilities={} (the packaged \
         tacvs-director.service does), or on the binary `setcap {}=+ep $(command -v tacvs)`; \
         nothing was started",
        names.join(" "),
        lower.join(",")
    ));
    s
}

/// Parse the `CapEff:` line of a `/proc/PID/status` text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// This process's effective capabilities.
pub fn effective() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_cap_eff(&status).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "no CapEff line in /proc/self/status")
    })
}

/// Check this process against `conf`: `Err(message)` naming what is missing.
pub fn check(conf: &DirectorFile) -> Result<(), String> {
    let needs = needed(conf);
    if needs.is_empty() {
        return Ok(());
    }
    let eff = effective().map_err(|e| format!("cannot read this process's capabilities: {e}"))?;
    let miss = missing(&needs, eff);
    if miss.is_empty() { Ok(()) } else { Err(explain(&miss)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: &str, listen: &str, mode: &str) -> DirectorFile {
        let src = format!(
            "[director]\ncontrol_socket = \"/tmp/x.sock\"\n{extra}\n[[service]]\nname = \"tacacs\"\n\
             listen = \"{listen}\"\nmode = \"{mode}\"\n[service.health]\ncheck = \"tcp\"\n\
             interval = \"1s\"\ntimeout = \"1s\"\n[[service.real]]\naddress = \"127.0.0.2:49\"\n"
        );
        toml::from_str(&src).unwrap()
    }

    #[test]
    fn proxy_above_1023_needs_nothing_below_needs_bind() {
        assert!(needed(&conf("", "127.0.0.1:4949", "proxy")).is_empty());
        assert!(needed(&conf("", "127.0.0.1:0", "proxy")).is_empty());
        let n = needed(&conf("", "127.0.0.1:49", "proxy"));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].cap, Cap::NetBindService);
        assert!(n[0].why.contains("\"tacacs\" listens on 127.0.0.1:49"), "{}", n[0].why);
        let m = needed(&conf("[metrics]\nlisten = \"127.0.0.1:99\"", "127.0.0.1:4949", "proxy"));
        assert!(m[0].why.contains("[metrics]"), "{m:?}");
    }

    #[test]
    fn vrrp_needs_raw_and_admin_dr_needs_four() {
        let vrrp =
            "[vrrp]\ninterface = \"eth0\"\nvrid = 1\npriority = 100\nvips = [\"10.0.0.1/24\"]";
        let n = needed(&conf(vrrp, "10.0.0.1:4949", "proxy"));
        let caps: Vec<Cap> = n.iter().map(|n| n.cap).collect();
        assert_eq!(caps, [Cap::NetAdmin, Cap::NetRaw]);
        let n = needed(&conf("[dr]\ninterface = \"eth0\"", "10.0.0.1:49", "dr"));
        let mut caps: Vec<Cap> = n.iter().map(|n| n.cap).collect();
        caps.dedup();
        assert_eq!(caps, [Cap::NetAdmin, Cap::NetRaw, Cap::Perfmon, Cap::Bpf]);
    }

    #[test]
    fn missing_keeps_only_what_the_mask_lacks_and_names_it() {
        let vrrp =
            "[vrrp]\ninterface = \"eth0\"\nvrid = 1\npriority = 100\nvips = [\"10.0.0.1/24\"]";
        let n = needed(&conf(vrrp, "10.0.0.1:49", "proxy"));
        assert!(missing(&n, u64::MAX).is_empty());
        let m = missing(&n, Cap::NetAdmin.bit() | Cap::NetBindService.bit());
        assert_eq!(m.len(), 1);
        let e = explain(&m);
        assert!(
            e.contains("CAP_NET_RAW is needed by VRRP (raw socket for advertisements")
                && e.contains("AmbientCapabilities=CAP_NET_RAW")
                && e.contains("setcap cap_net_raw=+ep")
                && e.contains("run it as root"),
            "{e}"
        );
        assert_eq!(missing(&n, 0).len(), 3);
    }

    #[test]
    fn cap_eff_parses_from_proc_status() {
        let s = "Name:\ttacvs\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000003400\n";
        let eff = parse_cap_eff(s).unwrap();
        assert_eq!(eff, Cap::NetBindService.bit() | Cap::NetAdmin.bit() | Cap::NetRaw.bit());
        assert_eq!(parse_cap_eff("Name: x\n"), None);
        assert!(effective().is_ok());
    }
}
