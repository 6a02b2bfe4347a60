//! The state machine of a connection's status: given where it stands and what just happened,
//! where it goes and what must be said about it.

use chrono::{DateTime, Utc};

use super::connection_status::{ConnectionStatus, StatusReason};

/// Failed aggregations in a row after which a connection is UNRECOVERABLE. Failures because
/// the provider itself is down do not count: they say nothing about the connection, and an
/// UNRECOVERABLE connection is never aggregated again, so an outage would break every
/// connection it touched.
pub const MAX_CONSECUTIVE_FAILURES: i32 = 3;

/// A connection's status and the count that drives UNRECOVERABLE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionState {
    /// The status.
    pub status: ConnectionStatus,
    /// Its reason, where the status takes one.
    pub reason: Option<StatusReason>,
    /// Failed aggregations since the last success.
    pub consecutive_failures: i32,
}

impl ConnectionState {
    /// Whether another connection of the same link replaced this one (Meld's
    /// PARTIALLY_ACTIVE / INACTIVE_DUPLICATE): it is no longer aggregated.
    pub fn is_inactive_duplicate(&self) -> bool {
        is_inactive_duplicate(self.status, self.reason)
    }

    /// Whether it is aggregated: a status Meld refreshes, and no inactive duplicate.
    pub fn is_refreshable(&self) -> bool {
        self.status.allows_refresh() && !self.is_inactive_duplicate()
    }
}

/// Whether the pair is Meld's PARTIALLY_ACTIVE / INACTIVE_DUPLICATE.
pub fn is_inactive_duplicate(status: ConnectionStatus, reason: Option<StatusReason>) -> bool {
    status == ConnectionStatus::PartiallyActive && reason == Some(StatusReason::InactiveDuplicate)
}

/// Why an aggregation failed, in provider-neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregationFailure {
    /// The customer must log in again (Plaid ITEM_LOGIN_REQUIRED).
    LoginRequired,
    /// The provider no longer accepts the credentials (revoked, removed).
    CredentialsRejected,
    /// The consent's token is refused (Akoya's rotated, expired or revoked refresh token).
    TokenExpired,
    /// The institution is down.
    InstitutionUnavailable,
    /// The institution needs something done on its side.
    InstitutionActionRequired,
    /// The provider is down, slow or throttling, after retries.
    ProviderUnavailable,
    /// Anything else.
    Unforeseen,
}

/// Something that happened to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// An aggregation succeeded.
    AggregationSucceeded,
    /// An aggregation failed for good (retries exhausted).
    AggregationFailed(AggregationFailure),
    /// The provider reports the connection broken (Plaid ITEM `ERROR`).
    ProviderError(AggregationFailure),
    /// The provider reports the login working again (Plaid `LOGIN_REPAIRED`).
    LoginRepaired,
    /// The provider reports that consent ends soon (Plaid `PENDING_EXPIRATION`,
    /// `PENDING_DISCONNECT`).
    ConsentExpiring,
    /// The institution has accounts the customer has not shared yet.
    NewAccountsAvailable,
    /// The customer revoked access at the provider, or the connection was deleted.
    Revoked,
}

/// What must be said about a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// BANK_LINKING_CONNECTION_STATUS_CHANGE.
    StatusChanged {
        /// The status before.
        old: ConnectionStatus,
        /// The status after.
        new: ConnectionStatus,
        /// The reason after.
        reason: Option<StatusReason>,
    },
    /// BANK_LINKING_CUSTOMER_ACTION_REQUIRED with this reason.
    CustomerActionRequired(StatusReason),
    /// BANK_LINKING_NEW_ACCOUNTS_AVAILABLE.
    NewAccountsAvailable,
    /// BANK_LINKING_CONNECTION_DELETED, always followed by AccountsRemoved.
    ConnectionDeleted,
    /// BANK_LINKING_ACCOUNTS_REMOVED for every account of the connection.
    AccountsRemoved,
}

/// Whether a provider report signed at `signed_at` is older than what the status already
/// reflects: such a report arrived out of order and must not roll the state back.
pub fn is_stale(status_as_of: Option<DateTime<Utc>>, signed_at: DateTime<Utc>) -> bool {
    status_as_of.is_some_and(|as_of| signed_at < as_of)
}

