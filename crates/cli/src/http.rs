//! The metrics address of `tacvs server` and `tacvs director`: `GET /metrics`
//! (Prometheus text) and `GET /` (the status page, HTML). hyper's HTTP/1
//! server, with bounds a scraper or a browser never reaches: 16 KiB of request
//! head read within 5 s, 30 s per connection, one request per connection, 32
//! connections at once (more are closed at accept).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const MAX_CONNECTIONS: usize = 32;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD: usize = 16 * 1024;

/// Renders the status page.
pub type Page = Box<dyn Fn() -> String + Send + Sync>;

/// What the address serves.
pub struct Site {
    metrics: PrometheusHandle,
    page: OnceLock<Page>,
}

impl Site {
    /// Serve `page` at `/` from now on (before: 503, starting).
    pub fn set_page(&self, page: Page) {
        let _ = self.page.set(page);
    }
}

/// Install the Prometheus recorder and serve on `addr` (bound before this
/// returns, so a bad address fails the start). Returns the bound address.
pub async fn serve(addr: SocketAddr, buckets: &[f64]) -> anyhow::Result<(Arc<Site>, SocketAddr)> {
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("cannot serve metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    let metrics = PrometheusBuilder::new()
        .set_buckets(buckets)
        .context("metrics buckets")?
        .install_recorder()
        .context("metrics recorder")?;
    let site = Arc::new(Site { metrics, page: OnceLock::new() });
    let upkeep = site.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(5));
        loop {
            t.tick().await;
            upkeep.metrics.run_upkeep();
        }
    });
    let s = site.clone();
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
            let site = s.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let svc = service_fn(move |req| {
                    let site = site.clone();
                    async move { Ok::<_, Infallible>(answer(&site, &req)) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .max_buf_size(MAX_HEAD)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            });
        }
    });
    Ok((site, bound))
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    // The page has no script; say so to the browser too.
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}

fn answer<B>(site: &Site, req: &Request<B>) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET or HEAD only\n".into());
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", site.metrics.render())
        }
        "/" | "/status" => match site.page.get() {
            Some(page) => reply(StatusCode::OK, "text/html; charset=utf-8", page()),
            None => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "starting\n".into()),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: / is the status page, /metrics the Prometheus metrics\n".into(),
        ),
    }
}
