//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of
//! prime size M ≥ 100 × servers (1,000 × while the data plane's
//! arrays allow it: [`table_size`]), filled from each server's own permutation of
//! the slots, so a server's arrival or departure moves few other keys. Weighted:
//! servers take turns in proportion to their weight. Written by hand: the table
//! is a few dozen lines and must be deterministic across builds.

/// A built table: slot → server index.
#[derive(Debug, Clone)]
pub struct Maglev {
    table: Vec<u32>,
}

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// The largest table the data plane holds (its inner arrays have 65,537
/// elements, the first of them the size): the largest prime ≤ 65,536.
pub const MAX_TABLE: u64 = 65_521;

/// The table size for `n` servers: a prime ≥ 1,000 × `next_power_of_two(n)`
/// up to 64 servers, [`MAX_TABLE`] from 65 to 512, and beyond that a prime
/// ≥ 100 × `next_power_of_two(n)` (more than the data plane holds).
///
/// Why 1,000 per server, not Maglev's minimum of 100: how many *other*
/// servers' keys a failure moves depends on how far the survivors walk
/// their permutations while filling the table, and in a small table two
/// permutations can run into each other. With 100 slots per server, 300
/// random sets of three equal servers had a failure that moved 38 % of the
/// others' slots (mean 1.3 %), and five servers 26 %; with 1,000 the worst
/// was 3.4 % and 5.7 % (weights 1–5: 13.8 % → 4.0 %). The table costs
/// 4 bytes a slot and is only read for a flow's first packet.
pub fn table_size(n: usize) -> u64 {
    let p = n.max(1).next_power_of_two() as u64;
    if 1000 * p <= MAX_TABLE {
        prime_at_least(1000 * p)
    } else if 100 * p <= MAX_TABLE {
        MAX_TABLE
    } else {
        prime_at_least(100 * p)
    }
}

/// The smallest prime ≥ `n`.
pub fn prime_at_least(n: u64) -> u64 {
    (n.max(2)..).find(|&p| is_prime(p)).expect("primes are unbounded")
}

impl Maglev {
    /// Build for `servers` (key, weight); weight 0 servers get no slots. The
    /// table has [`table_size`] slots: at least 100 per server, and the *same*
    /// size while servers are added up to the next power of two — Maglev
    /// moves few keys only when M stays put.
    pub fn new(servers: &[(String, u32)]) -> Maglev {
        Maglev::with_size(servers, table_size(servers.len()))
    }

    /// Build with an explicit prime size.
    pub fn with_size(servers: &[(String, u32)], m: u64) -> Maglev {
        let live: Vec<usize> = (0..servers.len()).filter(|&i| servers[i].1 > 0).collect();
        let mut table = vec![u32::MAX; m as usize];
        if live.is_empty() {
            return Maglev { table: Vec::new() };
        }
        let max_w = live.iter().map(|&i| servers[i].1).max().unwrap_or(1) as f64;
        let perm: Vec<(u64, u64)> = live
            .iter()
            .map(|&i| {
                let k = servers[i].0.as_bytes();
                (fnv(k, 0x5eed) % m, fnv(k, 0xfeed) % (m - 1) + 1)
            })
            .collect();
        let mut next = vec![0u64; live.len()];
        let mut credit = vec![0f64; live.len()];
        let mut filled = 0u64;
        while filled < m {
            for (j, &i) in live.iter().enumerate() {
                credit[j] += servers[i].1 as f64 / max_w;
                while credit[j] >= 1.0 && filled < m {
                    credit[j] -= 1.0;
                    let (offset, skip) = perm[j];
                    // Walk this server's permutation to its next free slot.
                    loop {
                        let slot = ((offset + next[j] * skip) % m) as usize;
                        next[j] += 1;
                        if table[slot] == u32::MAX {
                            table[slot] = i as u32;
                            filled += 1;
                            break;
                        }
                    }
                }
            }
        }
        Maglev { table }
    }

    /// Table size.
    pub fn size(&self) -> usize {
        self.table.len()
    }

    /// The server for a flow hash.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        Some(self.table[(hash % self.table.len() as u64) as usize] as usize)
    }

    /// Slots each server holds.
    pub fn shares(&self, servers: usize) -> Vec<usize> {
        let mut v = vec![0; servers];
        for &s in &self.table {
            v[s as usize] += 1;
        }
        v
    }
}
