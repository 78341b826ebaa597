//! Health checks: one checker task per real server, feeding
//! [`crate::core::health::Health`] through [`ServiceRt`].
//!
//! A check starts on every tick even while the previous one still waits for
//! its timeout (timeout > interval), so a hung server is out of scheduling
//! within fall × interval + timeout, not fall × timeout; results are applied
//! in the order the checks started.
//!
//! A `tcp` check is a connect (plus a PROXY v2 LOCAL header when the service
//! sends PROXY headers, so the server knows it is the director itself). A
//! `tacacs` check runs one authorization or PAP login through `tacvs-client`
//! on that connection: any well-formed answer means the server is up; a FAIL,
//! an ERROR or an unreadable reply (a wrong key) means up but misconfigured.
//!
//! With `[service.health.tls]` every check (tcp or tacacs) is a full TLS 1.3
//! handshake after the connect (and the PROXY LOCAL header): a server whose
//! certificate the director cannot verify (another CA, expired, revoked, not
//! issued for its name) answers, so it is misconfigured, not up; the tacacs
//! probe then runs over TLS without the key. No resumption: a certificate
//! gone bad is seen at the next check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tacvs_client::{Client, ClientError, ClientOptions, ClientTls, FixedAnswers};
use tacvs_proto::{
    AaaRequest, Argument, AuthenAction, AuthenService, AuthenStart, AuthenStatus, AuthenType,
    AuthorStatus, Key, PrivLvl,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::{CheckKind, Mode, ProxyHeader, Service};
use crate::core::health::{CheckResult, State};
use crate::proxy::proxy_local;
use crate::service::{ServiceRt, state_name};

/// Check `addr` of `svc` until the server leaves the configuration.
pub(crate) async fn health_loop(svc: Arc<ServiceRt>, addr: SocketAddr) {
    let mut interval = svc.conf().health.interval.get();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    let mut running = tokio::task::JoinSet::new();
    // The TLS client configuration, read from its files once per configuration.
    let mut tls: Option<(Arc<Service>, TlsSetup)> = None;
    loop {
        tick.tick().await;
        while running.try_join_next().is_some() {}
        let conf = svc.conf();
        if svc.is_retired() || !conf.reals.iter().any(|r| r.address == addr) {
            return; // removed by a reload
        }
        if conf.health.interval.get() != interval {
            interval = conf.health.interval.get();
            tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        seq += 1;
        if !tls.as_ref().is_some_and(|(c, _)| Arc::ptr_eq(c, &conf)) {
            tls = Some((conf.clone(), TlsSetup::of(&conf, addr)));
        }
        let setup = tls.as_ref().map(|(_, t)| t.clone()).unwrap_or(TlsSetup::Plain);
        let (svc, started) = (svc.clone(), seq);
        // Dropped with the loop (a removed server's checks stop at once).
        running.spawn(async move {
            let t = Instant::now();
            let timeout = conf.health.timeout;
            let result = match tokio::time::timeout(timeout.get(), check(&conf, addr, &setup)).await
            {
                Ok(r) => r,
                Err(_) => CheckResult::Failed { reason: format!("no answer within {timeout}") },
            };
            record(&svc, &conf, addr, started, t.elapsed().as_secs_f64() * 1e3, result);
        });
    }
}

/// Apply one check's result (ignored if a later-started check already reported).
fn record(
    svc: &ServiceRt,
    conf: &Service,
    addr: SocketAddr,
    seq: u64,
    ms: f64,
    result: CheckResult,
) {
    let mut st = svc.state();
    let Some(r) = st.real_mut(addr) else { return };
    if seq <= r.check_seq {
        return;
    }
    r.check_seq = seq;
    r.last_check_ms = Some(ms);
    r.last_result = match &result {
        CheckResult::Ok { .. } => "ok".into(),
        CheckResult::Misconfigured { reason, .. } => format!("misconfigured: {reason}"),
        CheckResult::Failed { reason } => format!("failed: {reason}"),
    };
    let now = Instant::now();
    let (mark_total, mark_at) = r.rate_mark;
    if now - mark_at >= Duration::from_secs(1) {
        r.cps = (r.total - mark_total.min(r.total)) as f64 / (now - mark_at).as_secs_f64();
        r.rate_mark = (r.total, now);
    }
    if let Some(tr) = r.health.observe(result, now) {
        r.publish(conf.on_down);
        let (from, to) = (state_name(tr.from), state_name(tr.to));
        let reason = match tr.to {
            State::Up => "checks pass".to_owned(),
            _ => tr.reason.to_string(),
        };
        svc.events.record(format!("real server {addr} in {}", conf.name), from, to, reason);
        let what = match tr.to {
            State::Down => "real server out of scheduling",
            State::Misconfigured => "real server answers but its checks show a misconfiguration",
            State::Up if tr.from == State::Down => "real server back in scheduling",
            State::Up => "real server checks pass again",
        };
        // A recovery is good news, not a warning.
        if tr.to == State::Up {
            tracing::info!(service = %conf.name, server = %addr, from = %from, to = %to, "{what}");
        } else {
            tracing::warn!(
                service = %conf.name,
                server = %addr,
                from = %from,
                to = %to,
                reason = %tr.reason,
                "{what}"
            );
        }
        metrics::counter!(
            "tacvs_director_state_changes_total",
            "service" => conf.name.clone(),
            "server" => addr.to_string(),
            "to" => to
        )
        .increment(1);
    }
    tracing::debug!(service = %conf.name, server = %addr, result = %r.last_result, ms, "health check");
}

/// How checks of one server reach it.
#[derive(Clone)]
enum TlsSetup {
    Plain,
    Tls(ClientTls),
    /// The director's own TLS files do not load (since the last reload).
    Broken(String),
}

impl TlsSetup {
    fn of(s: &Service, addr: SocketAddr) -> TlsSetup {
        let Some(t) = &s.health.tls else { return TlsSetup::Plain };
        let config = match t.client_config() {
            Ok(c) => c,
            Err((field, e)) => {
                return TlsSetup::Broken(format!("[service.health.tls] {field}: {e}"));
            }
        };
        match tacvs_tls::client::server_name(t.server_name.as_deref(), addr.ip()) {
            Ok(server_name) => TlsSetup::Tls(ClientTls { config, server_name }),
            Err(e) => TlsSetup::Broken(e),
        }
    }
}

/// A failed TLS handshake: a server that answered with a certificate the
/// director refuses (or refused the director's) is misconfigured; one that
/// did not answer in time or closed is down.
fn tls_result(kind: &'static str, reason: String, latency: std::time::Duration) -> CheckResult {
    match kind {
        "timeout" | "closed" | "io" => CheckResult::Failed { reason: format!("TLS: {reason}") },
        _ => CheckResult::Misconfigured { reason: format!("TLS: {reason}"), latency },
    }
}

/// One health check.
async fn check(s: &Service, addr: SocketAddr, tls: &TlsSetup) -> CheckResult {
    let t = Instant::now();
    if let TlsSetup::Broken(reason) = tls {
        return CheckResult::Failed { reason: reason.clone() };
    }
    let mut stream = match TcpStream::connect(addr).await {
        Ok(st) => st,
        Err(e) => return CheckResult::Failed { reason: format!("connect: {e}") },
    };
    // In DR the servers take devices directly, without PROXY headers.
    if s.mode == Mode::Proxy
        && s.proxy_protocol != ProxyHeader::None
        && let Err(e) = stream.write_all(&proxy_local()).await
    {
        return CheckResult::Failed { reason: format!("write: {e}") };
    }
    let h = &s.health;
    let key = h.key.as_ref().map(|k| Key::new(k.expose().as_bytes()));
    let opts = ClientOptions { timeout: h.timeout.get(), ..ClientOptions::new(addr, key) };
    if let TlsSetup::Tls(tls) = tls {
        if s.health.check == CheckKind::Tcp {
            // The handshake alone.
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            return match connector.connect(tls.server_name.clone(), stream).await {
                Ok(_) => CheckResult::Ok { latency: t.elapsed() },
                Err(e) => {
                    let (kind, reason) = tacvs_tls::failure(&e);
                    tls_result(kind, reason, t.elapsed())
                }
            };
        }
        return probe(s, Client::with_stream(opts, stream).with_tls(tls.clone()), t).await;
    }
    if s.health.check == CheckKind::Tcp {
        return CheckResult::Ok { latency: t.elapsed() };
    }
    probe(s, Client::with_stream(opts, stream), t).await
}

/// The TACACS+ probe on a client set up for the server.
async fn probe(s: &Service, mut client: Client, t: Instant) -> CheckResult {
    let h = &s.health;
    let answer = match h.probe {
        crate::config::Probe::Authorize => client
            .authorize(AaaRequest::new(
                h.user.clone(),
                vec![Argument::new("service", "shell", true).expect("static")],
            ))
            .await
            .map(|r| match r.status {
                AuthorStatus::PassAdd | AuthorStatus::PassRepl => None,
                other => Some(format!("probe user {:?} got {other}", h.user)),
            }),
        crate::config::Probe::Authenticate => {
            let password = h.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default();
            let start = AuthenStart {
                action: AuthenAction::Login,
                priv_lvl: PrivLvl::USER,
                authen_type: AuthenType::Pap,
                authen_service: AuthenService::Login,
                user: Bytes::from(h.user.clone()),
                port: Bytes::from_static(b"tacvs-director"),
                rem_addr: Bytes::new(),
                data: Bytes::from(password),
            };
            // PAP takes no prompts: a server that asks is answered with an abort.
            let mut none =
                FixedAnswers { user: String::new(), password: String::new(), max_rounds: 0 };
            client.authenticate(start, &mut none).await.map(|r| match r.status {
                AuthenStatus::Pass => None,
                other => Some(format!("probe login {:?} got {other}", h.user)),
            })
        }
    };
    let latency = t.elapsed();
    match answer {
        Ok(None) => CheckResult::Ok { latency },
        Ok(Some(reason)) => CheckResult::Misconfigured { reason, latency },
        // A reply that could not be read: most often a wrong key.
        Err(ClientError::Session(e)) => {
            CheckResult::Misconfigured { reason: e.to_string(), latency }
        }
        Err(ClientError::Closed { .. }) => {
            CheckResult::Failed { reason: "closed without a reply".into() }
        }
        Err(ClientError::Io { source, .. }) => CheckResult::Failed { reason: format!("{source}") },
        Err(ClientError::Tls { kind, reason, .. }) => tls_result(kind, reason, latency),
        Err(e) => CheckResult::Failed { reason: format!("probe: {e}") },
    }
}