/// The state after `signal`, and the effects to announce, in order. Only a change is announced,
/// so a signal applied twice says nothing the second time.
pub fn apply(state: ConnectionState, signal: Signal) -> (ConnectionState, Vec<Effect>) {
    // Terminal and flow states are not moved by provider reports or aggregation results.
    if matches!(
        state.status,
        ConnectionStatus::Deleted | ConnectionStatus::Expired | ConnectionStatus::InProgress
    ) {
        return (state, Vec::new());
    }
    // An inactive duplicate is no longer followed: only a repair (or its end) moves it.
    if state.is_inactive_duplicate() && signal != Signal::Revoked {
        return (state, Vec::new());
    }
    let next = next_state(state, signal);
    let mut effects = Vec::new();
    if (next.status, next.reason) == (state.status, state.reason) {
        return (next, effects);
    }
    if next.status == ConnectionStatus::Deleted {
        // Meld announces a deletion by its own two events, not by a status change.
        effects.extend([Effect::ConnectionDeleted, Effect::AccountsRemoved]);
        return (next, effects);
    }
    effects.push(Effect::StatusChanged {
        old: state.status,
        new: next.status,
        reason: next.reason,
    });
    if next.status == ConnectionStatus::ReconnectRequired {
        effects.push(Effect::CustomerActionRequired(
            next.reason.unwrap_or(StatusReason::Other),
        ));
    }
    if next.reason == Some(StatusReason::NewAccountsAvailable) {
        effects.push(Effect::NewAccountsAvailable);
    }
    (next, effects)
}

fn next_state(state: ConnectionState, signal: Signal) -> ConnectionState {
    let active = |reason| ConnectionState {
        status: ConnectionStatus::Active,
        reason,
        consecutive_failures: 0,
    };
    match signal {
        Signal::AggregationSucceeded => ConnectionState {
            // ACTIVE's reasons (expiring consent, new accounts) outlive a successful aggregation.
            reason: match state.status {
                ConnectionStatus::Active => state.reason,
                _ => None,
            },
            ..active(None)
        },
        Signal::AggregationFailed(failure) => after_failure(state, failure),
        Signal::ProviderError(failure) => ConnectionState {
            // A provider's report is not a failed aggregation of ours: it does not count.
            consecutive_failures: state.consecutive_failures,
            ..after_failure(state, failure)
        },
        Signal::LoginRepaired => active(None),
        // Informational reasons only qualify a healthy connection; a broken one stays broken.
        Signal::ConsentExpiring if state.status == ConnectionStatus::Active => {
            active(Some(StatusReason::AccessExpiringSoon))
        }
        Signal::NewAccountsAvailable if state.status == ConnectionStatus::Active => {
            active(Some(StatusReason::NewAccountsAvailable))
        }
        Signal::ConsentExpiring | Signal::NewAccountsAvailable => state,
        Signal::Revoked => ConnectionState {
            status: ConnectionStatus::Deleted,
            reason: None,
            consecutive_failures: state.consecutive_failures,
        },
    }
}

