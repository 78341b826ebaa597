//! A real server's MAC, from the kernel's neighbour table, for
//! [`crate::Service::reals`]. DR forwards by MAC, so a real server must sit
//! on the director's segment: reached through the interface the program
//! forwards on, with no router in between.
//!
//! [`resolve`] sends nothing: it asks the routing table which way the server
//! is, then the neighbour table for its MAC. The kernel learns the MAC when
//! the director sends to the server, which its health checks do, so a caller
//! resolves after a check and again whenever it wants fresh MACs. [`judge`]
//! is the pure decision, tested without a kernel.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};

use crate::layout::MacAddr;
use crate::realserver::{Netlink, RealServerError};

/// Why a server's MAC is not (yet) usable.
#[derive(Debug, thiserror::Error)]
pub enum NeighbourError {
    /// Routed through a gateway: not on the segment.
    #[error(
        "real server {server} is reached through the router {gateway}: direct routing forwards \
         by MAC, so real servers must be on the director's own segment"
    )]
    NotOnLink {
        /// The server.
        server: IpAddr,
        /// The next hop.
        gateway: IpAddr,
    },
    /// Routed out of another interface.
    #[error(
        "real server {server} is reached through interface index {via}, not {want} where the \
         data plane forwards: put it on that segment, or forward there (DataPlane::set_output)"
    )]
    OtherInterface {
        /// The server.
        server: IpAddr,
        /// The route's interface.
        via: u32,
        /// Ours.
        want: u32,
    },
    /// No route at all.
    #[error("real server {server}: no route to it ({reason})")]
    NoRoute {
        /// The server.
        server: IpAddr,
        /// What the kernel said.
        reason: String,
    },
    /// No usable neighbour entry yet.
    #[error(
        "real server {server}: no MAC known yet (neighbour entry: {state}); the kernel learns it \
         when the director sends to the server (its health checks do) — is the server up on this \
         segment?"
    )]
    Unresolved {
        /// The server.
        server: IpAddr,
        /// The entry's state, in words.
        state: &'static str,
    },
    /// Netlink itself failed.
    #[error(transparent)]
    Netlink(#[from] RealServerError),
}

impl NeighbourError {
    /// Whether only the MAC is missing (the kernel may still learn it),
    /// rather than the server being off the director's segment.
    pub fn is_pending(&self) -> bool {
        matches!(self, NeighbourError::Unresolved { .. })
    }
}

/// What the routing table said about the way to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Next hop, when not on link.
    pub gateway: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
}

/// The neighbour entry, if any: state and link-layer address.
pub type Entry = Option<(NeighbourState, Option<[u8; 6]>)>;

/// The MAC to use for `server`, given its route, the interface the data
/// plane forwards on, and its neighbour entry on that interface.
pub fn judge(
    server: IpAddr,
    route: Route,
    ifindex: u32,
    entry: Entry,
) -> Result<MacAddr, NeighbourError> {
    if let Some(gateway) = route.gateway {
        return Err(NeighbourError::NotOnLink { server, gateway });
    }
    if let Some(via) = route.oif.filter(|&o| o != ifindex) {
        return Err(NeighbourError::OtherInterface { server, via, want: ifindex });
    }
    let state = match entry {
        None => "none",
        // A MAC the kernel holds as valid (stale ones are still the server's:
        // the kernel re-checks them on use, and so will the next resolve).
        Some((
            NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent,
            Some(mac),
        )) if mac != [0; 6] => return Ok(MacAddr(mac)),
        Some((NeighbourState::Incomplete, _)) => "incomplete: ARP sent, no answer yet",
        Some((NeighbourState::Failed, _)) => "failed: no answer to ARP",
        Some((NeighbourState::Noarp, _)) => "no ARP on this interface",
        Some(_) => "without a MAC",
    };
    Err(NeighbourError::Unresolved { server, state })
}

/// Resolve `server`'s MAC for a data plane forwarding on `ifindex`, in the
/// calling thread's network namespace. Needs a tokio runtime.
pub async fn resolve(ifindex: u32, server: IpAddr) -> Result<MacAddr, NeighbourError> {
    let mut all = resolve_many(ifindex, &[server]).await?;
    all.pop().map_or(Err(NeighbourError::Unresolved { server, state: "none" }), |(_, r)| r)
}

