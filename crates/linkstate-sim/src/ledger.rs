//! An Item's transactions as `/transactions/sync` sees them: a log of changes (added, modified,
//! removed) that cursors point into. The part older than 30 days is held back until the
//! historical update completes, then joins the log as additions.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use super::dice::Dice;
use super::history::Generator;
use super::ids;
use linkstate_wire::plaid::{
    AccountBase, HISTORICAL_UPDATE_COMPLETE, INITIAL_UPDATE_COMPLETE, RemovedTransaction,
    Transaction,
};

/// How far back the initial update reaches, as Plaid's.
const INITIAL_DAYS: u64 = 30;

/// Changes to make to an Item's transactions with [`super::Simulator::mutate`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mutation {
    /// New transactions, dated in the last few days, some pending.
    pub add: usize,
    /// Existing transactions to change: pending ones post first, then amounts or descriptions
    /// of posted ones are corrected.
    pub modify: usize,
    /// Existing transactions to remove.
    pub remove: usize,
}

/// The transaction ids a [`Mutation`] touched; fewer than asked when the Item has too few.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutationOutcome {
    /// The new transactions.
    pub added: Vec<String>,
    /// The changed transactions.
    pub modified: Vec<String>,
    /// The removed transactions.
    pub removed: Vec<String>,
}

/// One entry of the change log.
#[derive(Debug, Clone)]
enum Change {
    Added(Transaction),
    Modified(Transaction),
    Removed(RemovedTransaction),
}

/// One page of changes.
#[derive(Debug, Default)]
pub struct Page {
    /// Transactions added in the page.
    pub added: Vec<Transaction>,
    /// Transactions modified in the page.
    pub modified: Vec<Transaction>,
    /// Transactions removed in the page.
    pub removed: Vec<RemovedTransaction>,
    /// The log position after the page.
    pub next: usize,
    /// Whether the log goes on after the page.
    pub has_more: bool,
}

/// Where a planned `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PaginationFault {
    /// None planned.
    Off,
    /// Planned for the second page of the next pagination.
    Armed,
    /// A first page with more to come was served: the next call fails.
    Due,
}

/// An Item's transactions and their history of changes.
#[derive(Debug, Clone)]
pub struct Ledger {
    log: Vec<Change>,
    /// The transactions a client can know of, by id.
    visible: BTreeMap<String, Transaction>,
    /// The transactions older than 30 days, until the historical update.
    held_back: Vec<Transaction>,
    historical_complete: bool,
    fault: PaginationFault,
    generator: Generator,
    /// Picks the transactions a mutation touches.
    dice: Dice,
}

impl Ledger {
    /// The ledger of a new Item: `count` transactions over two years, the last 30 days in the log.
    pub fn new(item_id: &str, accounts: &[AccountBase], count: usize, today: NaiveDate) -> Self {
        let mut generator = Generator::new(item_id, accounts);
        let history = generator.history(count, today);
        let start = today - Days::new(INITIAL_DAYS);
        let (recent, held_back): (Vec<_>, Vec<_>) = history
            .into_iter()
            .partition(|transaction| transaction.date >= start);
        let mut ledger = Self {
            log: Vec::with_capacity(count),
            visible: BTreeMap::new(),
            held_back,
            historical_complete: false,
            fault: PaginationFault::Off,
            generator,
            dice: Dice::new(ids::derived_u64(&format!("{item_id}:mutations"))),
        };
        ledger.add_all(recent);
        ledger
    }

