//! Root/BPF gating shared by the tests.

use std::os::unix::fs::MetadataExt;

use tacvs_xdp::{DataPlane, Options};

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether we run as root. Not root: under CI the test fails (CI runs as
/// root, so something is wrong); elsewhere it is skipped with the reason.
pub fn root(test: &str) -> bool {
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    if root {
        return true;
    }
    assert!(!ci(), "{test}: needs root (BPF, network namespaces); CI=true runs as root");
    eprintln!("skipping {test}: not root (BPF and network namespaces need root)");
    false
}

/// The data plane loaded with a small flow table, or `None` (skip) when not
/// root and not in CI. As root, a kernel refusal fails the test.
pub fn load(test: &str, opts: Options) -> Option<DataPlane> {
    if !root(test) {
        return None;
    }
    match DataPlane::load(opts) {
        Ok(d) => Some(d),
        Err(e) => panic!("{test}: the kernel refused the XDP program as root: {e}\n{e:?}"),
    }
}

/// Pins the calling thread to the first CPU it may run on until the guard
/// drops. `BPF_PROG_TEST_RUN` runs the program on the caller's CPU, so a test
/// that follows one flow through a per-CPU table must not migrate between
/// packets (a NIC's RSS keeps a flow on one CPU; a test thread has no such
/// promise).
pub struct Pinned(nix::sched::CpuSet);

impl Pinned {
    pub fn one_cpu() -> Pinned {
        use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
        use nix::unistd::Pid;
        let old = sched_getaffinity(Pid::from_raw(0)).expect("sched_getaffinity");
        let cpu =
            (0..CpuSet::count()).find(|&c| old.is_set(c) == Ok(true)).expect("an allowed CPU");
        let mut one = CpuSet::new();
        one.set(cpu).expect("CPU number within CpuSet");
        sched_setaffinity(Pid::from_raw(0), &one).expect("sched_setaffinity");
        Pinned(old)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &self.0);
    }
}
