//! A real server for direct routing: set-up and check.
//!
//! In DR the director changes only the destination MAC of a device's packet;
//! the packet still says "to the VIP". The real server must therefore hold
//! the VIP as a local address — on `lo`, so it never answers ARP for it — and
//! must neither answer ARP for it on its real interfaces (`arp_ignore=1`: reply
//! only for addresses on the interface asked) nor use it as the sender of its
//! own ARP requests (`arp_announce=2`: use the outgoing interface's address).
//! Otherwise the server competes with the director for the VIP and devices'
//! traffic bypasses the director, or replies never come. IPv6 needs only the
//! VIP on `lo`: Linux answers neighbour solicitations only for addresses on
//! the interface asked.
//!
//! [`check`] is pure: it takes the [`Facts`] [`gather`] read (addresses
//! through rtnetlink, sysctls and listeners from `/proc`, all in the calling
//! thread's network namespace) and returns what is wrong and how to fix it.
//! [`setup`] makes the changes; running it twice changes nothing the second
//! time.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};

/// What was read on the machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// The VIP checked.
    pub vip: Option<IpAddr>,
    /// The interfaces holding the VIP.
    pub vip_on: Vec<String>,
    /// Whether `lo` is up.
    pub lo_up: bool,
    /// `net.ipv4.conf.all.arp_ignore` and `.arp_announce`.
    pub all: (u32, u32),
    /// Per IPv4 interface other than `lo`: (name, arp_ignore, arp_announce).
    pub interfaces: Vec<(String, u32, u32)>,
    /// Whether a TCP socket listens on the VIP (or the wildcard) at the port
    /// asked about; `None` when no port was given.
    pub listening: Option<(u16, bool)>,
}

/// Something that would stop a real server from answering DR traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong and what it does to traffic.
    pub what: String,
    /// The command that fixes it.
    pub fix: String,
}

/// What is wrong with a real server for DR, given what [`gather`] read.
/// Empty: ready.
pub fn check(f: &Facts) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(vip) = f.vip else {
        return out;
    };
    let prefix = if vip.is_ipv4() { 32 } else { 128 };
    if !f.vip_on.iter().any(|i| i == "lo") {
        out.push(Problem {
            what: format!(
                "the VIP {vip} is not a local address on lo: the kernel drops the packets the \
                 director sends here (they are addressed to the VIP)"
            ),
            fix: format!(
                "tacvs dr real-server setup --vip {vip}   (or: ip addr add {vip}/{prefix} dev lo)"
            ),
        });
    }
    if !f.lo_up {
        out.push(Problem {
            what: "lo is down: no local address works, the VIP included".into(),
            fix: "ip link set lo up".into(),
        });
    }
    for other in f.vip_on.iter().filter(|i| *i != "lo") {
        out.push(Problem {
            what: format!(
                "the VIP {vip} is also on {other}: this server answers ARP for it there and takes \
                 devices' traffic away from the director"
            ),
            fix: format!("ip addr del {vip}/{prefix} dev {other}"),
        });
    }
    if vip.is_ipv4() {
        let (all_ignore, all_announce) = f.all;
        for (name, ignore, announce) in &f.interfaces {
            // The kernel uses the larger of `all` and the interface's value.
            let eff_ignore = (*ignore).max(all_ignore);
            let eff_announce = (*announce).max(all_announce);
            if eff_ignore == 0 {
                out.push(Problem {
                    what: format!(
                        "arp_ignore is 0 on {name} (all: {all_ignore}): this server answers ARP for \
                         the VIP on {name} and devices may send to it instead of the director"
                    ),
                    fix: "sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.lo.arp_ignore=1"
                        .into(),
                });
            }
            if eff_announce < 2 {
                out.push(Problem {
                    what: format!(
                        "arp_announce is {eff_announce} on {name} (all: {all_announce}): this \
                         server's own ARP requests out of {name} may name the VIP as sender and \
                         move neighbours' idea of the VIP's MAC to this server"
                    ),
                    fix:
                        "sysctl -w net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.lo.arp_announce=2"
                            .into(),
                });
            }
        }
    }
    if let Some((port, false)) = f.listening {
        out.push(Problem {
            what: format!(
                "nothing listens on TCP {} or the wildcard address at port {port}: the server \
                 resets every connection the director sends",
                if vip.is_ipv4() { vip.to_string() } else { format!("[{vip}]") }
            ),
            fix: format!(
                "start the service bound to 0.0.0.0:{port} (or the VIP), e.g. tacvs server"
            ),
        });
    }
    out
}

