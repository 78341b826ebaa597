//! The accounting journal: JSON Lines files, one record a line, appended and
//! fsync'd *before* the SUCCESS reply goes out (RFC 8907 §7.3 lets the server say
//! SUCCESS only once the record is kept).
//!
//! One writer thread owns the file. Requests queue a record and a oneshot; the
//! writer takes everything queued, writes it in one `write`, calls `fdatasync`
//! once, then acknowledges the whole batch: group commit, so a thousand
//! concurrent accounting requests cost one fsync, not a thousand. The
//! acknowledgements go out from one task spawned on the runtime that opened
//! the journal: one cross-thread wake-up per batch (an `eventfd` write on a
//! single-threaded runtime) instead of one per record.
//!
//! The writer thread runs under `SCHED_BATCH` (`yield_to_requests`, below):
//! when a sync completes it does not preempt the thread answering requests,
//! so on a busy core records gather while that thread works, and each fsync
//! then covers more of them; its share of the CPU is unchanged.
//!
//! Files are `acct-YYYYMMDDTHHMMSSZ.jsonl` in the journal directory, rotated by
//! size and age. At start-up a torn last line (a crash mid-write) is cut off and
//! logged; a record is either whole or absent, never half-kept.
//!
//! Before each batch the writer checks that its file is still the one in the
//! directory (not deleted: link count above zero; not replaced: same device and
//! inode at its path). If it is not, it logs that and starts a new file, so
//! records are never acknowledged into a file nobody can read.
//!
//! **Authorization log** (`[accounting] authorization_log`): every
//! authorization decision as an [`AuthzRecord`], in files of its own
//! (`authz-…jsonl`, beside the accounting files, which readers of
//! [`read_records`] never see), by [`AuthzLog`]: the connection writes the
//! line into a shared buffer (hand-written JSON, no queue, no wake-up); a
//! thread takes the buffer every 20 ms and writes it (no fsync: a log, not an
//! acknowledged record; the server writes what is left when it stops). When
//! 16 MiB are waiting (the disk is not keeping up), new records are dropped
//! and counted (`tacvs_authz_log_dropped_total`) rather than held without
//! bound.
//! `tacvs policy diff --replay DIR` replays them against two configurations.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// Why a record was not stored.
#[derive(Debug, Clone, Error)]
pub enum JournalError {
    /// Writing or syncing failed; the record is not on disk.
    #[error("journal write failed in {dir}: {msg}")]
    Io {
        /// Journal directory.
        dir: String,
        /// The OS error.
        msg: String,
    },
    /// The journal has stopped.
    #[error("the journal is shut down")]
    Closed,
}

/// Journal settings.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Directory of the files.
    pub dir: PathBuf,
    /// Rotate past this many bytes.
    pub rotate_size: u64,
    /// Rotate after this long.
    pub rotate_interval: Duration,
    /// File name prefix: [`ACCT`] or [`AUTHZ`].
    pub prefix: &'static str,
    /// `fdatasync` each batch before acknowledging it.
    pub sync: bool,
}

/// Accounting files' prefix.
pub const ACCT: &str = "acct-";
/// Authorization log files' prefix.
pub const AUTHZ: &str = "authz-";

struct Pending {
    line: Vec<u8>,
    ack: oneshot::Sender<Result<(), JournalError>>,
}

/// Cheap handle to the writer thread.
#[derive(Clone, Debug)]
pub struct Journal {
    tx: mpsc::UnboundedSender<Pending>,
    stats: Arc<JournalStats>,
}

/// What the writer thread publishes about itself, for the status page.
#[derive(Debug, Default)]
pub struct JournalStats {
    file: Mutex<PathBuf>,
    size: AtomicU64,
    last_fsync_ns: AtomicU64,
    records: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<String>,
}

/// A copy of [`JournalStats`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalView {
    /// The file appended to now.
    pub file: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// How long the last batch's write and fsync took, in nanoseconds.
    pub last_fsync_ns: u64,
    /// Records made durable since start.
    pub records: u64,
    /// Failed batches since start.
    pub errors: u64,
    /// The last failure, if any.
    pub last_error: String,
}

