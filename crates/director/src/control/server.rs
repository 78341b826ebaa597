//! The director's end of the control socket: read one request line (bounded
//! in size and time), answer with one reply line.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::access::{Access, proc_groups};
use super::protocol::{MAX_REQUEST, ReloadStatus, Reply, Request, StatusReport, WeightChange};
use crate::config::MAX_WEIGHT;
use crate::failover::VrrpCell;
use crate::service::{Registry, ServiceRt};

/// Time allowed for a request line.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve requests until the task is aborted.
/// What the control socket reports from, kept up to date by the runtime and
/// the virtual router.
#[derive(Debug)]
pub(crate) struct Live {
    /// The running services.
    pub services: Registry,
    /// VRRP's status.
    pub vrrp: Arc<VrrpCell>,
    /// The direct-routing engine's last counters.
    pub dr: Arc<crate::dr::DrCell>,
    /// When the last reload happened, whether it applied, and what it said.
    last_reload: Mutex<Option<(Instant, bool, String)>>,
    /// Recent state changes (shared with the services and the virtual router).
    pub events: Arc<crate::events::Events>,
}

impl Default for Live {
    fn default() -> Self {
        let events = Arc::new(crate::events::Events::default());
        Live {
            services: Registry::default(),
            vrrp: Arc::new(VrrpCell::with_events(events.clone())),
            dr: Arc::default(),
            last_reload: Mutex::default(),
            events,
        }
    }
}

impl Live {
    pub fn status(&self) -> StatusReport {
        let now = Instant::now();
        let last = self.last_reload.lock().unwrap_or_else(|e| e.into_inner());
        let mut services: Vec<_> = self.services.load().iter().map(|s| s.status(now)).collect();
        for svc in services.iter_mut().filter(|s| s.mode == "dr") {
            let Ok(vip) = svc.listen.parse::<SocketAddr>() else { continue };
            for r in &mut svc.reals {
                let Ok(addr) = r.address.parse::<SocketAddr>() else { continue };
                if let Some(d) = self.dr.real(vip, addr.ip()) {
                    r.total = d.flows;
                    r.cps = d.flows_per_s;
                    r.bytes_in = d.bytes;
                    r.packets = d.packets;
                    r.mac = match d.problem {
                        Some(p) if d.mac == "-" => format!("- ({p})"),
                        _ => d.mac,
                    };
                }
            }
        }
        StatusReport {
            services,
            vrrp: self.vrrp.get(),
            dr: self.dr.status(),
            last_reload: last.as_ref().map(|(at, applied, message)| ReloadStatus {
                seconds_ago: (now - *at).as_secs_f64(),
                applied: *applied,
                message: message.clone(),
            }),
            changes: self.events.list(),
        }
    }

    pub fn reloaded(&self, applied: bool, message: String) {
        let to = if applied { "applied" } else { "refused" };
        self.events.record("configuration (reload)".into(), "", to, message.clone());
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), applied, message));
    }
}

/// Serve requests until the task is aborted.
pub(crate) async fn serve(live: Arc<Live>, ul: UnixListener, access: Access) {
    while let Ok((s, _)) = ul.accept().await {
        let live = live.clone();
        tokio::spawn(async move {
            match s.peer_cred() {
                Ok(c) if access.allows(c.uid(), c.gid(), c.pid(), proc_groups) => {
                    one(s, &live).await
                }
                cred => refuse(s, cred.ok()).await,
            }
        });
    }
}

async fn refuse(mut s: UnixStream, cred: Option<tokio::net::unix::UCred>) {
    let who =
        cred.map_or("an unknown peer".to_owned(), |c| format!("uid {} (gid {})", c.uid(), c.gid()));
    tracing::warn!(peer = %who, "control socket: request refused (only root, the director's \
        user or control_socket_group may use it)");
    // Read (and ignore) the request so the peer gets the answer, not a reset.
    let _ = read_request(&mut s).await;
    let error = format!(
        "permission denied for {who}: only root, the director's user or members of [director] \
            control_socket_group may use the control socket"
    );
    send(&mut s, &Reply::Error { error }).await;
}

/// The request line (without its newline), read under a size and time bound.
async fn read_request(s: &mut UnixStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    while !buf.contains(&b'\n') && buf.len() < MAX_REQUEST {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    buf.truncate(buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len()));
    buf
}

async fn send(s: &mut UnixStream, reply: &Reply) {
    let mut out = serde_json::to_vec(reply).expect("replies serialize");
    out.push(b'\n');
    let _ = tokio::time::timeout(READ_TIMEOUT, s.write_all(&out)).await;
}

async fn one(mut s: UnixStream, live: &Live) {
    let line = read_request(&mut s).await;
    let reply = match serde_json::from_slice::<Request>(&line) {
        Err(e) => Reply::Error { error: format!("bad request: {e}") },
        Ok(r) => handle(live, r),
    };
    send(&mut s, &reply).await;
}

/// Answer one request.
pub(crate) fn handle(live: &Live, req: Request) -> Reply {
    let services = &live.services.load();
    match req {
        Request::Status => Reply::Status(Box::new(live.status())),
        Request::Drain { server } => changed(set_weight(services, server, Some(0)), server),
        Request::Enable { server } => changed(set_weight(services, server, None), server),
        Request::Weight { weight, .. } if weight > MAX_WEIGHT => Reply::Error {
            error: format!("weight {weight} is out of range: 0-{MAX_WEIGHT} (as LVS)"),
        },
        Request::Weight { server, weight } => {
            changed(set_weight(services, server, Some(weight)), server)
        }
    }
}

/// Set (or clear) a weight override in every service that has `server`.
pub(crate) fn set_weight(
    services: &[Arc<ServiceRt>],
    server: SocketAddr,
    weight: Option<u32>,
) -> Vec<WeightChange> {
    let mut changes = Vec::new();
    for s in services {
        let before = s.state().real_mut(server).map(|r| (r.effective_weight(), r.weight));
        if let Some((from, configured)) = before
            && s.set_weight(server, weight)
        {
            let to = weight.unwrap_or(configured);
            changes.push(WeightChange {
                service: s.conf().name.clone(),
                server,
                from,
                to,
                configured,
            });
        }
    }
    changes
}

fn changed(changes: Vec<WeightChange>, server: SocketAddr) -> Reply {
    if changes.is_empty() {
        Reply::Error { error: format!("no real server {server} in any service") }
    } else {
        Reply::Changed { changes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_above_the_lvs_bound_are_refused() {
        let server = "10.0.0.1:49".parse().unwrap();
        let r = handle(&Live::default(), Request::Weight { server, weight: 100_000 });
        assert!(matches!(&r, Reply::Error { error } if error.contains("0-65535")), "{r:?}");
        let r = handle(&Live::default(), Request::Weight { server, weight: 65_535 });
        assert!(matches!(&r, Reply::Error { error } if error.contains("no real server")), "{r:?}");
    }
}