fn after_failure(state: ConnectionState, failure: AggregationFailure) -> ConnectionState {
    use AggregationFailure as F;
    let (status, reason) = match failure {
        F::LoginRequired => (
            ConnectionStatus::ReconnectRequired,
            Some(StatusReason::LoginRequired),
        ),
        F::CredentialsRejected => (
            ConnectionStatus::ReconnectRequired,
            Some(StatusReason::Other),
        ),
        F::TokenExpired => (
            ConnectionStatus::ReconnectRequired,
            Some(StatusReason::TokenExpired),
        ),
        F::InstitutionUnavailable => (
            ConnectionStatus::Degraded,
            Some(StatusReason::InstitutionCurrentlyUnavailable),
        ),
        F::InstitutionActionRequired => (
            ConnectionStatus::Degraded,
            Some(StatusReason::InstitutionActionRequired),
        ),
        F::ProviderUnavailable => (
            ConnectionStatus::Degraded,
            Some(StatusReason::ServiceProviderCurrentlyUnavailable),
        ),
        F::Unforeseen => (ConnectionStatus::Undetermined, None),
    };
    let consecutive_failures = match failure {
        F::ProviderUnavailable => state.consecutive_failures,
        _ => state.consecutive_failures + 1,
    };
    if status != ConnectionStatus::ReconnectRequired
        && consecutive_failures >= MAX_CONSECUTIVE_FAILURES
    {
        return ConnectionState {
            status: ConnectionStatus::Unrecoverable,
            reason: Some(StatusReason::ContinuedAggregationFailures),
            consecutive_failures,
        };
    }
    ConnectionState {
        status,
        reason,
        consecutive_failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVE: ConnectionState = ConnectionState {
        status: ConnectionStatus::Active,
        reason: None,
        consecutive_failures: 0,
    };

    #[test]
    fn a_provider_outage_degrades_and_never_makes_it_unrecoverable() {
        let fail = Signal::AggregationFailed(AggregationFailure::ProviderUnavailable);
        let (first, effects) = apply(ACTIVE, fail);
        assert_eq!(first.status, ConnectionStatus::Degraded);
        assert_eq!(
            first.reason,
            Some(StatusReason::ServiceProviderCurrentlyUnavailable)
        );
        assert_eq!(effects.len(), 1);
        let mut state = first;
        for _ in 0..10 {
            let (next, effects) = apply(state, fail);
            assert_eq!(next, first, "the outage is not the connection's failure");
            assert!(effects.is_empty(), "no change, nothing to say");
            state = next;
        }
    }

    #[test]
    fn the_third_failure_of_the_institution_makes_it_unrecoverable() {
        let fail = Signal::AggregationFailed(AggregationFailure::InstitutionUnavailable);
        let (first, _) = apply(ACTIVE, fail);
        assert_eq!(first.status, ConnectionStatus::Degraded);
        // An outage between the failures neither counts nor resets the count.
        let (outage, _) = apply(
            first,
            Signal::AggregationFailed(AggregationFailure::ProviderUnavailable),
        );
        assert_eq!(outage.consecutive_failures, 1);
        let (second, effects) = apply(outage, fail);
        assert_eq!(second.status, ConnectionStatus::Degraded);
        assert_eq!(effects.len(), 1, "back to the institution's reason");
        let (third, effects) = apply(second, fail);
        assert_eq!(third.status, ConnectionStatus::Unrecoverable);
        assert_eq!(
            third.reason,
            Some(StatusReason::ContinuedAggregationFailures)
        );
        assert_eq!(
            effects,
            vec![Effect::StatusChanged {
                old: ConnectionStatus::Degraded,
                new: ConnectionStatus::Unrecoverable,
                reason: Some(StatusReason::ContinuedAggregationFailures),
            }]
        );
    }

    #[test]
    fn login_required_asks_the_customer_to_act() {
        let (next, effects) = apply(
            ACTIVE,
            Signal::AggregationFailed(AggregationFailure::LoginRequired),
        );
        assert_eq!(next.status, ConnectionStatus::ReconnectRequired);
        assert_eq!(
            effects,
            vec![
                Effect::StatusChanged {
                    old: ConnectionStatus::Active,
                    new: ConnectionStatus::ReconnectRequired,
                    reason: Some(StatusReason::LoginRequired),
                },
                Effect::CustomerActionRequired(StatusReason::LoginRequired),
            ]
        );
    }

    #[test]
    fn success_heals_with_one_status_change_and_resets_the_count() {
        let degraded = ConnectionState {
            status: ConnectionStatus::Degraded,
            reason: Some(StatusReason::InstitutionCurrentlyUnavailable),
            consecutive_failures: 2,
        };
        let (next, effects) = apply(degraded, Signal::AggregationSucceeded);
        assert_eq!(next, ACTIVE);
        assert_eq!(effects.len(), 1);
        let (again, effects) = apply(next, Signal::AggregationSucceeded);
        assert_eq!(again, ACTIVE);
        assert!(effects.is_empty());
    }

    #[test]
    fn an_inactive_duplicate_is_moved_only_by_its_end() {
        let duplicate = ConnectionState {
            status: ConnectionStatus::PartiallyActive,
            reason: Some(StatusReason::InactiveDuplicate),
            consecutive_failures: 0,
        };
        assert!(!duplicate.is_refreshable());
        for signal in [
            Signal::AggregationSucceeded,
            Signal::ProviderError(AggregationFailure::LoginRequired),
            Signal::NewAccountsAvailable,
        ] {
            assert_eq!(apply(duplicate, signal), (duplicate, Vec::new()));
        }
        let (revoked, _) = apply(duplicate, Signal::Revoked);
        assert_eq!(revoked.status, ConnectionStatus::Deleted);
    }

    #[test]
    fn deleted_connections_stay_deleted() {
        let deleted = ConnectionState {
            status: ConnectionStatus::Deleted,
            reason: None,
            consecutive_failures: 0,
        };
        let (next, effects) = apply(deleted, Signal::AggregationSucceeded);
        assert_eq!(next, deleted);
        assert!(effects.is_empty());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn failure() -> impl Strategy<Value = AggregationFailure> {
        prop_oneof![
            Just(AggregationFailure::LoginRequired),
            Just(AggregationFailure::CredentialsRejected),
            Just(AggregationFailure::TokenExpired),
            Just(AggregationFailure::InstitutionUnavailable),
            Just(AggregationFailure::InstitutionActionRequired),
            Just(AggregationFailure::ProviderUnavailable),
            Just(AggregationFailure::Unforeseen),
        ]
    }

    fn report() -> impl Strategy<Value = Signal> {
        prop_oneof![
            failure().prop_map(Signal::ProviderError),
            Just(Signal::LoginRepaired),
            Just(Signal::ConsentExpiring),
            Just(Signal::NewAccountsAvailable),
            Just(Signal::Revoked),
        ]
    }

    fn signal() -> impl Strategy<Value = Signal> {
        prop_oneof![
            Just(Signal::AggregationSucceeded),
            failure().prop_map(Signal::AggregationFailed),
        ]
    }

    proptest! {
        /// Whatever happens, the status and its reason stay a pair Meld's table allows, and a
        /// status change is announced exactly when the pair changes.
        #[test]
        fn every_sequence_leaves_a_valid_state(signals in prop::collection::vec(signal(), 0..40)) {
            let mut state = ConnectionState {
                status: ConnectionStatus::Active,
                reason: None,
                consecutive_failures: 0,
            };
            for signal in signals {
                let (next, effects) = apply(state, signal);
                prop_assert!(next.reason.is_none_or(|r| next.status.accepts_reason(r)));
                prop_assert!(next.consecutive_failures >= 0);
                let changed = (next.status, next.reason) != (state.status, state.reason);
                let announced = effects.iter().any(|e| matches!(e, Effect::StatusChanged { .. }));
                prop_assert_eq!(changed, announced);
                if signal == Signal::AggregationSucceeded {
                    prop_assert_eq!(next.status, ConnectionStatus::Active);
                }
                state = next;
            }
        }

        /// Provider reports delivered in any order, with duplicates: the state stays valid, a
        /// report older than the newest applied one changes nothing, and any report applied
        /// again right after itself changes nothing and says nothing.
        #[test]
        fn reordered_and_repeated_reports_never_roll_back_nor_repeat(
            reports in prop::collection::vec((report(), 0i64..50), 1..40),
            repeats in prop::collection::vec(0usize..40, 0..20),
        ) {
            let mut deliveries: Vec<(Signal, i64)> = reports.clone();
            for index in repeats {
                deliveries.push(reports[index % reports.len()]);
            }
            let mut state = ConnectionState {
                status: ConnectionStatus::Active,
                reason: None,
                consecutive_failures: 0,
            };
            let mut as_of: Option<DateTime<Utc>> = None;
            for (signal, second) in deliveries {
                let signed_at = DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap();
                if is_stale(as_of, signed_at) {
                    continue;
                }
                let (next, _) = apply(state, signal);
                prop_assert!(next.reason.is_none_or(|r| next.status.accepts_reason(r)));
                let (again, effects) = apply(next, signal);
                prop_assert_eq!(again, next, "{:?} applied twice", signal);
                prop_assert!(effects.is_empty());
                state = next;
                as_of = Some(as_of.map_or(signed_at, |t| t.max(signed_at)));
                prop_assert!(is_stale(as_of, signed_at - chrono::Duration::seconds(1)));
            }
        }

        /// A success replayed changes nothing and says nothing.
        #[test]
        fn a_replayed_success_changes_nothing(signals in prop::collection::vec(signal(), 0..20)) {
            let mut state = ConnectionState {
                status: ConnectionStatus::Degraded,
                reason: Some(StatusReason::ServiceProviderCurrentlyUnavailable),
                consecutive_failures: 1,
            };
            for signal in signals {
                state = apply(state, signal).0;
            }
            let (once, _) = apply(state, Signal::AggregationSucceeded);
            let (twice, effects) = apply(once, Signal::AggregationSucceeded);
            prop_assert_eq!(once, twice);
            prop_assert!(effects.is_empty());
        }
    }
}
