//! Meld's connection statuses and the reasons that qualify them.

meld_name_enum! {
    /// Where a connection stands, as Meld names it.
    pub enum ConnectionStatus {
        /// The customer is in a connect flow.
        InProgress,
        /// The connect flow was abandoned; terminal.
        Expired,
        /// Aggregating normally.
        Active,
        /// Some products or accounts aggregate.
        PartiallyActive,
        /// Temporarily failing on the institution's or provider's side.
        Degraded,
        /// The customer must log in again; no longer updated.
        ReconnectRequired,
        /// Aggregation failed too often to keep trying.
        Unrecoverable,
        /// Deleted; terminal.
        Deleted,
        /// An unforeseen provider or internal error.
        Undetermined,
    }
}

meld_name_enum! {
    /// Why a connection has its status.
    pub enum StatusReason {
        /// ACTIVE: consent ends soon.
        AccessExpiringSoon,
        /// ACTIVE: the institution has accounts the customer has not shared yet.
        NewAccountsAvailable,
        /// PARTIALLY_ACTIVE: some products failed.
        PartialAggregationSuccess,
        /// PARTIALLY_ACTIVE: another connection to the same login is the active one.
        InactiveDuplicate,
        /// DEGRADED: the institution is down.
        InstitutionCurrentlyUnavailable,
        /// DEGRADED: the institution needs something done on its side.
        InstitutionActionRequired,
        /// DEGRADED: the provider is down.
        ServiceProviderCurrentlyUnavailable,
        /// DEGRADED: the institution needs an interactive refresh.
        InteractiveRefresh,
        /// RECONNECT_REQUIRED: the login changed or needs MFA.
        LoginRequired,
        /// RECONNECT_REQUIRED: the provider is repairing its institution link.
        RepairingInstitution,
        /// RECONNECT_REQUIRED: the provider token expired.
        TokenExpired,
        /// RECONNECT_REQUIRED: another reason.
        Other,
        /// UNRECOVERABLE: aggregation failed three times in a row.
        ContinuedAggregationFailures,
    }
}

impl ConnectionStatus {
    /// Whether a refresh may be asked for (Meld answers 409 otherwise).
    pub fn allows_refresh(self) -> bool {
        matches!(
            self,
            Self::Active | Self::PartiallyActive | Self::Degraded | Self::Undetermined
        )
    }

    /// Whether `reason` may qualify this status, per Meld's status table.
    pub fn accepts_reason(self, reason: StatusReason) -> bool {
        use StatusReason as R;
        match self {
            Self::Active => matches!(reason, R::AccessExpiringSoon | R::NewAccountsAvailable),
            Self::PartiallyActive => {
                matches!(reason, R::PartialAggregationSuccess | R::InactiveDuplicate)
            }
            Self::Degraded => matches!(
                reason,
                R::InstitutionCurrentlyUnavailable
                    | R::InstitutionActionRequired
                    | R::ServiceProviderCurrentlyUnavailable
                    | R::InteractiveRefresh
            ),
            Self::ReconnectRequired => matches!(
                reason,
                R::LoginRequired | R::RepairingInstitution | R::TokenExpired | R::Other
            ),
            Self::Unrecoverable => reason == R::ContinuedAggregationFailures,
            Self::InProgress | Self::Expired | Self::Deleted | Self::Undetermined => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_meld_writes_them() {
        assert_eq!(
            ConnectionStatus::ReconnectRequired.as_str(),
            "RECONNECT_REQUIRED"
        );
        assert_eq!("IN_PROGRESS".parse(), Ok(ConnectionStatus::InProgress));
        assert_eq!(StatusReason::LoginRequired.as_str(), "LOGIN_REQUIRED");
    }

    #[test]
    fn refresh_follows_meld() {
        assert!(ConnectionStatus::Degraded.allows_refresh());
        assert!(!ConnectionStatus::ReconnectRequired.allows_refresh());
        assert!(!ConnectionStatus::InProgress.allows_refresh());
    }

    #[test]
    fn reasons_belong_to_their_status() {
        assert!(ConnectionStatus::ReconnectRequired.accepts_reason(StatusReason::LoginRequired));
        assert!(!ConnectionStatus::Active.accepts_reason(StatusReason::LoginRequired));
    }
}
