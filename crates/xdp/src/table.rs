//! Pure bookkeeping behind [`crate::DataPlane::set_service`]: checking a
//! service's lookup table, giving real servers stable ids, and working out
//! which map entries a change writes, in which order.
//!
//! Contract:
//! * a real server keeps its id (and so its flows) for as long as it stays in
//!   the service's server list, whatever its place in that list or its MAC;
//! * an id given back is handed out again only with a new generation, so a
//!   flow-table entry left by the old holder never reaches the new one;
//! * the inner table a service publishes is `[m, id of slot 0, …, id of slot
//!   m-1]`: the size travels with the slots, and one map-in-map swap publishes
//!   both.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::layout::{MacAddr, consts};

/// Why a table or server list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// More slots than an inner map holds.
    #[error(
        "the lookup table has {len} slots; the data plane holds at most {max} (about 100 slots per \
         server: at most 512 servers per service)"
    )]
    TooLarge {
        /// Slots given.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// A slot names a server that is not in the list.
    #[error("slot {slot} of the lookup table names server {index}, but the service has {reals}")]
    BadIndex {
        /// The slot.
        slot: usize,
        /// The index in it.
        index: u32,
        /// How many servers there are.
        reals: usize,
    },
    /// The same address twice in one service.
    #[error("real server {0} is listed twice")]
    Duplicate(IpAddr),
    /// No ids left.
    #[error("no room for another real server: the data plane holds {} in all", consts::MAX_REALS)]
    OutOfIds,
    /// A MAC that cannot be a unicast destination.
    #[error(
        "real server {addr} has MAC {mac}, a group address: DR needs the server's own unicast MAC"
    )]
    GroupMac {
        /// The server.
        addr: IpAddr,
        /// Its MAC.
        mac: MacAddr,
    },
}

/// The largest table a service may publish.
pub const MAX_SLOTS: usize = consts::TABLE_CAPACITY as usize - 1;

/// Check that every slot of `table` names one of `reals` servers and the
/// table fits an inner map.
pub fn check_table(table: &[u32], reals: usize) -> Result<(), TableError> {
    if table.len() > MAX_SLOTS {
        return Err(TableError::TooLarge { len: table.len(), max: MAX_SLOTS });
    }
    match table.iter().position(|&i| i as usize >= reals) {
        Some(slot) => Err(TableError::BadIndex { slot, index: table[slot], reals }),
        None => Ok(()),
    }
}

/// A table from a lookup function over `size` slots, e.g. the director's
/// Maglev: `table_from_lookup(m.size(), |h| m.lookup(h))`. A slot the lookup
/// leaves empty makes the whole table empty (no server can take new flows).
pub fn table_from_lookup(size: usize, lookup: impl Fn(u64) -> Option<usize>) -> Vec<u32> {
    let slots: Option<Vec<u32>> =
        (0..size as u64).map(|s| lookup(s).and_then(|i| u32::try_from(i).ok())).collect();
    slots.unwrap_or_default()
}

/// Ids for real servers, each with a generation that changes on every reuse.
#[derive(Debug, Clone)]
pub struct IdPool {
    free: Vec<u32>,
    next_gen: u32,
    capacity: u32,
}

impl IdPool {
    /// Ids `0..capacity`.
    pub fn new(capacity: u32) -> IdPool {
        // Popped from the end: ids are handed out lowest first.
        IdPool { free: (0..capacity).rev().collect(), next_gen: 1, capacity }
    }

    /// An id and its fresh generation.
    pub fn take(&mut self) -> Option<(u32, u32)> {
        let id = self.free.pop()?;
        let g = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        Some((id, g))
    }

    /// Give `id` back. Given back ids are reused last (oldest-freed first
    /// would need a queue; the generation already guards reuse).
    pub fn put(&mut self, id: u32) {
        debug_assert!(id < self.capacity && !self.free.contains(&id));
        self.free.insert(0, id);
    }

    /// Ids still free.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

/// A real server as the data plane holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Id in the `reals` map.
    pub id: u32,
    /// Generation of that id.
    pub gen_: u32,
    /// MAC.
    pub mac: MacAddr,
}

