//! Session tickets (TLS 1.3 resumption) with a lifetime that is enforced.
//!
//! rustls' ticketer rotates its keys every 6 hours and keeps the previous
//! key, but does not check a ticket's age when it comes back (only for early
//! data, which we refuse). [`Expiring`] puts an expiry time inside the
//! encrypted ticket and refuses the ticket after it.
//!
//! Keys are process-wide and chosen by the trust material (client CA bundle
//! and CRLs): a reload that leaves them alone keeps every device's tickets
//! valid; a reload with a new CRL or CA starts new keys, so every device makes
//! a full handshake that is checked against the new CRL (a resumed session is
//! not checked again: a revoked certificate could otherwise resume until its
//! ticket expires).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::server::ProducesTickets;

/// Longest ticket lifetime: the ticketer's keys live 12 hours.
pub const MAX_LIFETIME_SECS: u64 = 12 * 3600;

/// How many sets of ticket keys are kept (one per distinct trust material).
const KEPT: usize = 8;

type Keys = Arc<dyn ProducesTickets>;
/// Ticket keys by the SHA-256 of the trust material they serve.
type Cache = Mutex<Vec<([u8; 32], Keys)>>;

fn keys_for(trust: [u8; 32]) -> Result<Keys, rustls::Error> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, k)) = cache.iter().find(|(t, _)| *t == trust) {
        return Ok(k.clone());
    }
    let k = rustls::crypto::ring::Ticketer::new()?;
    if cache.len() >= KEPT {
        cache.remove(0);
    }
    cache.push((trust, k.clone()));
    Ok(k)
}

/// A ticketer whose tickets are refused after `lifetime` seconds.
#[derive(Debug)]
pub(crate) struct Expiring {
    inner: Keys,
    lifetime: u32,
}

impl Expiring {
    /// Tickets under the keys for this trust material, valid `lifetime` s.
    pub(crate) fn new(trust: [u8; 32], lifetime: u32) -> Result<Expiring, rustls::Error> {
        Ok(Expiring { inner: keys_for(trust)?, lifetime })
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ProducesTickets for Expiring {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let expiry = now().saturating_add(u64::from(self.lifetime));
        let mut m = Vec::with_capacity(8 + plain.len());
        m.extend_from_slice(&expiry.to_be_bytes());
        m.extend_from_slice(plain);
        self.inner.encrypt(&m)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let m = self.inner.decrypt(cipher)?;
        let (expiry, plain) = m.split_at_checked(8)?;
        let expiry = u64::from_be_bytes(expiry.try_into().ok()?);
        (now() < expiry).then(|| plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_refused_after_its_lifetime() {
        let live = Expiring::new([1; 32], 3600).unwrap();
        let t = live.encrypt(b"session").unwrap();
        assert_eq!(live.decrypt(&t).as_deref(), Some(&b"session"[..]));
        let dead = Expiring::new([1; 32], 0).unwrap();
        let t = dead.encrypt(b"session").unwrap();
        assert_eq!(dead.decrypt(&t), None, "expired at once");
        // The same keys for the same trust material, new ones otherwise.
        let other = Expiring::new([2; 32], 3600).unwrap();
        let t = live.encrypt(b"x").unwrap();
        assert_eq!(Expiring::new([1; 32], 3600).unwrap().decrypt(&t).as_deref(), Some(&b"x"[..]));
        assert_eq!(other.decrypt(&t), None);
    }
}
