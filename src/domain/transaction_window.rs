//! The changes a pull of a date window implies, for a provider without a transactions cursor
//! (Akoya): what it lists now is compared with what is stored for the same accounts and dates.
//!
//! The changes are ordinary [`SyncChange`]s, so [`super::transactions::net_effect`], the events
//! and the writes are the same as for a provider that reports changes itself.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};

use super::transactions::{ProviderTransaction, SyncChange};

/// The stretch a pull covered: these accounts, transactions dated `from` to `to` inclusive, by
/// the day a provider filters on: the posting day, or the transaction day while pending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The provider ids of the accounts whose transactions were read in full.
    pub accounts: BTreeSet<String>,
    /// The first day read.
    pub from: NaiveDate,
    /// The last day read.
    pub to: NaiveDate,
}

impl Window {
    /// Whether a stored transaction is one this pull must list again if it still exists.
    pub fn covers(&self, transaction: &ProviderTransaction) -> bool {
        self.accounts.contains(&transaction.provider_account_id)
            && (self.from..=self.to).contains(&filtered_day(transaction))
    }
}

/// The day a window filters a transaction on.
pub fn filtered_day(transaction: &ProviderTransaction) -> NaiveDate {
    transaction
        .posted_date
        .unwrap_or(transaction.transaction_date)
}

/// Days read at a connection's first pull.
pub const FIRST_PULL_DAYS: u64 = 30;

/// Days before the last successful pull that a pull reads again: postings arrive late, and a
/// pending transaction may post days later under a new id.
pub const OVERLAP_DAYS: u64 = 7;

/// The first day a pull on `today` reads: the last 30 days the first time; afterwards from the
/// day of the last successful pull minus the overlap, however long ago that was, so that a
/// connection that was broken for a while misses nothing.
pub fn pull_from(last_pulled: Option<NaiveDate>, today: NaiveDate) -> NaiveDate {
    match last_pulled {
        None => today - Days::new(FIRST_PULL_DAYS),
        Some(last) => last.min(today) - Days::new(OVERLAP_DAYS),
    }
}