/// Set-up and check errors.
#[derive(Debug, thiserror::Error)]
pub enum RealServerError {
    /// Netlink failed.
    #[error("netlink ({what}): {source}")]
    Netlink {
        /// What was being done.
        what: &'static str,
        /// Cause.
        #[source]
        source: rtnetlink::Error,
    },
    /// A file under /proc could not be read or written.
    #[error("{path}: {source} (setting sysctls needs root)")]
    Proc {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No netlink socket.
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// `lo` is missing.
    #[error("there is no lo interface in this network namespace")]
    NoLoopback,
}

fn nl_err(what: &'static str) -> impl FnOnce(rtnetlink::Error) -> RealServerError {
    move |source| RealServerError::Netlink { what, source }
}

fn sysctl_path(iface: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{iface}/{key}")
}

fn read_sysctl(iface: &str, key: &str) -> Result<u32, RealServerError> {
    let path = sysctl_path(iface, key);
    let text = std::fs::read_to_string(&path)
        .map_err(|source| RealServerError::Proc { path: path.clone(), source })?;
    text.trim().parse().map_err(|_| RealServerError::Proc {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
    })
}

fn write_sysctl(iface: &str, key: &str, value: u32) -> Result<bool, RealServerError> {
    if read_sysctl(iface, key)? == value {
        return Ok(false);
    }
    let path = sysctl_path(iface, key);
    std::fs::write(&path, format!("{value}\n"))
        .map_err(|source| RealServerError::Proc { path, source })?;
    Ok(true)
}

pub(crate) struct Netlink {
    pub(crate) handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Netlink {
    // In the calling thread's network namespace (the socket is made here).
    pub(crate) fn open() -> Result<Netlink, RealServerError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(RealServerError::Socket)?;
        Ok(Netlink { handle, task: tokio::spawn(conn) })
    }

    async fn links(&self) -> Result<Vec<(u32, String, bool)>, RealServerError> {
        let mut out = Vec::new();
        let mut s = self.handle.link().get().execute();
        while let Some(m) = s.try_next().await.map_err(nl_err("listing links"))? {
            let name = m.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            if let Some(name) = name {
                out.push((m.header.index, name, m.header.flags.contains(LinkFlags::Up)));
            }
        }
        Ok(out)
    }

