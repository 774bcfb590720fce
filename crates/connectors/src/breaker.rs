//! A circuit breaker per connector (contract §5): after `failure_threshold`
//! consecutive failed calls it opens, and calls fail at once (`circuitOpen`) instead of
//! making users wait on a dead endpoint. After `open_for` one trial call is let
//! through (half-open); its success closes the breaker, its failure opens it again.
//!
//! Time comes from the injected clock so tests can move it. State is per process: each
//! instance learns on its own that an endpoint is down, which costs at most
//! `failure_threshold` failed calls per instance.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use usher_domain::BreakerSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: DateTime<Utc>,
    },
    /// One trial call is in flight; others are refused until it ends.
    HalfOpen,
}

/// What the breaker looks like from outside, for diagnostics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

/// Leave to make one call. Report how it went with [`Breaker::record`]; a permit
/// dropped without a report (the caller's future was cancelled) gives the trial back.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    trial: bool,
    /// When a cancelled trial is given back: open until then (already past), so the
    /// next call becomes the trial.
    opened_until: DateTime<Utc>,
    reported: bool,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every write is whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A permit to call, or `None` while the breaker is open.
    pub fn try_acquire(&self, now: DateTime<Utc>) -> Option<Permit<'_>> {
        let mut state = self.lock();
        let (allowed, trial, opened_until) = match *state {
            State::Closed { .. } => (true, false, now),
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                (true, true, until)
            }
            State::Open { .. } | State::HalfOpen => (false, false, now),
        };
        allowed.then_some(Permit {
            breaker: self,
            trial,
            opened_until,
            reported: false,
        })
    }

    /// Reports the call made with `permit`.
    pub fn record(&self, mut permit: Permit<'_>, success: bool, now: DateTime<Utc>) {
        permit.reported = true;
        let mut state = self.lock();
        if success {
            *state = State::Closed { failures: 0 };
            return;
        }
        let open_for = chrono::Duration::from_std(self.settings.open_for)
            .unwrap_or(chrono::Duration::days(36_500));
        let open = State::Open {
            until: now
                .checked_add_signed(open_for)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        *state = match *state {
            _ if permit.trial => open,
            // A threshold of 0 turns the breaker off.
            State::Closed { .. } if self.settings.failure_threshold == 0 => {
                State::Closed { failures: 0 }
            }
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.settings.failure_threshold {
                    open
                } else {
                    State::Closed { failures }
                }
            }
            // A call that started before the breaker opened: it stays open.
            other => other,
        };
    }

    pub fn state(&self, now: DateTime<Utc>) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.trial && !self.reported {
            let mut state = self.breaker.lock();
            if *state == State::HalfOpen {
                *state = State::Open {
                    until: self.opened_until,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    fn breaker(threshold: u32) -> Breaker {
        Breaker::new(BreakerSettings {
            failure_threshold: threshold,
            open_for: Duration::from_secs(30),
        })
    }

    fn fail(b: &Breaker, now: DateTime<Utc>) {
        let p = b.try_acquire(now).expect("closed");
        b.record(p, false, now);
    }

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_good_trial() {
        let b = breaker(3);
        let now = t0();
        fail(&b, now);
        fail(&b, now);
        // A success in between resets the count.
        let p = b.try_acquire(now).unwrap();
        b.record(p, true, now);
        fail(&b, now);
        fail(&b, now);
        assert_eq!(b.state(now), BreakerState::Closed);
        fail(&b, now);
        assert_eq!(b.state(now), BreakerState::Open);
        assert!(b.try_acquire(now + chrono::Duration::seconds(29)).is_none());
        let later = now + chrono::Duration::seconds(30);
        let trial = b.try_acquire(later).expect("half-open trial");
        // Only one trial at a time.
        assert!(b.try_acquire(later).is_none());
        b.record(trial, true, later);
        assert_eq!(b.state(later), BreakerState::Closed);
        assert!(b.try_acquire(later).is_some());
    }

    #[test]
    fn a_failed_trial_opens_again() {
        let b = breaker(1);
        let now = t0();
        fail(&b, now);
        let later = now + chrono::Duration::seconds(31);
        let trial = b.try_acquire(later).unwrap();
        b.record(trial, false, later);
        assert!(b
            .try_acquire(later + chrono::Duration::seconds(29))
            .is_none());
        assert!(b
            .try_acquire(later + chrono::Duration::seconds(30))
            .is_some());
    }

    #[test]
    fn a_cancelled_trial_is_given_back() {
        let b = breaker(1);
        let now = t0();
        fail(&b, now);
        let later = now + chrono::Duration::seconds(31);
        drop(b.try_acquire(later).unwrap());
        assert!(b.try_acquire(later).is_some());
    }

    #[test]
    fn threshold_zero_never_opens() {
        let b = breaker(0);
        for _ in 0..10 {
            fail(&b, t0());
        }
        assert_eq!(b.state(t0()), BreakerState::Closed);
    }
}