impl JournalStats {
    /// A copy now.
    pub fn view(&self) -> JournalView {
        JournalView {
            file: self.file.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            size: self.size.load(Ordering::Relaxed),
            last_fsync_ns: self.last_fsync_ns.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// Lines just made durable, for sinks that forward them (syslog).
pub type CommittedTx = mpsc::Sender<Vec<u8>>;

/// What start-up found.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// The file appended to.
    pub file: PathBuf,
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes_cut: u64,
}

impl Journal {
    /// Open (or create) the journal and start its writer thread. `committed`
    /// receives every line once it is on disk (dropped, with a counter, when full).
    pub fn open(
        cfg: JournalConfig,
        committed: Option<CommittedTx>,
    ) -> io::Result<(Journal, Recovery, std::thread::JoinHandle<()>)> {
        fs::create_dir_all(&cfg.dir)?;
        let (file, path, size, recovery) = open_latest(&cfg.dir, cfg.prefix)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(JournalStats::default());
        let runtime = tokio::runtime::Handle::try_current().ok();
        *stats.file.lock().unwrap_or_else(|e| e.into_inner()) = path.clone();
        stats.size.store(size, Ordering::Relaxed);
        let writer = Writer {
            cfg,
            file,
            path,
            size,
            opened: Instant::now(),
            committed,
            stats: stats.clone(),
            runtime,
        };
        let handle = std::thread::Builder::new()
            .name("tacvs-journal".into())
            .spawn(move || writer.run(rx))?;
        Ok((Journal { tx, stats }, recovery, handle))
    }

    /// The writer's file, size, last fsync and errors.
    pub fn stats(&self) -> JournalView {
        self.stats.view()
    }

    /// Append one record (a JSON object without the newline). Resolves once it is
    /// on disk, or with the reason it is not.
    pub async fn append(&self, mut line: Vec<u8>) -> Result<(), JournalError> {
        line.push(b'\n');
        let (ack, rx) = oneshot::channel();
        self.tx.send(Pending { line, ack }).map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }
}

/// One accounting record as the journal keeps it (one JSON object a line):
/// what the server writes and what every reader (the lab, the demo, tests,
/// tools) reads back. Strings borrow while writing and own once read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AcctRecord<'a> {
    /// When the server received it (RFC 3339, milliseconds, UTC).
    pub time: Cow<'a, str>,
    /// The server's name (`[server] name`).
    pub server: Cow<'a, str>,
    /// The device's address (after PROXY intake).
    pub device: Cow<'a, str>,
    /// The device's source port.
    pub device_port: u16,
    /// The device group it belongs to.
    pub device_group: Cow<'a, str>,
    /// The TACACS+ session id.
    pub session_id: u32,
    /// start, stop, watchdog or watchdog-update (RFC 8907 §7.1 flags).
    pub record: Cow<'a, str>,
    /// The user field as sent.
    pub user: Cow<'a, str>,
    /// The port field.
    pub port: Cow<'a, str>,
    /// The rem_addr field.
    pub rem_addr: Cow<'a, str>,
    /// The priv_lvl field.
    pub priv_lvl: u8,
    /// authen_method (RFC 8907 §6.1 names).
    pub authen_method: Cow<'a, str>,
    /// authen_type.
    pub authen_type: Cow<'a, str>,
    /// authen_service.
    pub authen_service: Cow<'a, str>,
    /// Every AV, in order, as `name=value` / `name*value`.
    pub args: Vec<String>,
    /// The certificate the device authenticated with over TLS (RFC 9887);
    /// absent for plain TACACS+ (and in records written before TLS existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPeer<'a>>,
}

/// The TLS identity of a journal record's device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsPeer<'a> {
    /// The certificate's subject (RFC 4514).
    pub subject: Cow<'a, str>,
    /// Its subjectAltName entries, `IP:…,DNS:…`.
    pub san: Cow<'a, str>,
    /// SHA-256 of the certificate, lower-case hex.
    pub sha256: Cow<'a, str>,
    /// Whether the session was resumed from a ticket.
    pub resumed: bool,
}

/// Every record in the journal directory, oldest first.
pub fn read_records(dir: &Path) -> io::Result<Vec<AcctRecord<'static>>> {
    read_lines(dir)?
        .iter()
        .map(|l| serde_json::from_str(l).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)))
        .collect()
}

/// One authorization decision as the authorization log keeps it: the
/// request (what a replay needs), the answer, and where the user's groups
/// came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthzRecord<'a> {
    /// When the server answered (RFC 3339, milliseconds, UTC).
    pub time: Cow<'a, str>,
    /// The server's name.
    pub server: Cow<'a, str>,
    /// The device's address (after PROXY intake).
    pub device: Cow<'a, str>,
    /// Its device group.
    pub device_group: Cow<'a, str>,
    /// The user field as sent.
    pub user: Cow<'a, str>,
    /// The port field.
    pub port: Cow<'a, str>,
    /// The priv_lvl field.
    pub priv_lvl: u8,
    /// Every AV of the request, in order (`name=value` / `name*value`).
    pub args: Vec<String>,
    /// The answer: `pass_add`, `pass_repl`, `fail`, `error` (RFC 8907 §6.2).
    pub status: Cow<'a, str>,
    /// Why (the rule or fact that decided).
    pub reason: Cow<'a, str>,
    /// The directory the user's groups came from (empty: the file).
    #[serde(default)]
    pub directory: Cow<'a, str>,
    /// The user's directory groups (DNs) at the time, for replays.
    #[serde(default)]
    pub ldap_groups: Vec<String>,
}

/// One decision, as the connection hands it to [`AuthzLog::record`]:
/// borrowed; the line is written into the log's buffer at once.
#[derive(Debug, Clone, Copy)]
pub struct AuthzEvent<'a> {
    /// When it was answered.
    pub at: SystemTime,
    /// The device.
    pub device: std::net::IpAddr,
    /// Its device group.
    pub device_group: &'a str,
    /// The request.
    pub request: &'a tacvs_proto::AaaRequest,
    /// The answer.
    pub status: tacvs_proto::AuthorStatus,
    /// Why.
    pub reason: &'a str,
    /// The directory account whose groups decided, if any.
    pub account: Option<&'a crate::accounts::Account>,
}

/// The authorization log: the connection writes each decision's line into
/// a shared buffer (a short lock: no queue, no wake-up, and the request is
/// freed where it was decoded); a thread takes the buffer every
/// [`AUTHZ_TICK`] and writes it in one `write` (no fsync).
#[derive(Debug, Clone)]
pub struct AuthzLog {
    shared: Arc<AuthzShared>,
    /// The thread stops once every handle is gone (after a last write).
    _alive: Arc<()>,
}

#[derive(Debug)]
struct AuthzShared {
    server: String,
    /// Recorded lines waiting for the writer.
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is written (the thread, or [`AuthzLog::flush`]).
    writer: Mutex<AuthzWriter>,
}

struct AuthzWriter {
    w: Writer,
    /// The buffer swapped in for the next batch (its capacity kept).
    spare: Vec<u8>,
}

impl std::fmt::Debug for AuthzWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzWriter").field("file", &self.w.path).finish()
    }
}

/// How often the authorization log's thread writes what was recorded.
pub const AUTHZ_TICK: Duration = Duration::from_millis(20);

