//! The health state of one real server, fed check results and the time:
//! `fall` consecutive failures take an up server down, `rise` consecutive
//! successes bring a down one up. A check that got a well-formed reply showing a
//! wrong key or a failing probe account is *misconfigured*: the server is up (it
//! answers) but the operator must look; it is reported apart from down.

use std::time::{Duration, Instant};

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// A good answer.
    Ok {
        /// How long it took.
        latency: Duration,
    },
    /// Answered, but wrongly for our probe (wrong key, probe account refused).
    Misconfigured {
        /// What was wrong.
        reason: String,
        /// How long it took.
        latency: Duration,
    },
    /// No usable answer (refused, reset, timeout, garbage).
    Failed {
        /// Why.
        reason: String,
    },
}

/// The state scheduling sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Takes connections.
    Up,
    /// Takes connections, but its checks show a configuration problem.
    Misconfigured,
    /// Out of scheduling.
    Down,
}

/// A change worth logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// The check result that decided.
    pub reason: String,
    /// When.
    pub at: Instant,
}

/// Rise/fall bookkeeping for one server.
#[derive(Debug, Clone)]
pub struct Health {
    rise: u32,
    fall: u32,
    state: State,
    oks: u32,
    fails: u32,
    last: Option<CheckResult>,
    since: Instant,
}

impl Health {
    /// Start `initial` (a new server usually starts Down until it proves itself,
    /// or Up to avoid a cold-start gap).
    pub fn new(rise: u32, fall: u32, initial: State, now: Instant) -> Health {
        Health {
            rise: rise.max(1),
            fall: fall.max(1),
            state: initial,
            oks: 0,
            fails: 0,
            last: None,
            since: now,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether scheduling may use it.
    pub fn schedulable(&self) -> bool {
        self.state != State::Down
    }

    /// The last result.
    pub fn last(&self) -> Option<&CheckResult> {
        self.last.as_ref()
    }

    /// Since when the current state holds.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Feed one result; returns the transition it caused, if any.
    pub fn observe(&mut self, r: CheckResult, now: Instant) -> Option<Transition> {
        let (answered, reason, target) = match &r {
            CheckResult::Ok { .. } => (true, "check passed".to_owned(), State::Up),
            CheckResult::Misconfigured { reason, .. } => {
                (true, reason.clone(), State::Misconfigured)
            }
            CheckResult::Failed { reason } => (false, reason.clone(), State::Down),
        };
        self.last = Some(r);
        if answered {
            self.fails = 0;
            self.oks = self.oks.saturating_add(1);
        } else {
            self.oks = 0;
            self.fails = self.fails.saturating_add(1);
        }
        let next = match (self.state, answered) {
            // Down needs `rise` answers in a row.
            (State::Down, true) if self.oks >= self.rise => target,
            (State::Down, _) => State::Down,
            // Up or misconfigured: `fall` failures in a row take it down.
            (_, false) if self.fails >= self.fall => State::Down,
            (s, false) => s,
            // Answering: flip between up and misconfigured at once.
            (_, true) => target,
        };
        if next == self.state {
            return None;
        }
        let t = Transition { from: self.state, to: next, reason, at: now };
        self.state = next;
        self.since = now;
        Some(t)
    }
}
