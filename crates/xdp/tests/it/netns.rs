//! Namespaces for the end-to-end tests: the lab's hub-and-ports topology
//! (`tacvs_lab::topo`), code run inside a namespace from a thread that
//! joined it, and cleanup by prefix.

use std::fs::File;
use std::process::Command;

use nix::sched::{CloneFlags, setns};

/// Namespaces named `PREFIX-*`, deleted (with their links) on drop.
pub struct Topo {
    pub prefix: String,
}

impl Topo {
    /// A hub with bridge `br0`; namespaces made with [`Topo::host`].
    pub fn new(tag: &str) -> Topo {
        // Short and unique per process and test.
        let prefix = format!("tx{}{tag}", std::process::id() % 100_000);
        let _ = tacvs_lab::topo::down(&prefix, None);
        tacvs_lab::topo::create_hub(&format!("{prefix}-hub")).expect("creating the hub namespace");
        Topo { prefix }
    }

    pub fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Namespace `PREFIX-name` with `eth0` at `addr`/16 on the hub; the hub
    /// side of its veth is `v-name`.
    pub fn host(&self, name: &str, addr: [u8; 4]) -> String {
        let ns = format!("{}-{name}", self.prefix);
        tacvs_lab::topo::attach(&self.hub(), &ns, name, addr.into()).expect("attaching a host");
        ns
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = tacvs_lab::topo::down(&self.prefix, None);
    }
}

/// Run a command; its stdout, or a panic naming it and its stderr.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| {
        panic!("running {}: {e} (is the Debian package installed?)", args.join(" "))
    });
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `f` on a thread that joined network namespace `ns`.
pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        setns(fd, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
}

/// [`spawn_in`] and wait.
pub fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in(ns, f).join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A current-thread tokio runtime for async helpers inside a namespace thread.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}
