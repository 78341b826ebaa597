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