    /// `INITIAL_UPDATE_COMPLETE` until the historical update, then `HISTORICAL_UPDATE_COMPLETE`.
    pub fn status(&self) -> &'static str {
        if self.historical_complete {
            HISTORICAL_UPDATE_COMPLETE
        } else {
            INITIAL_UPDATE_COMPLETE
        }
    }

    /// Whether the historical update has completed.
    pub fn historical_complete(&self) -> bool {
        self.historical_complete
    }

    /// The position after the last change: where a fully synced cursor points.
    pub fn end(&self) -> usize {
        self.log.len()
    }

    /// Up to `count` changes from position `from` (at most [`Ledger::end`]).
    pub fn page(&self, from: usize, count: usize) -> Page {
        let to = from.saturating_add(count).min(self.log.len());
        let mut page = Page {
            next: to,
            has_more: to < self.log.len(),
            ..Page::default()
        };
        for change in &self.log[from..to] {
            match change {
                Change::Added(transaction) => page.added.push(transaction.clone()),
                Change::Modified(transaction) => page.modified.push(transaction.clone()),
                Change::Removed(removed) => page.removed.push(removed.clone()),
            }
        }
        page
    }

    /// Releases the held-back history as additions; `false` if it was already out.
    pub fn complete_historical(&mut self) -> bool {
        if self.historical_complete {
            return false;
        }
        self.historical_complete = true;
        let history = std::mem::take(&mut self.held_back);
        self.add_all(history);
        true
    }

    /// Applies `mutation` to the visible transactions. Modified and removed ones are distinct,
    /// and picked by the Item's dice so a run can be replayed.
    pub fn mutate(&mut self, mutation: Mutation, today: NaiveDate) -> MutationOutcome {
        let mut outcome = MutationOutcome::default();
        let (mut pending, mut posted) = (Vec::new(), Vec::new());
        for transaction in self.visible.values() {
            let id = transaction.transaction_id.clone();
            if transaction.pending {
                pending.push(id);
            } else {
                posted.push(id);
            }
        }
        self.dice.shuffle(&mut pending);
        self.dice.shuffle(&mut posted);
        // Pending ones come first: posting is the most common change in real data.
        let mut candidates = pending.into_iter().chain(posted);
        for id in candidates.by_ref().take(mutation.modify) {
            let mut transaction = self.visible[&id].clone();
            self.generator.change(&mut transaction, today);
            self.visible.insert(id.clone(), transaction.clone());
            self.log.push(Change::Modified(transaction));
            outcome.modified.push(id);
        }
        for id in candidates.take(mutation.remove) {
            let transaction = self.visible.remove(&id).expect("a visible transaction");
            self.log.push(Change::Removed(RemovedTransaction {
                transaction_id: id.clone(),
                account_id: Some(transaction.account_id),
            }));
            outcome.removed.push(id);
        }
        let fresh: Vec<Transaction> = (0..mutation.add)
            .filter_map(|_| self.generator.fresh(today))
            .collect();
        outcome.added = fresh.iter().map(|t| t.transaction_id.clone()).collect();
        self.add_all(fresh);
        outcome
    }

    /// Plans a `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION` for the next pagination.
    pub fn arm_pagination_fault(&mut self) {
        self.fault = PaginationFault::Armed;
    }

    /// Whether this call is the one to fail; the fault happens once.
    pub fn take_pagination_fault(&mut self) -> bool {
        let due = self.fault == PaginationFault::Due;
        if due {
            self.fault = PaginationFault::Off;
        }
        due
    }

    /// Notes a page served: an armed fault falls due once a page says more is coming.
    pub fn served(&mut self, page: &Page) {
        if page.has_more && self.fault == PaginationFault::Armed {
            self.fault = PaginationFault::Due;
        }
    }

    /// Every visible transaction, by id.
    pub fn visible(&self) -> &BTreeMap<String, Transaction> {
        &self.visible
    }

    /// Every transaction, the held-back history too: Akoya has no historical update, so it
    /// serves all of them from the start.
    pub fn all(&self) -> impl Iterator<Item = &Transaction> {
        self.visible.values().chain(&self.held_back)
    }

    /// Adds transactions made elsewhere (those of an account shared later), as additions.
    pub fn insert(&mut self, transactions: Vec<Transaction>) {
        self.add_all(transactions);
    }

    fn add_all(&mut self, transactions: Vec<Transaction>) {
        for transaction in transactions {
            self.visible
                .insert(transaction.transaction_id.clone(), transaction.clone());
            self.log.push(Change::Added(transaction));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::accounts;

    #[test]
    fn all_includes_the_held_back_history() {
        let today = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
        let mut ledger = Ledger::new("item-a", &accounts::generate("item-a"), 300, today);
        let all: BTreeSet<_> = ledger.all().map(|t| t.transaction_id.clone()).collect();
        assert_eq!(all.len(), 300);
        assert!(ledger.visible().len() < all.len(), "some are held back");
        assert!(ledger.visible().keys().all(|id| all.contains(id)));

        ledger.complete_historical();
        let after: BTreeSet<_> = ledger.all().map(|t| t.transaction_id.clone()).collect();
        assert_eq!(after, all, "the same transactions, none twice");
    }
}