impl AuthzLog {
    /// Open (or continue) the `authz-*.jsonl` files in `cfg.dir`.
    pub fn open(
        cfg: JournalConfig,
        server: String,
    ) -> io::Result<(AuthzLog, std::thread::JoinHandle<()>)> {
        let cfg = JournalConfig { prefix: AUTHZ, sync: false, ..cfg };
        fs::create_dir_all(&cfg.dir)?;
        let (file, path, size, _) = open_latest(&cfg.dir, AUTHZ)?;
        let w = Writer {
            cfg,
            file,
            path,
            size,
            opened: Instant::now(),
            committed: None,
            stats: Arc::default(),
            runtime: None,
        };
        let shared = Arc::new(AuthzShared {
            server,
            pending: Mutex::new(Vec::new()),
            writer: Mutex::new(AuthzWriter { w, spare: Vec::new() }),
        });
        let alive = Arc::new(());
        let (s, weak) = (shared.clone(), Arc::downgrade(&alive));
        let handle =
            std::thread::Builder::new().name("tacvs-authz-log".into()).spawn(move || {
                loop {
                    std::thread::sleep(AUTHZ_TICK);
                    // Looked at before the write, so what the last handle recorded
                    // is in it.
                    let gone = weak.strong_count() == 0;
                    s.write_pending();
                    if gone {
                        return;
                    }
                }
            })?;
        Ok((AuthzLog { shared, _alive: alive }, handle))
    }

    /// Record one decision; dropped (and counted) when
    /// 16 MiB of lines are waiting for the writer already.
    pub fn record(&self, e: &AuthzEvent<'_>) {
        let mut p = self.shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() >= AUTHZ_BACKLOG_BYTES {
            drop(p);
            metrics::counter!("tacvs_authz_log_dropped_total").increment(1);
            return;
        }
        with_time(e.at, |time| write_authz(&mut p, e, &self.shared.server, time));
    }

    /// Write what is recorded now (at shutdown: nothing is left behind).
    pub fn flush(&self) {
        self.shared.write_pending();
    }
}

/// Bytes of recorded lines waiting for the writer at most (≈ 64,000
/// records): beyond it, the disk is not keeping up and new records are
/// dropped and counted rather than held without bound.
const AUTHZ_BACKLOG_BYTES: usize = 16 << 20;

impl AuthzShared {
    fn write_pending(&self) {
        let mut wr = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let AuthzWriter { w, spare } = &mut *wr;
        spare.clear();
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *p, spare);
        }
        if spare.is_empty() {
            return;
        }
        if let Err(e) = w.write_batch(spare, Instant::now()) {
            let records = spare.iter().filter(|&&b| b == b'\n').count();
            metrics::counter!("tacvs_authz_log_errors_total").increment(1);
            tracing::error!(file = %w.path.display(), error = %e, records, "authorization log \
                write failed; these records are lost");
        }
        // A burst's buffer is not kept for ever.
        if spare.capacity() > 4 << 20 {
            *spare = Vec::new();
        }
    }
}

/// RFC 3339 time text with milliseconds, formatted once per millisecond.
#[derive(Debug, Default)]
struct Stamp {
    millis: Option<u128>,
    text: String,
}

impl Stamp {
    fn of(&mut self, at: SystemTime) -> &str {
        let millis = at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).ok();
        if millis.is_none() || millis != self.millis {
            self.millis = millis;
            self.text = humantime::format_rfc3339_millis(at).to_string();
        }
        &self.text
    }
}

thread_local! {
    static STAMP: std::cell::RefCell<Stamp> = std::cell::RefCell::default();
}

/// Call `f` with `at` as RFC 3339 text with milliseconds, formatted once per
/// millisecond on each thread (a record per request would otherwise format
/// the same time again and again).
pub fn with_time<R>(at: SystemTime, f: impl FnOnce(&str) -> R) -> R {
    STAMP.with(|s| f(s.borrow_mut().of(at)))
}

/// The record of an event; `time` is `e.at` as RFC 3339 text with milliseconds.
pub fn authz_record<'a>(e: &AuthzEvent<'a>, server: &'a str, time: &'a str) -> AuthzRecord<'a> {
    let r = e.request;
    AuthzRecord {
        time: time.into(),
        server: server.into(),
        device: e.device.to_string().into(),
        device_group: e.device_group.into(),
        user: String::from_utf8_lossy(&r.user),
        port: String::from_utf8_lossy(&r.port),
        priv_lvl: r.priv_lvl.get(),
        args: r.args.iter().map(|a| a.to_string()).collect(),
        status: e.status.as_str().into(),
        reason: e.reason.into(),
        directory: e.account.map(|a| a.directory_name.as_str()).unwrap_or_default().into(),
        ldap_groups: e.account.map(|a| a.ldap_groups.clone()).unwrap_or_default(),
    }
}

/// The record of an event as its JSON line, newline included, appended to
/// `out`: the bytes `to_line(&authz_record(e, server, time))` makes, written
/// without building the record (crate::jsonline).
pub fn write_authz(out: &mut Vec<u8>, e: &AuthzEvent<'_>, server: &str, time: &str) {
    let r = e.request;
    let account = e.account;
    let mut o = crate::jsonline::Obj::new(out);
    o.str("time", time)
        .str("server", server)
        .ip("device", e.device)
        .str("device_group", e.device_group)
        .bytes("user", &r.user)
        .bytes("port", &r.port)
        .uint("priv_lvl", r.priv_lvl.get().into())
        .list("args", r.args.iter().map(|a| a.as_bytes()))
        .str("status", e.status.as_str())
        .str("reason", e.reason)
        .str("directory", account.map(|a| a.directory_name.as_str()).unwrap_or_default())
        .list(
            "ldap_groups",
            account.iter().flat_map(|a| a.ldap_groups.iter().map(|g| g.as_bytes())),
        );
    o.end();
    out.push(b'\n');
}