/// What to write for one service change, in this order: `upsert` into
/// `reals`, publish `table`, then `remove` from `reals` and give those ids
/// back. Flows on kept servers keep their entries; flows on removed servers
/// are scheduled again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Servers after the change, by address.
    pub placed: HashMap<IpAddr, Placed>,
    /// Real entries to write (new servers, changed MACs).
    pub upsert: Vec<Placed>,
    /// Ids to delete after the table is published.
    pub remove: Vec<u32>,
    /// The inner table: `[m, ids…]`.
    pub table: Vec<u32>,
}

/// Plan a change from `before` to `reals` with `table` (indices into `reals`).
/// On error nothing was taken from `pool`.
pub fn plan(
    before: &HashMap<IpAddr, Placed>,
    reals: &[(IpAddr, MacAddr)],
    table: &[u32],
    pool: &mut IdPool,
) -> Result<Plan, TableError> {
    check_table(table, reals.len())?;
    let mut seen = HashMap::new();
    for &(addr, mac) in reals {
        if seen.insert(addr, ()).is_some() {
            return Err(TableError::Duplicate(addr));
        }
        if mac.is_multicast() {
            return Err(TableError::GroupMac { addr, mac });
        }
    }
    let new_count = reals.iter().filter(|(a, _)| !before.contains_key(a)).count();
    if new_count > pool.available() {
        return Err(TableError::OutOfIds);
    }
    let mut placed = HashMap::new();
    let mut upsert = Vec::new();
    let mut ids = Vec::with_capacity(reals.len());
    for &(addr, mac) in reals {
        let p = match before.get(&addr) {
            Some(old) => {
                let p = Placed { mac, ..*old };
                if old.mac != mac {
                    upsert.push(p);
                }
                p
            }
            None => {
                let (id, gen_) = pool.take().ok_or(TableError::OutOfIds)?;
                let p = Placed { id, gen_, mac };
                upsert.push(p);
                p
            }
        };
        ids.push(p.id);
        placed.insert(addr, p);
    }
    let mut remove: Vec<u32> =
        before.iter().filter(|(a, _)| !placed.contains_key(*a)).map(|(_, p)| p.id).collect();
    remove.sort_unstable();
    let mut inner = Vec::with_capacity(table.len() + 1);
    inner.push(table.len() as u32);
    inner.extend(table.iter().map(|&i| ids[i as usize]));
    Ok(Plan { placed, upsert, remove, table: inner })
}