/// [`resolve`] for several servers over one netlink socket and one read of
/// the neighbour table (a director with many real servers refreshes them
/// all at once). Fails whole only when netlink itself does.
pub async fn resolve_many(
    ifindex: u32,
    servers: &[IpAddr],
) -> Result<Vec<(IpAddr, Result<MacAddr, NeighbourError>)>, NeighbourError> {
    let nl = Netlink::open()?;
    let mut routes = Vec::with_capacity(servers.len());
    for &server in servers {
        routes.push(route(&nl, server).await);
    }
    let mut entries: std::collections::HashMap<IpAddr, Entry> = std::collections::HashMap::new();
    let mut neigh = nl.handle.neighbours().get().execute();
    while let Some(m) = neigh
        .try_next()
        .await
        .map_err(|source| RealServerError::Netlink { what: "listing neighbours", source })?
    {
        if m.header.ifindex != ifindex {
            continue;
        }
        let dst = m.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(IpAddr::from(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(IpAddr::from(*a)),
            _ => None,
        });
        let Some(dst) = dst.filter(|d| servers.contains(d)) else { continue };
        let mac = m.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
            _ => None,
        });
        entries.insert(dst, Some((m.header.state, mac)));
    }
    Ok(servers
        .iter()
        .zip(routes)
        .map(|(&server, route)| {
            let r = route.and_then(|route| {
                judge(server, route, ifindex, entries.get(&server).copied().flatten())
            });
            (server, r)
        })
        .collect())
}

/// Which way the kernel would send to `server`.
async fn route(nl: &Netlink, server: IpAddr) -> Result<Route, NeighbourError> {
    let prefix = if server.is_ipv4() { 32 } else { 128 };
    let msg = rtnetlink::RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(server, prefix)
        .map_err(|e| NeighbourError::NoRoute { server, reason: e.to_string() })?
        .build();
    let mut routes = nl.handle.route().get(msg).execute();
    let r = routes
        .try_next()
        .await
        .map_err(|e| NeighbourError::NoRoute { server, reason: e.to_string() })?;
    let mut route = Route { gateway: None, oif: None };
    for a in r.iter().flat_map(|m| m.attributes.iter()) {
        match a {
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => route.gateway = Some((*g).into()),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => route.gateway = Some((*g).into()),
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            _ => {}
        }
    }
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 11));
    const ON_LINK: Route = Route { gateway: None, oif: Some(2) };

    #[test]
    fn a_known_mac_on_our_segment() {
        for st in [NeighbourState::Reachable, NeighbourState::Stale, NeighbourState::Permanent] {
            let mac = judge(S, ON_LINK, 2, Some((st, Some([2, 0, 0, 0, 0, 11])))).unwrap();
            assert_eq!(mac, MacAddr([2, 0, 0, 0, 0, 11]));
        }
    }

    #[test]
    fn everything_else_says_why() {
        let gw = Route { gateway: Some("10.0.0.1".parse().unwrap()), oif: Some(2) };
        let e = judge(S, gw, 2, None).unwrap_err().to_string();
        assert!(e.contains("through the router 10.0.0.1"), "{e}");
        let other = Route { gateway: None, oif: Some(3) };
        let e = judge(S, other, 2, None).unwrap_err().to_string();
        assert!(e.contains("interface index 3, not 2"), "{e}");
        for (entry, words) in [
            (None, "none"),
            (Some((NeighbourState::Incomplete, None)), "incomplete"),
            (Some((NeighbourState::Failed, Some([2, 0, 0, 0, 0, 1]))), "failed"),
            (Some((NeighbourState::Reachable, None)), "without a MAC"),
            (Some((NeighbourState::Reachable, Some([0; 6]))), "without a MAC"),
        ] {
            let e = judge(S, ON_LINK, 2, entry).unwrap_err().to_string();
            assert!(e.contains(words), "{e}");
        }
    }
}
