//! TACACS+ over TLS 1.3 (RFC 9887) on a listener with a `[server.listen.tls]`
//! section: admission, the handshake, the device's identity, then the same
//! connection driver as plain TACACS+ (`conn::run`) over the TLS stream, with
//! the protocol machine in TLS mode (no obfuscation, RFC 9887 §4).
//!
//! Order, each step counted before the next costs anything:
//! 1. PROXY header (done by the caller: header first, then TLS bytes);
//! 2. with `identity = "address"`, the device group from the address, so an
//!    unknown device costs no handshake;
//! 3. the per-source connection slot (`max_connections_per_source`);
//! 4. a handshake slot, in total and per device address
//!    (`max_handshakes`, `max_handshakes_per_source`): a slow-handshake
//!    attacker holds at most those, each for at most `handshake_timeout`;
//! 5. the first bytes must be a TLS ClientHello (plain TACACS+ is refused
//!    with a log line saying so, never served: no auto-detection);
//! 6. the handshake, bounded by `handshake_timeout` from the connection;
//! 7. the identity from the certificate, and the device group it names.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tacvs_policy::Policy;
use tacvs_policy::config::IdentityMode;
use tacvs_policy::policy::ListenerTls;
use tacvs_tls::identity::PeerIdentity;
use tokio::io::AsyncReadExt;
use tracing::Instrument;

use crate::Shared;
use crate::conn::{Peer, SourceSlot};
use crate::journal::TlsPeer;
use crate::logfmt::Esc;
use crate::socket::Socket;

mod stream;

/// What a TLS connection authenticated with.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The device's certificate (None without one: `client_certificate`
    /// optional or none).
    pub identity: Option<PeerIdentity>,
    /// The session was resumed from a ticket.
    pub resumed: bool,
}

impl Authenticated {
    /// The journal's `tls` field (empty strings when no certificate was sent).
    pub(crate) fn journal(&self) -> TlsPeer<'static> {
        let id = self.identity.as_ref();
        TlsPeer {
            subject: id.map(|i| i.subject.clone()).unwrap_or_default().into(),
            san: id.map(|i| i.san()).unwrap_or_default().into(),
            sha256: id.map(|i| i.sha256.clone()).unwrap_or_default().into(),
            resumed: self.resumed,
        }
    }
}

/// Handshakes in progress, over all TLS listeners: in total and per address.
#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    total: std::sync::atomic::AtomicUsize,
    per_source: Mutex<HashMap<IpAddr, usize>>,
}

