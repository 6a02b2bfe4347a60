//! One circuit breaker per provider for this process: when a provider keeps failing, its
//! aggregations wait out a cool-down instead of each spending its retries on it, and one trial
//! at a time finds out whether it is back. The rules are [`crate::domain::circuit`]'s; this
//! holds the state and the clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::domain::circuit::{Admission, Circuit, CircuitPolicy};
use crate::domain::service_provider::ServiceProvider;

/// The circuits of every provider, shared by the workers of one process.
#[derive(Clone)]
pub struct Circuits {
    policy: CircuitPolicy,
    circuits: Arc<Mutex<HashMap<ServiceProvider, Circuit>>>,
}

/// A call the circuit let through: report how the provider did; dropped without a report (the
/// job stopped for another reason), a trial is given back.
#[must_use = "report the provider's health, or a trial is given back"]
pub struct AdmittedCall {
    circuits: Circuits,
    provider: ServiceProvider,
    reported: bool,
}

impl Circuits {
    /// Closed circuits under `policy`.
    pub fn new(policy: CircuitPolicy) -> Self {
        Self {
            policy,
            circuits: Arc::default(),
        }
    }

    /// Lets a call to `provider` go, or answers when to try again.
    pub fn admit(&self, provider: ServiceProvider) -> Result<AdmittedCall, DateTime<Utc>> {
        match self.with(provider, |circuit| circuit.admit(Utc::now())) {
            Admission::Refused { retry_at } => Err(retry_at),
            admission => {
                if admission == Admission::Trial {
                    tracing::info!(provider = %provider, "trying the provider again");
                }
                Ok(AdmittedCall {
                    circuits: self.clone(),
                    provider,
                    reported: false,
                })
            }
        }
    }

    /// When circuits open, and for how long.
    pub fn policy(&self) -> CircuitPolicy {
        self.policy
    }

    /// Whether calls to `provider` are held back now.
    pub fn is_open(&self, provider: ServiceProvider) -> bool {
        self.with(provider, |circuit| circuit.is_open())
    }

    fn with<T>(&self, provider: ServiceProvider, f: impl FnOnce(&mut Circuit) -> T) -> T {
        let mut circuits = self.lock();
        f(circuits
            .entry(provider)
            .or_insert_with(|| Circuit::new(self.policy)))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ServiceProvider, Circuit>> {
        // The map is only ever left consistent: a panic elsewhere cannot poison its meaning.
        self.circuits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl AdmittedCall {
    /// The provider answered (an answer that is the connection's problem counts: it is up).
    pub fn answered(mut self) {
        self.reported = true;
        let was_open = self.circuits.with(self.provider, |circuit| {
            let was_open = circuit.is_open();
            circuit.succeeded();
            was_open
        });
        if was_open {
            tracing::info!(provider = %self.provider, "the provider answers again: circuit closed");
        }
    }

    /// The provider failed in a way that may pass (5xx, timeout, broken connection).
    pub fn failed(mut self) {
        self.reported = true;
        let opened = self.circuits.with(self.provider, |circuit| {
            let was_open = circuit.is_open();
            circuit.failed(Utc::now());
            !was_open && circuit.is_open()
        });
        if opened {
            tracing::warn!(provider = %self.provider, "the provider keeps failing: circuit open");
        }
    }
}

impl Drop for AdmittedCall {
    fn drop(&mut self) {
        if !self.reported {
            self.circuits
                .with(self.provider, |circuit| circuit.abandoned(Utc::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn circuits() -> Circuits {
        Circuits::new(CircuitPolicy {
            threshold: 2,
            cool_down: Duration::from_secs(60),
            max_cool_down: Duration::from_secs(60),
        })
    }

    #[test]
    fn each_provider_has_its_own_circuit() {
        let circuits = circuits();
        for _ in 0..2 {
            circuits.admit(ServiceProvider::Plaid).unwrap().failed();
        }
        assert!(circuits.is_open(ServiceProvider::Plaid));
        assert!(circuits.admit(ServiceProvider::Plaid).is_err());
        assert!(!circuits.is_open(ServiceProvider::Akoya));
        circuits.admit(ServiceProvider::Akoya).unwrap().answered();
    }

    #[test]
    fn a_call_dropped_without_a_report_changes_nothing_while_closed() {
        let circuits = circuits();
        drop(circuits.admit(ServiceProvider::Plaid).unwrap());
        circuits.admit(ServiceProvider::Plaid).unwrap().failed();
        assert!(!circuits.is_open(ServiceProvider::Plaid));
    }
}