/// The changes from `stored` (what linkstate holds for the window's accounts) to `pulled` (what
/// the provider lists for the window now):
///
/// - an id not stored is added;
/// - a stored id whose fields differ is modified;
/// - a stored id inside the window that the provider no longer lists is removed. A pending
///   transaction that posts under a new id is therefore removed, and the posted one added, as
///   Meld reports it;
/// - a stored transaction outside the window, or of an account not read, is left alone.
///
/// An id listed twice (pages that overlapped while the provider's data moved) counts once, as
/// its last listing. The changes come in id order, removals last.
pub fn changes(
    window: &Window,
    stored: &[ProviderTransaction],
    pulled: Vec<ProviderTransaction>,
) -> Vec<SyncChange> {
    let stored: BTreeMap<&str, &ProviderTransaction> = stored
        .iter()
        .map(|t| (t.provider_transaction_id.as_str(), t))
        .collect();
    let pulled: BTreeMap<String, ProviderTransaction> = pulled
        .into_iter()
        .map(|t| (t.provider_transaction_id.clone(), t))
        .collect();
    let mut changes = Vec::new();
    for (id, now) in &pulled {
        match stored.get(id.as_str()) {
            None => changes.push(SyncChange::Added(now.clone())),
            Some(before) if *before != now => changes.push(SyncChange::Modified(now.clone())),
            Some(_) => {}
        }
    }
    for (id, before) in &stored {
        if window.covers(before) && !pulled.contains_key(*id) {
            changes.push(SyncChange::Removed(
                id.to_string(),
                Some(before.provider_account_id.clone()),
            ));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bigdecimal::BigDecimal;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::transactions::{TransactionStatus, net_effect};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn tx(
        id: &str,
        account: &str,
        cents: i64,
        on: u32,
        status: TransactionStatus,
    ) -> ProviderTransaction {
        ProviderTransaction {
            provider_transaction_id: id.into(),
            provider_account_id: account.into(),
            amount: BigDecimal::new(cents.into(), 2),
            currency: Some("USD".into()),
            description: format!("purchase {id}"),
            status,
            transaction_date: day(on),
            posted_date: None,
        }
    }

    fn posted(id: &str, account: &str, cents: i64, on: u32) -> ProviderTransaction {
        tx(id, account, cents, on, TransactionStatus::Posted)
    }

    fn window(accounts: &[&str], from: u32, to: u32) -> Window {
        Window {
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            from: day(from),
            to: day(to),
        }
    }

    fn stored_map(stored: &[ProviderTransaction]) -> HashMap<String, String> {
        stored
            .iter()
            .map(|t| {
                (
                    t.provider_transaction_id.clone(),
                    t.provider_account_id.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn three_added_two_modified_one_removed_and_one_pending_posted() {
        let pending = tx("p1", "a", 500, 20, TransactionStatus::Pending);
        let stored = vec![
            posted("s1", "a", 100, 10),
            posted("s2", "a", 200, 11),
            posted("s3", "a", 300, 12),
            posted("s4", "a", 400, 13),
            pending,
        ];
        let mut s1 = posted("s1", "a", 150, 10);
        s1.description = "corrected".into();
        let pulled = vec![
            s1,
            posted("s2", "a", 250, 11),
            posted("s3", "a", 300, 12),
            posted("n1", "a", 10, 21),
            posted("n2", "a", 20, 22),
            posted("n3", "a", 30, 23),
            // The pending purchase posted under a new id.
            posted("p1-posted", "a", 500, 20),
        ];
        let changes = changes(&window(&["a"], 1, 30), &stored, pulled);
        let effect = net_effect(&stored_map(&stored), changes);
        let a = &effect.per_account["a"];
        assert_eq!(a.added, 4, "three new and the posted one");
        assert_eq!(a.updated, 2);
        assert_eq!(a.removed, vec!["p1".to_string(), "s4".to_string()]);
    }

    #[test]
    fn what_lies_outside_the_window_or_in_another_account_is_left_alone() {
        let stored = vec![
            posted("old", "a", 100, 1),
            posted("other", "b", 100, 20),
            posted("kept", "a", 100, 20),
        ];
        let pulled = vec![posted("kept", "a", 100, 20)];
        assert!(changes(&window(&["a"], 10, 30), &stored, pulled).is_empty());
    }

    #[test]
    fn a_pull_reads_30_days_first_then_from_a_week_before_the_last_one() {
        assert_eq!(
            pull_from(None, day(30)),
            NaiveDate::from_ymd_opt(2026, 10, 31).unwrap()
        );
        assert_eq!(pull_from(Some(day(29)), day(30)), day(22));
        // Broken for two months: everything since the last good pull is read again.
        let long_ago = NaiveDate::from_ymd_opt(2026, 9, 8).unwrap();
        assert_eq!(
            pull_from(Some(long_ago), day(30)),
            NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()
        );
    }

    #[test]
    fn an_id_listed_twice_counts_once_as_its_last_listing() {
        let pulled = vec![posted("n", "a", 100, 20), posted("n", "a", 120, 20)];
        let changes = changes(&window(&["a"], 1, 30), &[], pulled);
        assert_eq!(changes, vec![SyncChange::Added(posted("n", "a", 120, 20))]);
    }

    /// Stored and pulled transactions over two accounts and ten days, ids from a small pool so
    /// that they overlap.
    fn transactions() -> impl Strategy<Value = Vec<ProviderTransaction>> {
        prop::collection::vec((0..12u8, prop::bool::ANY, 1..4i64, 1..=10u32), 0..12).prop_map(
            |rows| {
                rows.into_iter()
                    .map(|(id, in_a, cents, on)| {
                        let account = if in_a { "a" } else { "b" };
                        (id, posted(&format!("t{id}"), account, cents, on))
                    })
                    .collect::<BTreeMap<_, _>>()
                    .into_values()
                    .collect()
            },
        )
    }

    proptest! {
        /// Applying the changes to what was stored gives what the provider lists, plus what the
        /// pull did not cover; and the same pull again changes nothing.
        #[test]
        fn applying_the_changes_reproduces_the_provider(
            stored in transactions(),
            pulled in transactions(),
            from in 1..=10u32,
            span in 0..10u32,
        ) {
            let window = window(&["a"], from, (from + span).min(10));
            // The provider lists only what lies in the window, for the accounts read.
            let pulled: Vec<_> = pulled.into_iter().filter(|t| window.covers(t)).collect();
            let changes = changes(&window, &stored, pulled.clone());
            let effect = net_effect(&stored_map(&stored), changes);
            let mut after: BTreeMap<String, ProviderTransaction> = stored
                .iter()
                .map(|t| (t.provider_transaction_id.clone(), t.clone()))
                .collect();
            for (id, _) in &effect.removals {
                after.remove(id);
            }
            after.extend(effect.upserts.clone());
            let mut expected: BTreeMap<String, ProviderTransaction> = stored
                .iter()
                .filter(|t| !window.covers(t))
                .map(|t| (t.provider_transaction_id.clone(), t.clone()))
                .collect();
            expected.extend(pulled.iter().map(|t| (t.provider_transaction_id.clone(), t.clone())));
            prop_assert_eq!(&after, &expected);
            let now: Vec<_> = after.into_values().collect();
            prop_assert!(super::changes(&window, &now, pulled).is_empty());
        }
    }
}