impl Handshakes {
    /// In progress now.
    pub(crate) fn in_progress(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

/// One handshake in progress, released on drop.
struct HandshakeSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl HandshakeSlot {
    fn take(
        shared: &Arc<Shared>,
        ip: IpAddr,
        t: &ListenerTls,
    ) -> Result<HandshakeSlot, &'static str> {
        let h = &shared.handshakes;
        if h.total.fetch_add(1, Ordering::AcqRel) >= t.max_handshakes {
            h.total.fetch_sub(1, Ordering::AcqRel);
            return Err("max_handshakes");
        }
        let mut m = h.per_source.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= t.max_handshakes_per_source {
            if *n == 0 {
                m.remove(&ip);
            }
            h.total.fetch_sub(1, Ordering::AcqRel);
            return Err("max_handshakes_per_source");
        }
        *n += 1;
        metrics::gauge!("tacvs_tls_handshakes_in_progress").increment(1.0);
        Ok(HandshakeSlot { shared: shared.clone(), ip })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let h = &self.shared.handshakes;
        let mut m = h.per_source.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
        h.total.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("tacvs_tls_handshakes_in_progress").decrement(1.0);
    }
}

fn refuse(device: SocketAddr, reason: &'static str, why: &str) {
    tracing::warn!(%device, reason = why, "TLS connection refused");
    metrics::counter!("tacvs_rejects_total", "reason" => reason).increment(1);
}

/// Serve one connection of a TLS listener (after its PROXY header, if any:
/// the bytes read with it are in `buf`).
pub(crate) async fn serve(
    shared: &Arc<Shared>,
    mut stream: Socket,
    mut buf: BytesMut,
    crate::conn::Arrival { device, probe }: crate::conn::Arrival,
    tls: &Arc<ListenerTls>,
    policy: Arc<Policy>,
    accepted: tokio::time::Instant,
) {
    let deadline = accepted + tls.handshake_timeout;
    let by_address = match tls.identity {
        IdentityMode::Address => match policy.device_group(device.ip()) {
            Some((dg, _)) => Some(dg),
            None => {
                tracing::warn!(%device, "connection refused: the device's address is in no device_group");
                metrics::counter!("tacvs_rejects_total", "reason" => "unknown_device").increment(1);
                return;
            }
        },
        _ => None,
    };
    let Some(_source) = SourceSlot::admit(shared, device, &policy) else { return };
    let slot = match HandshakeSlot::take(shared, device.ip(), tls) {
        Ok(s) => s,
        Err(which) => {
            let max = if which == "max_handshakes" {
                tls.max_handshakes
            } else {
                tls.max_handshakes_per_source
            };
            tracing::warn!(%device, max, "TLS connection refused: {which} handshakes already in progress");
            metrics::counter!("tacvs_rejects_total", "reason" => which).increment(1);
            return;
        }
    };
    if buf.is_empty() {
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return, // closed before a byte: nothing to say
            Err(_) => {
                timed_out(device, tls.handshake_timeout);
                return;
            }
        }
    }
    if !tacvs_tls::looks_like_tls(&buf) {
        if buf[0] >> 4 == 0xc {
            refuse(
                device,
                "plain_on_tls",
                "the device sent plain TACACS+ to a TLS listener: configure it for TACACS+ \
                    over TLS, or send it to a plain listener",
            );
        } else {
            let first = &buf[..buf.len().min(8)];
            tracing::warn!(%device, first_bytes = %Esc(first), "TLS connection refused: the \
                first bytes are not a TLS ClientHello");
            metrics::counter!("tacvs_rejects_total", "reason" => "not_tls").increment(1);
        }
        return;
    }
    let started = std::time::Instant::now();
    let mut stream = match stream::TlsStream::new(tls.config.clone(), stream, buf.to_vec()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%device, reason = %e, "TLS connection refused: no connection could be made");
            return;
        }
    };
    let result = tokio::time::timeout_at(deadline, stream.handshake()).await;
    drop(slot);
    match result {
        Err(_) => return timed_out(device, tls.handshake_timeout),
        Ok(Err(e)) => {
            let (kind, why) = tacvs_tls::failure(&e);
            tracing::warn!(%device, reason = %Esc(why.as_bytes()), "TLS handshake failed; closing");
            metrics::counter!("tacvs_tls_handshakes_total", "result" => "failed").increment(1);
            metrics::counter!("tacvs_rejects_total", "reason" => "tls_handshake").increment(1);
            metrics::counter!("tacvs_tls_handshake_failures_total", "reason" => kind).increment(1);
            return;
        }
        Ok(Ok(())) => {}
    }
    let conn = stream.tls();
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let identity =
        conn.peer_certificates().and_then(|c| c.first()).and_then(|c| PeerIdentity::from_der(c));
    metrics::counter!("tacvs_tls_handshakes_total", "result" => if resumed { "resumed" } else { "full" }).increment(1);
    metrics::histogram!("tacvs_tls_handshake_seconds").record(started.elapsed().as_secs_f64());
    let found = match tls.identity {
        IdentityMode::Address => by_address.map(|dg| (device, dg)),
        IdentityMode::SanIp => identity
            .as_ref()
            .and_then(|id| policy.device_group_by_ips(&id.ips))
            .map(|(ip, dg, _)| (SocketAddr::new(ip, device.port()), dg)),
        IdentityMode::SanDns => identity
            .as_ref()
            .and_then(|id| policy.device_group_by_dns(&id.dns))
            .map(|(dg, _)| (device, dg)),
    };
    let Some((device_id, dg)) = found else {
        let names = identity.as_ref().map(|i| i.san()).unwrap_or_default();
        tracing::warn!(%device, identity = %tls.identity, san = %Esc(names.as_bytes()), "TLS \
            connection refused: the certificate's names place it in no device group (add its \
            address to a group's prefixes, or its name to a group's tls.names)");
        metrics::counter!("tacvs_rejects_total", "reason" => "unknown_certificate_identity")
            .increment(1);
        return;
    };
    let (subject, san, sha256) = match &identity {
        Some(i) => (i.subject.clone(), i.san(), i.sha256.clone()),
        None => (String::new(), String::new(), String::new()),
    };
    let span = tracing::info_span!(
        "tls",
        subject = %Esc(subject.as_bytes()),
        san = %Esc(san.as_bytes()),
        sha256 = %sha256,
    );
    span.in_scope(|| {
        tracing::debug!(
            device = %device_id,
            source = %device,
            resumed,
            device_group = %policy.device_groups[dg].name,
            "TLS session established"
        );
    });
    let peer = Peer {
        device: device_id,
        dg,
        tls: Some(Arc::new(Authenticated { identity, resumed })),
        probe,
    };
    crate::conn::run(shared, stream, peer, policy, BytesMut::new(), accepted)
        .instrument(span)
        .await;
}

fn timed_out(device: SocketAddr, after: Duration) {
    tracing::warn!(%device, timeout = %humantime::format_duration(after), "TLS handshake did \
        not complete within handshake_timeout; closing");
    metrics::counter!("tacvs_timeouts_total", "kind" => "handshake").increment(1);
}
