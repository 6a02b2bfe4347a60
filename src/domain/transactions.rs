//! Transactions as providers report them, and the net effect of one sync on what was stored.

use std::collections::{BTreeMap, HashMap};

use bigdecimal::BigDecimal;
use chrono::NaiveDate;

meld_name_enum! {
    /// Whether a transaction has settled.
    pub enum TransactionStatus {
        /// Authorized, not yet settled.
        Pending,
        /// Settled.
        Posted,
    }
}

/// A transaction as a provider reports it, normalized across providers.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderTransaction {
    /// The provider's id (Plaid `transaction_id`).
    pub provider_transaction_id: String,
    /// The provider's id of its account.
    pub provider_account_id: String,
    /// Exact amount, in the provider's sign convention.
    pub amount: BigDecimal,
    /// ISO currency code, if known.
    pub currency: Option<String>,
    /// What it was.
    pub description: String,
    /// Pending or posted.
    pub status: TransactionStatus,
    /// When it happened.
    pub transaction_date: NaiveDate,
    /// When it settled, if it has.
    pub posted_date: Option<NaiveDate>,
}

/// One change a sync reports, in the order the provider reported them.
#[derive(Clone, Debug, PartialEq)]
pub enum SyncChange {
    /// A new transaction.
    Added(ProviderTransaction),
    /// A changed transaction.
    Modified(ProviderTransaction),
    /// A removed transaction (provider id, provider account id when known).
    Removed(String, Option<String>),
}

/// What a whole sync leaves behind, relative to what was stored before it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetEffect {
    /// Transactions to write (new or changed), by provider id.
    pub upserts: BTreeMap<String, ProviderTransaction>,
    /// Stored transactions to delete: (provider id, provider account id).
    pub removals: Vec<(String, String)>,
    /// Per provider account: (added, updated, removed provider ids).
    pub per_account: BTreeMap<String, AccountEffect>,
}

/// The net effect on one account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountEffect {
    /// Transactions that did not exist before and do now.
    pub added: u64,
    /// Transactions that existed before and were changed.
    pub updated: u64,
    /// Provider ids of transactions that existed before and are gone.
    pub removed: Vec<String>,
}

impl NetEffect {
    /// Whether the sync changed anything at all.
    pub fn is_empty(&self) -> bool {
        self.per_account
            .values()
            .all(|a| a.added == 0 && a.updated == 0 && a.removed.is_empty())
    }
}

/// Folds a sync's changes into their net effect.
///
/// `stored` maps the provider ids that existed before the sync to their provider account. A
/// transaction added and then modified counts once as added; one added and removed counts
/// nowhere; one stored, modified and then removed counts as removed.
pub fn net_effect(stored: &HashMap<String, String>, changes: Vec<SyncChange>) -> NetEffect {
    let mut last: BTreeMap<String, Option<ProviderTransaction>> = BTreeMap::new();
    let mut removed_account: HashMap<String, String> = HashMap::new();
    for change in changes {
        match change {
            SyncChange::Added(tx) | SyncChange::Modified(tx) => {
                last.insert(tx.provider_transaction_id.clone(), Some(tx));
            }
            SyncChange::Removed(id, account) => {
                if let Some(account) = account {
                    removed_account.insert(id.clone(), account);
                }
                last.insert(id, None);
            }
        }
    }
    let mut effect = NetEffect::default();
    for (id, state) in last {
        let before = stored.get(&id);
        match (state, before) {
            (Some(tx), before) => {
                let account = effect
                    .per_account
                    .entry(tx.provider_account_id.clone())
                    .or_default();
                if before.is_some() {
                    account.updated += 1;
                } else {
                    account.added += 1;
                }
                effect.upserts.insert(id, tx);
            }
            (None, Some(account_id)) => {
                let account_id = removed_account.get(&id).unwrap_or(account_id).clone();
                effect
                    .per_account
                    .entry(account_id.clone())
                    .or_default()
                    .removed
                    .push(id.clone());
                effect.removals.push((id, account_id));
            }
            (None, None) => {}
        }
    }
    effect
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(id: &str, account: &str, amount: &str) -> ProviderTransaction {
        ProviderTransaction {
            provider_transaction_id: id.into(),
            provider_account_id: account.into(),
            amount: amount.parse().unwrap(),
            currency: Some("USD".into()),
            description: "Coffee".into(),
            status: TransactionStatus::Posted,
            transaction_date: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            posted_date: None,
        }
    }

    #[test]
    fn added_then_modified_counts_once_as_added() {
        let effect = net_effect(
            &HashMap::new(),
            vec![
                SyncChange::Added(tx("t1", "a", "1.00")),
                SyncChange::Modified(tx("t1", "a", "2.00")),
            ],
        );
        assert_eq!(
            effect.per_account["a"],
            AccountEffect {
                added: 1,
                updated: 0,
                removed: vec![]
            }
        );
        assert_eq!(
            effect.upserts["t1"].amount,
            "2.00".parse::<BigDecimal>().unwrap()
        );
    }

    #[test]
    fn added_then_removed_counts_nowhere() {
        let effect = net_effect(
            &HashMap::new(),
            vec![
                SyncChange::Added(tx("t1", "a", "1.00")),
                SyncChange::Removed("t1".into(), Some("a".into())),
            ],
        );
        assert!(effect.is_empty());
        assert!(effect.upserts.is_empty() && effect.removals.is_empty());
    }

    #[test]
    fn stored_ones_are_updated_or_removed() {
        let stored = HashMap::from([
            ("t1".to_string(), "a".to_string()),
            ("t2".to_string(), "b".to_string()),
        ]);
        let effect = net_effect(
            &stored,
            vec![
                SyncChange::Modified(tx("t1", "a", "3.00")),
                SyncChange::Modified(tx("t2", "b", "3.00")),
                SyncChange::Removed("t2".into(), None),
                SyncChange::Added(tx("t3", "b", "1.00")),
            ],
        );
        assert_eq!(
            effect.per_account["a"],
            AccountEffect {
                added: 0,
                updated: 1,
                removed: vec![]
            }
        );
        assert_eq!(
            effect.per_account["b"],
            AccountEffect {
                added: 1,
                updated: 0,
                removed: vec!["t2".into()]
            }
        );
        assert_eq!(effect.removals, vec![("t2".to_string(), "b".to_string())]);
    }

    #[test]
    fn removing_an_unknown_transaction_changes_nothing() {
        let effect = net_effect(&HashMap::new(), vec![SyncChange::Removed("x".into(), None)]);
        assert!(effect.is_empty());
    }
}