/// What an accounting record is made of, borrowed from the request and
/// its connection.
#[derive(Debug, Clone, Copy)]
pub struct AcctSource<'a> {
    /// When the server received it (RFC 3339, milliseconds, UTC).
    pub time: &'a str,
    /// The server's name.
    pub server: &'a str,
    /// The device's address and source port.
    pub device: std::net::SocketAddr,
    /// Its device group.
    pub device_group: &'a str,
    /// The TACACS+ session id.
    pub session_id: u32,
    /// The record's kind (RFC 8907 §7.1 flags).
    pub flags: tacvs_proto::AcctFlags,
    /// The request.
    pub request: &'a tacvs_proto::AaaRequest,
    /// The device's certificate, over TLS.
    pub tls: Option<&'a TlsPeer<'a>>,
}

impl AcctSource<'_> {
    /// The typed record (what readers get back from the line).
    pub fn record(&self) -> AcctRecord<'_> {
        let q = self.request;
        AcctRecord {
            time: self.time.into(),
            server: self.server.into(),
            device: self.device.ip().to_string().into(),
            device_port: self.device.port(),
            device_group: self.device_group.into(),
            session_id: self.session_id,
            record: self.flags.as_str().into(),
            user: String::from_utf8_lossy(&q.user),
            port: String::from_utf8_lossy(&q.port),
            rem_addr: String::from_utf8_lossy(&q.rem_addr),
            priv_lvl: q.priv_lvl.get(),
            authen_method: q.authen_method.as_str().into(),
            authen_type: q.authen_type.as_str().into(),
            authen_service: q.authen_service.as_str().into(),
            args: q.args.iter().map(|a| a.to_string()).collect(),
            tls: self.tls.cloned(),
        }
    }

    /// The record as its JSON line (without the newline): the bytes
    /// `to_line(&self.record())` makes, written without building it.
    pub fn line(&self) -> Vec<u8> {
        let q = self.request;
        let mut out = Vec::with_capacity(384);
        let mut o = crate::jsonline::Obj::new(&mut out);
        o.str("time", self.time)
            .str("server", self.server)
            .ip("device", self.device.ip())
            .uint("device_port", self.device.port().into())
            .str("device_group", self.device_group)
            .uint("session_id", self.session_id.into())
            .str("record", self.flags.as_str())
            .bytes("user", &q.user)
            .bytes("port", &q.port)
            .bytes("rem_addr", &q.rem_addr)
            .uint("priv_lvl", q.priv_lvl.get().into())
            .str("authen_method", q.authen_method.as_str())
            .str("authen_type", q.authen_type.as_str())
            .str("authen_service", q.authen_service.as_str())
            .list("args", q.args.iter().map(|a| a.as_bytes()));
        if let Some(t) = self.tls {
            o.obj("tls")
                .str("subject", &t.subject)
                .str("san", &t.san)
                .str("sha256", &t.sha256)
                .bool("resumed", t.resumed)
                .end();
        }
        o.end();
        out
    }
}

/// Every authorization record in `dir`, oldest first. A line that does not
/// parse is an error naming its file and line.
pub fn read_authz_records(dir: &Path) -> io::Result<Vec<AuthzRecord<'static>>> {
    let mut out = Vec::new();
    for f in files_with_prefix(dir, AUTHZ)? {
        for (n, l) in fs::read_to_string(&f)?.lines().enumerate() {
            let r = serde_json::from_str(l).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: not an authorization record: {e}", f.display(), n + 1),
                )
            })?;
            out.push(r);
        }
    }
    Ok(out)
}

/// One record as a JSON line (without the newline). Beyond what JSON requires,
/// DEL, C1 controls, the Unicode line and paragraph separators and the
/// bidirectional controls are written as `\uXXXX` escapes (the same characters
/// [`crate::logfmt::is_unsafe`] names), so the line stays one line in every
/// tool that reads it, syslog collectors included. The value is unchanged for a
/// JSON parser.
pub fn to_line<T: serde::Serialize>(record: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_line(&mut out, record);
    out
}

/// [`to_line`], appended to `out`.
fn write_line<T: serde::Serialize>(out: &mut Vec<u8>, record: &T) {
    let start = out.len();
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, SafeJson);
    // Serializing plain structs of strings and numbers cannot fail.
    if record.serialize(&mut ser).is_err() {
        out.truncate(start);
    }
}

struct SafeJson;

impl serde_json::ser::Formatter for SafeJson {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        frag: &str,
    ) -> io::Result<()> {
        // The common fragment is printable ASCII: no character to look at.
        if frag.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return w.write_all(frag.as_bytes());
        }
        let mut start = 0;
        for (i, c) in frag.char_indices() {
            if crate::logfmt::is_unsafe(c) {
                w.write_all(&frag.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&frag.as_bytes()[start..])
    }
}

