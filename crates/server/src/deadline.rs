//! Which deadline a connection waiting for bytes is under (pure: times in,
//! a deadline out). Each is counted from a fixed instant, never re-armed by
//! bytes arriving, so a peer that drips one byte at a time cannot hold a
//! connection beyond it:
//!
//! - **first packet**: until the first whole packet (the PROXY header
//!   included) has arrived, `first_packet_timeout` from the accept. A silent
//!   connection holds its slot only this long.
//! - **packet**: once a packet has begun, it must be whole within
//!   `packet_timeout` of its first byte.
//! - **session**: a session waiting for the device (an ASCII prompt sent) must
//!   see its next packet begin within `read_timeout` of our last reply.
//! - **idle**: between sessions on a single-connect connection, `idle_timeout`
//!   from the last activity.

use std::time::Duration;

use tokio::time::Instant;

/// The limits that apply (from `[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// First whole packet after accept.
    pub first_packet: Duration,
    /// A begun packet to be whole.
    pub packet: Duration,
    /// A session in progress waiting for the device.
    pub session: Duration,
    /// Between sessions.
    pub idle: Duration,
}

impl Limits {
    /// From the configuration.
    pub fn from_conf(l: &tacvs_policy::config::Limits) -> Self {
        Limits {
            first_packet: l.first_packet_timeout.0,
            packet: l.packet_timeout.0,
            session: l.read_timeout.0,
            idle: l.idle_timeout.0,
        }
    }
}

/// Which wait timed out (the label of `tacvs_timeouts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No whole packet since accept.
    FirstPacket,
    /// A packet begun but not finished.
    Packet,
    /// A session waiting for the device.
    Session,
    /// Nothing open.
    Idle,
}

impl Kind {
    /// Metric label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FirstPacket => "first_packet",
            Kind::Packet => "packet",
            Kind::Session => "read",
            Kind::Idle => "idle",
        }
    }
}

/// What the connection has seen.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// When it was accepted.
    pub accepted: Instant,
    /// Whether a whole packet has arrived yet.
    pub got_packet: bool,
    /// When the packet now in the buffer began, if one is partial.
    pub partial_since: Option<Instant>,
    /// Last whole packet in or reply out.
    pub last_progress: Instant,
}

impl Clock {
    /// A connection accepted at `now`.
    pub fn new(now: Instant) -> Self {
        Clock { accepted: now, got_packet: false, partial_since: None, last_progress: now }
    }

    /// `consumed` whole packets were taken from the buffer, which now holds
    /// `left` bytes (a partial packet when non-zero).
    pub fn input(&mut self, consumed: bool, left: usize, now: Instant) {
        if consumed {
            self.got_packet = true;
            self.last_progress = now;
            self.partial_since = (left > 0).then_some(now);
        } else if left > 0 && self.partial_since.is_none() {
            self.partial_since = Some(now);
        } else if left == 0 {
            self.partial_since = None;
        }
    }

    /// A reply went out.
    pub fn output(&mut self, now: Instant) {
        self.last_progress = now;
    }

    /// The deadline now, given whether a session is open.
    pub fn deadline(&self, l: &Limits, sessions_open: bool) -> (Instant, Kind) {
        if !self.got_packet {
            (self.accepted + l.first_packet, Kind::FirstPacket)
        } else if let Some(t) = self.partial_since {
            (t + l.packet, Kind::Packet)
        } else if sessions_open {
            (self.last_progress + l.session, Kind::Session)
        } else {
            (self.last_progress + l.idle, Kind::Idle)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn limits() -> Limits {
        Limits { first_packet: 5 * S, packet: 10 * S, session: 30 * S, idle: 600 * S }
    }

    #[test]
    fn a_silent_connection_gets_the_first_packet_deadline() {
        let t0 = Instant::now();
        let c = Clock::new(t0);
        assert_eq!(c.deadline(&limits(), false), (t0 + 5 * S, Kind::FirstPacket));
    }

    #[test]
    fn dripped_bytes_do_not_move_the_first_packet_deadline() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        for i in 1..100 {
            c.input(false, i, t0 + i as u32 * S);
            assert_eq!(c.deadline(&limits(), false).0, t0 + 5 * S);
        }
    }

    #[test]
    fn a_begun_packet_must_finish_within_the_packet_timeout_of_its_first_byte() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        c.input(true, 0, t0 + S);
        c.input(false, 3, t0 + 2 * S);
        c.input(false, 7, t0 + 9 * S);
        assert_eq!(c.deadline(&limits(), false), (t0 + 12 * S, Kind::Packet));
        // A whole packet that leaves the start of the next one: a new packet clock.
        c.input(true, 4, t0 + 11 * S);
        assert_eq!(c.deadline(&limits(), true), (t0 + 21 * S, Kind::Packet));
    }

    #[test]
    fn an_open_session_waits_read_timeout_after_our_reply_and_idle_otherwise() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        c.input(true, 0, t0 + S);
        c.output(t0 + 2 * S);
        assert_eq!(c.deadline(&limits(), true), (t0 + 32 * S, Kind::Session));
        assert_eq!(c.deadline(&limits(), false), (t0 + 602 * S, Kind::Idle));
    }
}