/// The indices where `new` differs from what a buffer holds (`old`), so a
/// spare buffer is refilled with only the slots that changed. Slots past the
/// end of `new` are never read (element 0 bounds them) and are left alone.
pub fn changed_slots(old: &[u32], new: &[u32]) -> Vec<usize> {
    (0..new.len()).filter(|&i| old.get(i) != Some(&new[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tacvs_director::core::maglev::Maglev;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }
    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn checks_indices_and_size() {
        assert_eq!(check_table(&[0, 1, 1], 2), Ok(()));
        assert_eq!(check_table(&[], 0), Ok(()));
        assert_eq!(
            check_table(&[0, 2, 1], 2),
            Err(TableError::BadIndex { slot: 1, index: 2, reals: 2 })
        );
        let big = vec![0; MAX_SLOTS + 1];
        assert!(matches!(check_table(&big, 1), Err(TableError::TooLarge { .. })));
        assert_eq!(check_table(&big[1..], 1), Ok(()));
    }

    #[test]
    fn from_the_directors_maglev() {
        let servers: Vec<(String, u32)> = (1..=3).map(|i| (format!("10.0.0.{i}:49"), 1)).collect();
        let m = Maglev::new(&servers);
        let t = table_from_lookup(m.size(), |h| m.lookup(h));
        assert_eq!(t.len(), m.size());
        // Every flow hash lands where the director's own lookup puts it.
        for h in [0u64, 1, 99, 12345, u64::MAX] {
            assert_eq!(t[(h % t.len() as u64) as usize] as usize, m.lookup(h).unwrap());
        }
        // No live server: no table.
        let dead = Maglev::new(&[("a".into(), 0)]);
        assert!(table_from_lookup(dead.size(), |h| dead.lookup(h)).is_empty());
        assert!(table_from_lookup(3, |h| (h != 1).then_some(0)).is_empty());
    }

    #[test]
    fn ids_are_stable_and_reuse_changes_generation() {
        let mut pool = IdPool::new(4);
        let p1 = plan(&HashMap::new(), &[(ip(1), mac(1)), (ip(2), mac(2))], &[0, 1, 0], &mut pool)
            .unwrap();
        assert_eq!(p1.table[0], 3);
        let id1 = p1.placed[&ip(1)].id;
        let id2 = p1.placed[&ip(2)].id;
        assert_eq!(&p1.table[1..], &[id1, id2, id1]);
        assert_eq!(p1.upsert.len(), 2);
        assert!(p1.remove.is_empty());

        // Reordered, one MAC changed, one server gone, one new.
        let p2 = plan(&p1.placed, &[(ip(3), mac(3)), (ip(1), mac(9))], &[1, 0], &mut pool).unwrap();
        assert_eq!(p2.placed[&ip(1)].id, id1);
        assert_eq!(p2.placed[&ip(1)].gen_, p1.placed[&ip(1)].gen_);
        assert_eq!(p2.remove, vec![id2]);
        let id3 = p2.placed[&ip(3)].id;
        assert_eq!(&p2.table, &[2, id1, id3]);
        assert_eq!(p2.upsert.len(), 2, "{:?}", p2.upsert);
        pool.put(id2);
        // The same id comes back with another generation.
        let mut drained = IdPool::new(1);
        let (a, g1) = drained.take().unwrap();
        drained.put(a);
        let (b, g2) = drained.take().unwrap();
        assert_eq!(a, b);
        assert_ne!(g1, g2);
    }

    #[test]
    fn refusals_take_nothing() {
        let mut pool = IdPool::new(1);
        let dup = plan(&HashMap::new(), &[(ip(1), mac(1)), (ip(1), mac(2))], &[], &mut pool);
        assert_eq!(dup, Err(TableError::Duplicate(ip(1))));
        let group =
            plan(&HashMap::new(), &[(ip(1), MacAddr([1, 0, 0x5e, 0, 0, 1]))], &[], &mut pool);
        assert!(matches!(group, Err(TableError::GroupMac { .. })));
        let full = plan(&HashMap::new(), &[(ip(1), mac(1)), (ip(2), mac(2))], &[], &mut pool);
        assert_eq!(full, Err(TableError::OutOfIds));
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn changed_slots_only() {
        assert_eq!(changed_slots(&[3, 1, 2, 1], &[3, 1, 5, 1]), vec![2]);
        assert_eq!(changed_slots(&[], &[2, 7, 7]), vec![0, 1, 2]);
        assert_eq!(changed_slots(&[2, 7, 7, 9], &[1, 7]), vec![0]);
    }

    proptest! {
        // Any sequence of server sets: ids stay unique among live servers and
        // within capacity, a kept server keeps its id, and every table slot
        // names a live server's id.
        #[test]
        fn plans_keep_ids_consistent(sets in proptest::collection::vec(
            proptest::collection::btree_set(0u8..12, 0..8), 1..20)) {
            let mut pool = IdPool::new(16);
            let mut before: HashMap<IpAddr, Placed> = HashMap::new();
            for set in sets {
                let reals: Vec<(IpAddr, MacAddr)> = set.iter().map(|&n| (ip(n), mac(n))).collect();
                let table: Vec<u32> = (0..reals.len() as u32 * 3).map(|i| i % reals.len().max(1) as u32)
                    .take(if reals.is_empty() { 0 } else { reals.len() * 3 }).collect();
                let p = plan(&before, &reals, &table, &mut pool).unwrap();
                let mut ids: Vec<u32> = p.placed.values().map(|x| x.id).collect();
                ids.sort_unstable();
                ids.dedup();
                prop_assert_eq!(ids.len(), reals.len());
                prop_assert!(ids.iter().all(|&i| i < 16));
                for (a, old) in &before {
                    if let Some(new) = p.placed.get(a) {
                        prop_assert_eq!((new.id, new.gen_), (old.id, old.gen_));
                    } else {
                        prop_assert!(p.remove.contains(&old.id));
                    }
                }
                prop_assert_eq!(p.table[0] as usize, table.len());
                for id in &p.table[1..] {
                    prop_assert!(ids.contains(id));
                }
                for id in &p.remove {
                    pool.put(*id);
                }
                before = p.placed;
            }
        }
    }
}