/// Put the calling thread under `SCHED_BATCH` (sched(7)): the same share of
/// the CPU as any other thread, but its wake-ups do not preempt the thread
/// that is running. For the journal's writer that is the point: an `fdatasync`
/// wakes it up several times (on ext4 without a journal three: data, inode,
/// cache flush), and on a core it shares with the runtime each wake-up used
/// to cut into the request being answered. Now it continues when the runtime waits for input or its time
/// slice ends, and the records that arrived meanwhile go into the next batch.
/// Measured on one core under 64 single-connect connections of authorization
/// plus accounting (docs/benchmarks.md, issue 13, fifth round): 30 records per
/// fsync instead of 20, the journal thread's CPU per record down a third, the
/// server's CPU per request down 10 %, and accounting answered sooner, not
/// later.
fn yield_to_requests() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` reads `param` (a valid, initialised struct
    // that outlives the call); pid 0 is the calling thread.
    #[allow(unsafe_code)]
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `acct-20261125T221000Z-000.jsonl`: names sort in creation order; the counter
/// separates files created within one second.
fn file_name(prefix: &str, t: SystemTime, n: u32) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    let compact: String = s.chars().filter(|c| c.is_ascii_digit() || *c == 'T').collect();
    format!("{prefix}{compact}Z-{n:03}.jsonl")
}

/// Journal files in `dir`, oldest first.
pub fn journal_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    files_with_prefix(dir, ACCT)
}

fn files_with_prefix(dir: &Path, prefix: &str) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Every record in the journal directory, oldest first, one JSON object per
/// line (without the newline). For tools and tests that read what was kept.
pub fn read_lines(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in journal_files(dir)? {
        out.extend(fs::read_to_string(f)?.lines().map(str::to_owned));
    }
    Ok(out)
}

fn open_latest(dir: &Path, prefix: &str) -> io::Result<(File, PathBuf, u64, Recovery)> {
    let mut recovery = Recovery::default();
    let path = match files_with_prefix(dir, prefix)?.pop() {
        Some(p) => {
            recovery.torn_bytes_cut = repair_torn_tail(&p)?;
            p
        }
        None => dir.join(file_name(prefix, SystemTime::now(), 0)),
    };
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    let size = file.metadata()?.len();
    recovery.file = path.clone();
    Ok((file, path, size, recovery))
}

/// Cut everything after the last newline; returns how many bytes were cut.
pub fn repair_torn_tail(path: &Path) -> io::Result<u64> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Scan back from the end in chunks for the last '\n'.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let keep = loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    if keep < len {
        f.set_len(keep)?;
        f.sync_all()?;
    }
    Ok(len - keep)
}

struct Writer {
    cfg: JournalConfig,
    file: File,
    path: PathBuf,
    size: u64,
    opened: Instant,
    committed: Option<CommittedTx>,
    stats: Arc<JournalStats>,
    /// Where acknowledgements are sent from (see the module doc); without
    /// one (a journal opened outside a runtime) the writer sends them itself.
    runtime: Option<tokio::runtime::Handle>,
}

type Ack = oneshot::Sender<Result<(), JournalError>>;

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Pending>) {
        if let Err(e) = yield_to_requests() {
            tracing::info!(error = %e, "the journal thread keeps the default scheduling policy \
                (SCHED_BATCH refused): accounting costs more CPU on a busy core");
        }
        let mut batch: Vec<Pending> = Vec::with_capacity(1024);
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let fsync_seconds = metrics::histogram!("tacvs_journal_fsync_seconds");
        let batches = metrics::counter!("tacvs_journal_batches_total");
        let records = metrics::counter!("tacvs_journal_records_total");
        let errors = metrics::counter!("tacvs_journal_errors_total");
        let syslog_dropped = metrics::counter!("tacvs_syslog_dropped_total");
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < 8192 {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            buf.clear();
            for p in &batch {
                buf.extend_from_slice(&p.line);
            }
            let t = Instant::now();
            let result = self.write_batch(&buf, t);
            let took = t.elapsed();
            let n = batch.len();
            let mut acks: Vec<Ack> = Vec::with_capacity(n);
            // Lines go on to syslog only when stored and forwarded.
            let forward = result.is_ok() && self.committed.is_some();
            let mut lines = Vec::with_capacity(if forward { n } else { 0 });
            for p in batch.drain(..) {
                acks.push(p.ack);
                if forward {
                    lines.push(p.line);
                }
            }
            self.acknowledge(acks, result.clone());
            fsync_seconds.record(took.as_secs_f64());
            self.publish(took, &result, n);
            batches.increment(1);
            match &result {
                Ok(()) => {
                    records.increment(n as u64);
                    if let Some(c) = &self.committed {
                        for line in lines {
                            if c.try_send(line).is_err() {
                                syslog_dropped.increment(1);
                            }
                        }
                    }
                }
                Err(e) => {
                    errors.increment(1);
                    tracing::error!(
                        file = %self.path.display(),
                        error = %e,
                        records = n,
                        "journal write failed; replying ERROR to these accounting requests"
                    );
                }
            }
        }
        // Channel closed: every sender is gone; the last batch was synced above.
    }

    /// Resolve every append of a batch. A waiting connection task woken from
    /// this thread costs the runtime a wake-up each; woken from a task on the
    /// runtime, it is a push onto a local run queue.
    fn acknowledge(&self, acks: Vec<Ack>, result: Result<(), JournalError>) {
        let send = move || {
            for ack in acks {
                let _ = ack.send(result.clone());
            }
        };
        match &self.runtime {
            // A runtime that has shut down drops the task and with it the
            // senders: those appends resolve as `Closed`, never as stored.
            Some(rt) => drop(rt.spawn(async move { send() })),
            None => send(),
        }
    }

    fn publish(&self, took: Duration, result: &Result<(), JournalError>, records: usize) {
        let s = &self.stats;
        s.last_fsync_ns.store(took.as_nanos() as u64, Ordering::Relaxed);
        s.size.store(self.size, Ordering::Relaxed);
        match result {
            Ok(()) => {
                s.records.fetch_add(records as u64, Ordering::Relaxed);
            }
            Err(e) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                *s.last_error.lock().unwrap_or_else(|e| e.into_inner()) = e.to_string();
            }
        }
        let mut f = s.file.lock().unwrap_or_else(|e| e.into_inner());
        if *f != self.path {
            f.clone_from(&self.path);
        }
    }

    fn write_batch(&mut self, buf: &[u8], now: Instant) -> Result<(), JournalError> {
        match self.file_in_place().map_err(|e| self.err(e))? {
            None => {
                tracing::warn!(file = %self.path.display(), "the journal file was deleted or \
                    replaced while the server runs; starting a new one (records written since \
                    the previous batch are only in the old file)");
                metrics::counter!("tacvs_journal_reopened_total").increment(1);
                self.rotate(now).map_err(|e| self.err(e))?;
            }
            // Cut or grown by someone else (logrotate's copytruncate keeps
            // the file and empties it). Appends land at its real end anyway;
            // the size kept here decides rotation and where a failed write
            // is cut back to, which from a stale size would extend the file
            // with zeros.
            Some(len) if len != self.size => {
                tracing::warn!(
                    file = %self.path.display(),
                    expected = self.size,
                    found = len,
                    "the journal file changed size while the server runs (truncated or copied \
                     over by a log rotation tool, e.g. logrotate's copytruncate: use its default \
                     create mode, or tacvs's own rotate_size and rotate_interval); continuing \
                     from its real size"
                );
                metrics::counter!("tacvs_journal_resized_total").increment(1);
                self.size = len;
            }
            Some(_) => {}
        }
        if self.size > 0
            && (self.size + buf.len() as u64 > self.cfg.rotate_size
                || now.saturating_duration_since(self.opened) >= self.cfg.rotate_interval)
        {
            self.rotate(now).map_err(|e| self.err(e))?;
        }
        let sync = self.cfg.sync;
        if let Err(e) =
            self.file.write_all(buf).and_then(|_| if sync { self.file.sync_data() } else { Ok(()) })
        {
            // A failed write may have left a partial line: cut it so the file stays whole.
            let _ = self.file.set_len(self.size);
            return Err(self.err(e));
        }
        self.size += buf.len() as u64;
        Ok(())
    }

    /// The open file's size, if it is still linked at its path.
    fn file_in_place(&self) -> io::Result<Option<u64>> {
        use std::os::unix::fs::MetadataExt;
        let open = self.file.metadata()?;
        if open.nlink() == 0 {
            return Ok(None);
        }
        match fs::metadata(&self.path) {
            Ok(m) if m.ino() == open.ino() && m.dev() == open.dev() => Ok(Some(open.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn rotate(&mut self, now: Instant) -> io::Result<()> {
        let wall = SystemTime::now();
        let mut n = 0;
        let mut path = self.cfg.dir.join(file_name(self.cfg.prefix, wall, n));
        while path.exists() || path <= self.path {
            n += 1;
            path = self.cfg.dir.join(file_name(self.cfg.prefix, wall, n));
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        // Make the new directory entry durable too.
        if let Ok(d) = File::open(&self.cfg.dir) {
            let _ = d.sync_all();
        }
        tracing::info!(old = %self.path.display(), new = %path.display(), bytes = self.size, "journal rotated");
        self.file = file;
        self.path = path;
        self.size = 0;
        self.opened = now;
        Ok(())
    }

    fn err(&self, e: io::Error) -> JournalError {
        JournalError::Io { dir: self.cfg.dir.display().to_string(), msg: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A request with arbitrary peer bytes in every field.
    fn request() -> impl Strategy<Value = tacvs_proto::AaaRequest> {
        let field = || proptest::collection::vec(any::<u8>(), 0..24);
        (field(), field(), field(), 0u8..=15, proptest::collection::vec(field(), 0..4)).prop_map(
            |(user, port, rem, lvl, args)| {
                let args = args
                    .into_iter()
                    .map(|mut v| {
                        // name, separator, value: as a device may send them.
                        v.retain(|b| *b != b'=' && *b != b'*');
                        let mut raw = b"n\xff".to_vec();
                        raw.push(if lvl % 2 == 0 { b'=' } else { b'*' });
                        raw.extend_from_slice(&v);
                        tacvs_proto::Argument::parse(raw.into(), "test").unwrap()
                    })
                    .collect();
                let mut r = tacvs_proto::AaaRequest::new(user, args);
                r.port = port.into();
                r.rem_addr = rem.into();
                r.priv_lvl = tacvs_proto::PrivLvl::new(lvl).unwrap();
                r
            },
        )
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![Just("core".to_string()), "\\PC{0,12}", any::<String>()]
    }

    proptest! {
        /// The hand-written authorization line is the serde one, byte for byte.
        #[test]
        fn authz_line_is_the_serde_line(
            request in request(),
            reason in text(),
            group in text(),
            device in any::<std::net::IpAddr>(),
        ) {
            let e = AuthzEvent {
                at: SystemTime::UNIX_EPOCH,
                device,
                device_group: &group,
                request: &request,
                status: tacvs_proto::AuthorStatus::PassAdd,
                reason: &reason,
                account: None,
            };
            let mut by_hand = Vec::new();
            write_authz(&mut by_hand, &e, "srv", "2026-12-01T00:00:00.000Z");
            let mut serde = to_line(&authz_record(&e, "srv", "2026-12-01T00:00:00.000Z"));
            serde.push(b'\n');
            prop_assert_eq!(by_hand, serde);
        }

        /// The hand-written accounting line is the serde one, byte for byte.
        #[test]
        fn acct_line_is_the_serde_line(
            request in request(),
            group in text(),
            sid in any::<u32>(),
            device in any::<std::net::SocketAddr>(),
            tls in proptest::option::of((text(), text(), any::<bool>())),
        ) {
            let tls = tls.map(|(subject, san, resumed)| TlsPeer {
                subject: subject.into(),
                san: san.into(),
                sha256: "ab01".into(),
                resumed,
            });
            let src = AcctSource {
                time: "2026-12-01T00:00:00.000Z",
                server: "srv",
                device,
                device_group: &group,
                session_id: sid,
                flags: tacvs_proto::AcctFlags::Stop,
                request: &request,
                tls: tls.as_ref(),
            };
            prop_assert_eq!(src.line(), to_line(&src.record()));
        }
    }

    #[test]
    fn authz_line_of_a_directory_user_has_its_groups() {
        let policy = tacvs_policy::parse(
            "t.toml",
            "[server]\n[[server.listen]]\naddress = \"127.0.0.1:0\"\n",
            std::path::Path::new("."),
        )
        .unwrap();
        let user = tacvs_policy::User {
            name: "alice".into(),
            password: None,
            chap_secret: None,
            enable: None,
            groups: vec![],
            max_priv: 15,
            prefer: tacvs_policy::identity::Prefer::Directory,
            otp: false,
        };
        let account = crate::accounts::Account {
            directory: 0,
            directory_name: "corp".into(),
            dn: "uid=alice,dc=x".into(),
            ldap_groups: vec!["cn=net\"ops,dc=x".into(), "cn=b,dc=x".into()],
            user: Arc::new(user),
            policy: Arc::new(policy),
            otp_secret: None,
        };
        let e = AuthzEvent {
            at: SystemTime::UNIX_EPOCH,
            device: "10.0.0.1".parse().unwrap(),
            device_group: "core",
            request: &tacvs_proto::AaaRequest::new("alice", vec![]),
            status: tacvs_proto::AuthorStatus::Fail,
            reason: "no rule",
            account: Some(&account),
        };
        let mut by_hand = Vec::new();
        write_authz(&mut by_hand, &e, "s", "t");
        let mut serde = to_line(&authz_record(&e, "s", "t"));
        serde.push(b'\n');
        assert_eq!(String::from_utf8_lossy(&by_hand), String::from_utf8_lossy(&serde));
        let back: AuthzRecord<'_> = serde_json::from_slice(&by_hand).unwrap();
        assert_eq!(back.ldap_groups, ["cn=net\"ops,dc=x", "cn=b,dc=x"]);
        assert_eq!(back.directory, "corp");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn authorization_records_go_to_their_own_files_and_read_back() {
        let d = tmp("authz");
        let cfg = |prefix, sync| JournalConfig {
            dir: d.clone(),
            rotate_size: 1 << 30,
            rotate_interval: Duration::from_secs(3600),
            prefix,
            sync,
        };
        let (acct, _, _) = Journal::open(cfg(ACCT, true), None).unwrap();
        let (authz, h) = AuthzLog::open(cfg(AUTHZ, false), "s".into()).unwrap();
        let args = vec![
            tacvs_proto::Argument::new("service", "shell", true).unwrap(),
            tacvs_proto::Argument::new("cmd", "show", true).unwrap(),
        ];
        authz.record(&AuthzEvent {
            at: SystemTime::UNIX_EPOCH,
            device: "10.0.0.1".parse().unwrap(),
            device_group: "core",
            request: &tacvs_proto::AaaRequest::new("anna", args),
            status: tacvs_proto::AuthorStatus::PassAdd,
            reason: "r",
            account: None,
        });
        acct.append(b"{\"n\":1}".to_vec()).await.unwrap();
        drop(authz);
        h.join().unwrap();
        let rec = AuthzRecord {
            time: "1970-01-01T00:00:00.000Z".into(),
            server: "s".into(),
            device: "10.0.0.1".into(),
            device_group: "core".into(),
            user: "anna".into(),
            port: "".into(),
            priv_lvl: 1,
            args: vec!["service=shell".into(), "cmd=show".into()],
            status: "pass_add".into(),
            reason: "r".into(),
            directory: "".into(),
            ldap_groups: vec![],
        };
        assert_eq!(read_authz_records(&d).unwrap(), [rec]);
        assert_eq!(
            read_lines(&d).unwrap(),
            ["{\"n\":1}"],
            "accounting readers see no authorization record"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    /// An fsync'd accounting journal in `d` that rotates only by hand.
    fn acct_config(d: &Path) -> JournalConfig {
        JournalConfig {
            dir: d.to_owned(),
            rotate_size: 1 << 30,
            rotate_interval: Duration::from_secs(3600),
            prefix: ACCT,
            sync: true,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tacvs-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn lines_escape_separators_and_c1_controls() {
        #[derive(serde::Serialize)]
        struct R<'a> {
            user: &'a str,
        }
        let user = "a\u{2028}b\u{85}c\u{7f}d\u{202e}e\r\n\"f\u{e9}";
        let line = to_line(&R { user });
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(!text.chars().any(crate::logfmt::is_unsafe), "{text:?}");
        assert!(text.contains("a\\u2028b\\u0085c\\u007fd\\u202ee\\r\\n\\\"f\u{e9}"), "{text}");
        let back: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(back["user"], user, "the same value for a JSON reader");
    }

    #[test]
    fn time_text_is_reformatted_each_millisecond() {
        let mut s = Stamp::default();
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_500_200);
        assert_eq!(s.of(t), "1970-01-01T00:00:01.500Z");
        assert_eq!(s.of(t + Duration::from_micros(700)), "1970-01-01T00:00:01.500Z");
        assert_eq!(s.of(t + Duration::from_micros(800)), "1970-01-01T00:00:01.501Z");
        assert_eq!(s.of(t + Duration::from_secs(60)), "1970-01-01T00:01:01.500Z");
    }

    fn writer(d: &Path, rotate_interval: Duration) -> Writer {
        fs::create_dir_all(d).unwrap();
        let (file, path, size, _) = open_latest(d, ACCT).unwrap();
        let cfg = JournalConfig { rotate_interval, ..acct_config(d) };
        Writer {
            cfg,
            file,
            path,
            size,
            opened: Instant::now(),
            committed: None,
            stats: Arc::default(),
            runtime: None,
        }
    }

    #[test]
    fn a_file_deleted_while_running_is_noticed_and_a_new_one_started() {
        let d = tmp("deleted");
        let mut w = writer(&d, Duration::from_secs(3600));
        let now = Instant::now();
        w.write_batch(b"{\"n\":1}\n", now).unwrap();
        fs::remove_file(journal_files(&d).unwrap().pop().unwrap()).unwrap();
        w.write_batch(b"{\"n\":2}\n", now).unwrap();
        assert_eq!(
            read_lines(&d).unwrap(),
            ["{\"n\":2}"],
            "the record is in a file in the directory"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_replaced_while_running_is_noticed() {
        let d = tmp("replaced");
        let mut w = writer(&d, Duration::from_secs(3600));
        let now = Instant::now();
        w.write_batch(b"{\"n\":1}\n", now).unwrap();
        let p = journal_files(&d).unwrap().pop().unwrap();
        fs::rename(&p, d.join("moved-away")).unwrap();
        fs::write(&p, b"").unwrap();
        w.write_batch(b"{\"n\":2}\n", now).unwrap();
        assert_eq!(read_lines(&d).unwrap(), ["{\"n\":2}"]);
        fs::remove_dir_all(&d).unwrap();
    }

    /// logrotate's copytruncate empties the file in place: the writer goes
    /// on from the real size (before, it kept the old one: a failed write
    /// then cut the file back to that size, extending it with zeros, and
    /// size-based rotation came early).
    #[test]
    fn a_file_truncated_in_place_is_continued_from_its_real_size() {
        let d = tmp("copytruncate");
        let mut w = writer(&d, Duration::from_secs(3600));
        let now = Instant::now();
        w.write_batch(b"{\"n\":1}\n", now).unwrap();
        w.write_batch(b"{\"n\":2}\n", now).unwrap();
        let p = journal_files(&d).unwrap().pop().unwrap();
        OpenOptions::new().write(true).open(&p).unwrap().set_len(0).unwrap();
        w.write_batch(b"{\"n\":3}\n", now).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\"n\":3}\n");
        assert_eq!(w.size, 8, "the size the writer keeps is the file's");
        assert_eq!(journal_files(&d).unwrap().len(), 1, "the same file, not a new one");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn files_rotate_after_rotate_interval() {
        let d = tmp("age");
        let mut w = writer(&d, Duration::from_secs(60));
        let t0 = Instant::now();
        w.write_batch(b"{\"n\":1}\n", t0).unwrap();
        w.write_batch(b"{\"n\":2}\n", t0 + Duration::from_secs(59)).unwrap();
        assert_eq!(journal_files(&d).unwrap().len(), 1);
        w.write_batch(b"{\"n\":3}\n", t0 + Duration::from_secs(60)).unwrap();
        let files = journal_files(&d).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(fs::read_to_string(&files[1]).unwrap(), "{\"n\":3}\n");
        fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_cuts_a_torn_record_and_appends_after_the_last_whole_one() {
        let d = tmp("open-torn");
        fs::create_dir_all(&d).unwrap();
        let p = d.join("acct-20260101T000000Z-000.jsonl");
        fs::write(&p, b"{\"a\":1}\n{\"b\":").unwrap();
        let cfg = acct_config(&d);
        let (j, rec, _h) = Journal::open(cfg, None).unwrap();
        assert_eq!((rec.file.as_path(), rec.torn_bytes_cut), (p.as_path(), 5));
        j.append(b"{\"c\":3}".to_vec()).await.unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\"a\":1}\n{\"c\":3}\n");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_tail_is_cut() {
        let d = tmp("torn");
        fs::create_dir_all(&d).unwrap();
        let p = d.join("acct-1.jsonl");
        fs::write(&p, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        assert_eq!(repair_torn_tail(&p).unwrap(), 5);
        assert_eq!(fs::read(&p).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(repair_torn_tail(&p).unwrap(), 0);
        fs::write(&p, b"no newline at all").unwrap();
        assert_eq!(repair_torn_tail(&p).unwrap(), 17);
        assert_eq!(fs::read(&p).unwrap(), b"");
        fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_and_rotation() {
        let d = tmp("rotate");
        let cfg = JournalConfig { rotate_size: 300, ..acct_config(&d) };
        let (j, rec, _h) = Journal::open(cfg.clone(), None).unwrap();
        assert_eq!(rec.torn_bytes_cut, 0);
        // Ten rounds of twenty concurrent appends: each round is a batch or a few.
        for round in 0..10 {
            let mut tasks = Vec::new();
            for i in 0..20 {
                let j = j.clone();
                let n = round * 20 + i;
                tasks.push(tokio::spawn(async move {
                    j.append(format!("{{\"n\":{n}}}").into_bytes()).await
                }));
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        }
        let files = journal_files(&d).unwrap();
        assert!(files.len() >= 2, "rotated by size: {files:?}");
        let lines: usize =
            files.iter().map(|f| fs::read_to_string(f).unwrap().lines().count()).sum();
        assert_eq!(lines, 200);
        drop(j);
        // Reopen: appends to the newest file.
        let (j2, rec2, _h) = Journal::open(cfg, None).unwrap();
        assert_eq!(rec2.file, *files.last().unwrap());
        j2.append(b"{\"n\":200}".to_vec()).await.unwrap();
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn appends_resolve_whether_or_not_a_runtime_opened_the_journal() {
        let d = tmp("ack-paths");
        let cfg = acct_config(&d);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let fifty = |j: Journal, base: u32| async move {
            let tasks: Vec<_> = (base..base + 50)
                .map(|n| {
                    let j = j.clone();
                    tokio::spawn(
                        async move { j.append(format!("{{\"n\":{n}}}").into_bytes()).await },
                    )
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        };
        // Opened outside any runtime: the writer thread acknowledges itself.
        assert!(tokio::runtime::Handle::try_current().is_err());
        let (j, _, h) = Journal::open(cfg.clone(), None).unwrap();
        rt.block_on(fifty(j, 0));
        h.join().unwrap();
        // Opened on a single-threaded runtime: acknowledged from a task on it.
        let h = rt.block_on(async {
            let (j, _, h) = Journal::open(cfg, None).unwrap();
            fifty(j, 50).await;
            h
        });
        h.join().unwrap();
        #[derive(serde::Deserialize)]
        struct N {
            n: u32,
        }
        let mut ns: Vec<u32> = read_lines(&d)
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str::<N>(l).unwrap().n)
            .collect();
        ns.sort_unstable();
        assert_eq!(ns, (0..100).collect::<Vec<_>>());
        fs::remove_dir_all(&d).unwrap();
    }
}