    async fn addresses(&self) -> Result<Vec<(u32, IpAddr, u8)>, RealServerError> {
        let mut out = Vec::new();
        let mut s = self.handle.address().get().execute();
        while let Some(m) = s.try_next().await.map_err(nl_err("listing addresses"))? {
            let AddressMessage { header, attributes, .. } = m;
            let addr = attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = addr.or_else(|| {
                attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(a) = addr {
                out.push((header.index, a, header.prefix_len));
            }
        }
        Ok(out)
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read what [`check`] needs about `vip` (and a listener on `port`) in the
/// calling thread's network namespace. Needs a tokio runtime.
pub async fn gather(vip: IpAddr, port: Option<u16>) -> Result<Facts, RealServerError> {
    let nl = Netlink::open()?;
    let links = nl.links().await?;
    let name_of = |i: u32| links.iter().find(|l| l.0 == i).map(|l| l.1.clone());
    let lo_up = links.iter().find(|l| l.1 == "lo").ok_or(RealServerError::NoLoopback)?.2;
    let mut vip_on: Vec<String> = nl
        .addresses()
        .await?
        .into_iter()
        .filter(|(_, a, _)| *a == vip)
        .filter_map(|(i, _, _)| name_of(i))
        .collect();
    vip_on.sort();
    vip_on.dedup();
    let all = (read_sysctl("all", "arp_ignore")?, read_sysctl("all", "arp_announce")?);
    let mut interfaces = Vec::new();
    for (_, name, _) in &links {
        // Interfaces without IPv4 have no conf entry; `lo` never sends ARP.
        if name == "lo" || !std::path::Path::new(&sysctl_path(name, "arp_ignore")).exists() {
            continue;
        }
        interfaces.push((
            name.clone(),
            read_sysctl(name, "arp_ignore")?,
            read_sysctl(name, "arp_announce")?,
        ));
    }
    let listening = match port {
        Some(p) => Some((p, listening(vip, p)?)),
        None => None,
    };
    Ok(Facts { vip: Some(vip), vip_on, lo_up, all, interfaces, listening })
}

/// Whether a TCP socket listens on `vip` or the wildcard at `port`, from
/// `/proc/thread-self/net/tcp{,6}` (this thread's namespace).
fn listening(vip: IpAddr, port: u16) -> Result<bool, RealServerError> {
    for file in ["tcp", "tcp6"] {
        let path = format!("/proc/thread-self/net/{file}");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // No IPv6 in this kernel.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(RealServerError::Proc { path, source }),
        };
        if listeners(&text).any(|(a, p)| p == port && (a == vip || a.is_unspecified())) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The listening (state 0A) local addresses of a `/proc/net/tcp{,6}` table.
/// Addresses are printed as native-endian 32-bit words in hex.
fn listeners(table: &str) -> impl Iterator<Item = (IpAddr, u16)> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let mut cols = line.split_whitespace();
        let local = cols.nth(1)?;
        let state = cols.nth(1)?;
        if state != "0A" {
            return None;
        }
        let (addr, port) = local.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let words: Option<Vec<[u8; 4]>> = (0..addr.len() / 8)
            .map(|i| {
                u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok().map(u32::to_ne_bytes)
            })
            .collect();
        let bytes: Vec<u8> = words?.concat();
        let ip = match bytes.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
            16 => {
                let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
                // `::` listens for IPv4 too (dual stack); v4-mapped is IPv4.
                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
            }
            _ => return None,
        };
        Some((ip, port))
    })
}

/// Make this machine (the calling thread's namespace) a DR real server for
/// `vips`: `lo` up, each VIP on `lo` (/32 or /128), `arp_ignore=1` and
/// `arp_announce=2` on `all` and `lo` (raised only: a stricter value stays).
/// Returns what it changed, in words. Needs root and a tokio runtime.
pub async fn setup(vips: &[IpAddr]) -> Result<Vec<String>, RealServerError> {
    let nl = Netlink::open()?;
    let links = nl.links().await?;
    let (lo, _, lo_up) = links.iter().find(|l| l.1 == "lo").ok_or(RealServerError::NoLoopback)?;
    let mut done = Vec::new();
    if !lo_up {
        nl.handle
            .link()
            .set(rtnetlink::LinkUnspec::new_with_index(*lo).up().build())
            .execute()
            .await
            .map_err(nl_err("setting lo up"))?;
        done.push("set lo up".to_owned());
    }
    let have = nl.addresses().await?;
    for &vip in vips {
        if have.iter().any(|(i, a, _)| i == lo && *a == vip) {
            continue;
        }
        let prefix = if vip.is_ipv4() { 32 } else { 128 };
        match nl.handle.address().add(*lo, vip, prefix).execute().await {
            Ok(()) => done.push(format!("added {vip}/{prefix} to lo")),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {}
            Err(e) => return Err(nl_err("adding the VIP to lo")(e)),
        }
    }
    if vips.iter().any(IpAddr::is_ipv4) {
        for iface in ["all", "lo"] {
            for (key, want) in [("arp_ignore", 1), ("arp_announce", 2)] {
                if read_sysctl(iface, key)? < want && write_sysctl(iface, key, want)? {
                    done.push(format!("net.ipv4.conf.{iface}.{key} = {want}"));
                }
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Facts {
        Facts {
            vip: Some("10.9.0.1".parse().unwrap()),
            vip_on: vec!["lo".into()],
            lo_up: true,
            all: (1, 2),
            interfaces: vec![("eth0".into(), 0, 0)],
            listening: Some((49, true)),
        }
    }

    #[test]
    fn a_ready_server_has_no_problems() {
        assert_eq!(check(&good()), vec![]);
        // Per-interface values count as well as `all`'s.
        let f = Facts { all: (0, 0), interfaces: vec![("eth0".into(), 1, 2)], ..good() };
        assert_eq!(check(&f), vec![]);
        // IPv6: no ARP sysctls matter.
        let f = Facts { vip: Some("2001:db8::9".parse().unwrap()), all: (0, 0), ..good() };
        assert_eq!(check(&f), vec![]);
    }

    #[test]
    fn each_fault_is_named_with_its_fix() {
        let cases: Vec<(Facts, &str, &str)> = vec![
            (
                Facts { vip_on: vec![], ..good() },
                "not a local address on lo",
                "ip addr add 10.9.0.1/32 dev lo",
            ),
            (Facts { lo_up: false, ..good() }, "lo is down", "ip link set lo up"),
            (
                Facts { vip_on: vec!["eth0".into(), "lo".into()], ..good() },
                "also on eth0",
                "ip addr del 10.9.0.1/32 dev eth0",
            ),
            (Facts { all: (0, 2), ..good() }, "arp_ignore is 0 on eth0", "arp_ignore=1"),
            (Facts { all: (1, 1), ..good() }, "arp_announce is 1 on eth0", "arp_announce=2"),
            (
                Facts { listening: Some((49, false)), ..good() },
                "nothing listens on TCP 10.9.0.1",
                "0.0.0.0:49",
            ),
        ];
        for (facts, what, fix) in cases {
            let p = check(&facts);
            assert_eq!(p.len(), 1, "{what}: {p:?}");
            assert!(p[0].what.contains(what), "{}", p[0].what);
            assert!(p[0].fix.contains(fix), "{}", p[0].fix);
        }
    }

    #[test]
    fn proc_net_tcp_listeners() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000:0031 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
           1: 0100090A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n\
           2: 0100007F:0031 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n";
        let got: Vec<_> = listeners(v4).collect();
        let want_ip: IpAddr = if cfg!(target_endian = "little") {
            "10.9.0.1".parse().unwrap()
        } else {
            "1.0.9.10".parse().unwrap()
        };
        assert_eq!(got, vec![("0.0.0.0".parse().unwrap(), 49), (want_ip, 8080)]);
        let v6 = "  sl  local_address                         remote_address                        st\n\
           0: 00000000000000000000000000000000:0031 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(listeners(v6).collect::<Vec<_>>(), vec![("::".parse().unwrap(), 49)]);
        assert_eq!(listeners("header\ngarbage line\n 0: zz:zz 0 0A\n").count(), 0);
    }
}
