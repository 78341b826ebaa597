//! What the simulator reads about its own process.

/// This process's open-file limits (soft, hard): every socket is a descriptor.
pub fn open_file_limit() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit with a valid pointer to a local struct.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0;
    if ok { (r.rlim_cur, r.rlim_max) } else { (0, 0) }
}

/// User + system CPU time of this process, seconds.
pub fn cpu_seconds() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: getrusage with RUSAGE_SELF and a pointer to a zeroed local struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
