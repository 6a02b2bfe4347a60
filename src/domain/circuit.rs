//! A circuit breaker for one provider: after `threshold` transient failures in a row the
//! provider is left alone for a cool-down, which doubles on each failed trial up to a maximum;
//! after it, one trial call goes through, and its outcome closes the circuit or opens it again.
//! Pure: the caller passes the time and reports outcomes.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// When a circuit opens, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// Transient failures in a row that open the circuit.
    pub threshold: u32,
    /// The first cool-down.
    pub cool_down: Duration,
    /// The longest cool-down.
    pub max_cool_down: Duration,
}

/// Where a circuit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through; this many failed in a row.
    Closed {
        /// Transient failures since the last success.
        failures: u32,
    },
    /// No call goes through until `until`.
    Open {
        /// When a trial may go.
        until: DateTime<Utc>,
        /// The cool-down that opened it.
        cool_down: Duration,
    },
    /// One trial call is out; others wait for its outcome.
    Trial {
        /// The cool-down to use if the trial fails (doubled).
        cool_down: Duration,
    },
}

/// Whether a call may go to the provider now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Call,
    /// Go ahead: this call is the trial that decides whether the circuit closes.
    Trial,
    /// Do not call; try again at this time.
    Refused {
        /// When the provider may be tried again.
        retry_at: DateTime<Utc>,
    },
}

/// One provider's circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Circuit {
    policy: CircuitPolicy,
    state: CircuitState,
}

impl Circuit {
    /// A closed circuit.
    pub fn new(policy: CircuitPolicy) -> Self {
        Self {
            policy,
            state: CircuitState::Closed { failures: 0 },
        }
    }

    /// Where it stands.
    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// Whether a call may go now; an open circuit whose cool-down is over lets one trial go.
    pub fn admit(&mut self, now: DateTime<Utc>) -> Admission {
        match self.state {
            CircuitState::Closed { .. } => Admission::Call,
            CircuitState::Open { until, cool_down } if now >= until => {
                self.state = CircuitState::Trial { cool_down };
                Admission::Trial
            }
            CircuitState::Open { until, .. } => Admission::Refused { retry_at: until },
            // While the trial is out, others wait about as long as a call takes.
            CircuitState::Trial { .. } => Admission::Refused {
                retry_at: now + chrono::Duration::seconds(1),
            },
        }
    }

    /// The provider answered (an answer that is the caller's fault counts too: it is up).
    pub fn succeeded(&mut self) {
        self.state = CircuitState::Closed { failures: 0 };
    }

    /// The provider failed in a way that may pass (5xx, timeout, reset connection).
    pub fn failed(&mut self, now: DateTime<Utc>) {
        self.state = match self.state {
            CircuitState::Closed { failures } if failures + 1 >= self.policy.threshold => {
                self.open(now, self.policy.cool_down)
            }
            CircuitState::Closed { failures } => CircuitState::Closed {
                failures: failures + 1,
            },
            CircuitState::Trial { cool_down } => {
                let longer = (cool_down * 2).min(self.policy.max_cool_down);
                self.open(now, longer)
            }
            // A call admitted before the circuit opened failed too: nothing new.
            open @ CircuitState::Open { .. } => open,
        };
    }

    /// An admitted call ended without telling whether the provider answered (the job stopped
    /// for another reason): a trial is given back, so that the next call is the trial.
    pub fn abandoned(&mut self, now: DateTime<Utc>) {
        if let CircuitState::Trial { cool_down } = self.state {
            self.state = CircuitState::Open {
                until: now,
                cool_down,
            };
        }
    }

    /// Whether calls are held back (open, or waiting on a trial).
    pub fn is_open(&self) -> bool {
        !matches!(self.state, CircuitState::Closed { .. })
    }

    fn open(&self, now: DateTime<Utc>, cool_down: Duration) -> CircuitState {
        let until = now + chrono::Duration::from_std(cool_down).unwrap_or(chrono::Duration::MAX);
        CircuitState::Open { until, cool_down }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CircuitPolicy {
        CircuitPolicy {
            threshold: 3,
            cool_down: Duration::from_secs(10),
            max_cool_down: Duration::from_secs(30),
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn opens_after_the_threshold_and_refuses_until_the_cool_down_ends() {
        let mut circuit = Circuit::new(policy());
        for _ in 0..2 {
            assert_eq!(circuit.admit(at(0)), Admission::Call);
            circuit.failed(at(0));
        }
        assert_eq!(circuit.state(), CircuitState::Closed { failures: 2 });
        circuit.failed(at(0));
        assert_eq!(
            circuit.admit(at(5)),
            Admission::Refused { retry_at: at(10) }
        );
        assert_eq!(circuit.admit(at(10)), Admission::Trial);
        // Only one trial at a time.
        assert!(matches!(circuit.admit(at(10)), Admission::Refused { .. }));
    }

    #[test]
    fn a_failed_trial_doubles_the_cool_down_up_to_the_maximum() {
        let mut circuit = Circuit::new(policy());
        (0..3).for_each(|_| circuit.failed(at(0)));
        assert_eq!(circuit.admit(at(10)), Admission::Trial);
        circuit.failed(at(10));
        assert_eq!(
            circuit.admit(at(29)),
            Admission::Refused { retry_at: at(30) }
        );
        assert_eq!(circuit.admit(at(30)), Admission::Trial);
        circuit.failed(at(30));
        assert_eq!(
            circuit.state(),
            CircuitState::Open {
                until: at(60),
                cool_down: Duration::from_secs(30)
            }
        );
    }

    #[test]
    fn an_abandoned_trial_lets_the_next_call_try() {
        let mut circuit = Circuit::new(policy());
        (0..3).for_each(|_| circuit.failed(at(0)));
        assert!(circuit.is_open());
        assert_eq!(circuit.admit(at(10)), Admission::Trial);
        circuit.abandoned(at(11));
        assert_eq!(circuit.admit(at(11)), Admission::Trial);
        circuit.succeeded();
        assert!(!circuit.is_open());
        circuit.abandoned(at(12));
        assert_eq!(
            circuit.admit(at(12)),
            Admission::Call,
            "nothing to give back"
        );
    }

    #[test]
    fn a_success_closes_it_and_forgets_the_failures() {
        let mut circuit = Circuit::new(policy());
        (0..3).for_each(|_| circuit.failed(at(0)));
        assert_eq!(circuit.admit(at(10)), Admission::Trial);
        circuit.succeeded();
        assert_eq!(circuit.admit(at(10)), Admission::Call);
        (0..2).for_each(|_| circuit.failed(at(11)));
        assert_eq!(
            circuit.admit(at(11)),
            Admission::Call,
            "two failures do not open it"
        );
    }
}
