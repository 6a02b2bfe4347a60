//! `/transactions/sync` over real HTTP with the client: paging, the historical update,
//! mutations, and the mutation-during-pagination fault.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use chrono::{Days, Utc};

use linkstate::providers::plaid::{
    HISTORICAL_UPDATE_COMPLETE, INITIAL_UPDATE_COMPLETE, PlaidError, Transaction,
    TransactionsSyncResponse,
};
use linkstate_sim::{DEFAULT_TRANSACTIONS, Mutation, Simulator};
use linkstate_testing::plaid::{client, rule, start, sync_to_end};

/// Every added transaction of the pages, checking none comes twice.
fn added_once(pages: &[TransactionsSyncResponse]) -> Vec<&Transaction> {
    let added: Vec<_> = pages.iter().flat_map(|page| &page.added).collect();
    let ids: HashSet<_> = added.iter().map(|t| &t.transaction_id).collect();
    assert_eq!(ids.len(), added.len(), "no transaction comes twice");
    added
}

/// The ids of the transactions a client may know of now.
fn visible_ids(sim: &Simulator, item_id: &str) -> BTreeSet<String> {
    sim.visible_transaction_ids(item_id).unwrap()
}

fn ids<'a>(transactions: impl IntoIterator<Item = &'a Transaction>) -> BTreeSet<String> {
    transactions
        .into_iter()
        .map(|t| t.transaction_id.clone())
        .collect()
}

#[tokio::test]
async fn paging_returns_every_available_transaction_exactly_once() {
    let (sim, url) = start().await;
    sim.set_auto_historical(false);
    let item = sim.create_item("ins_109508");
    let plaid = client(&url);

    let pages = sync_to_end(&plaid, &item.access_token, None, 7).await;
    assert!(pages.len() > 1, "several pages");
    assert!(pages[..pages.len() - 1].iter().all(|page| page.has_more));
    let added = added_once(&pages);
    assert_eq!(ids(added.iter().copied()), visible_ids(&sim, &item.item_id));
    let month_ago = Utc::now().date_naive() - Days::new(31);
    assert!(
        added.iter().all(|t| t.date >= month_ago),
        "only the last 30 days"
    );
    for page in &pages {
        assert_eq!(page.transactions_update_status, INITIAL_UPDATE_COMPLETE);
        assert!(page.modified.is_empty() && page.removed.is_empty());
        assert_eq!(page.accounts.len(), 4, "the CD has no transactions");
    }

    let last = pages.last().unwrap().next_cursor.clone();
    let again = plaid
        .transactions_sync(&item.access_token, Some(&last), 100)
        .await
        .unwrap();
    assert!(again.added.is_empty() && !again.has_more);
    assert_eq!(again.next_cursor, last, "nothing new, same position");
}

#[tokio::test]
async fn historical_transactions_come_after_the_historical_update() {
    let (sim, url) = start().await;
    sim.set_auto_historical(false);
    let item = sim.create_item("ins_109509");
    let plaid = client(&url);
    let initial = sync_to_end(&plaid, &item.access_token, None, 100).await;
    let cursor = initial.last().unwrap().next_cursor.clone();
    let quiet = plaid
        .transactions_sync(&item.access_token, Some(&cursor), 100)
        .await
        .unwrap();
    assert!(quiet.added.is_empty(), "the history waits");
    assert_eq!(quiet.transactions_update_status, INITIAL_UPDATE_COMPLETE);

    sim.complete_historical(&item.item_id);
    let history = sync_to_end(&plaid, &item.access_token, Some(cursor), 100).await;
    assert!(
        history
            .iter()
            .all(|page| page.transactions_update_status == HISTORICAL_UPDATE_COMPLETE)
    );
    let month_ago = Utc::now().date_naive() - Days::new(30);
    let older = added_once(&history);
    assert!(older.iter().all(|t| t.date < month_ago));
    let mut all = ids(added_once(&initial));
    let count = all.len() + older.len();
    all.extend(ids(older));
    assert_eq!(all.len(), count, "initial and historical are disjoint");
    assert_eq!(all.len(), DEFAULT_TRANSACTIONS);
}

#[tokio::test]
async fn the_historical_update_completes_by_itself_after_the_first_pagination() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109510");
    let plaid = client(&url);
    let initial = sync_to_end(&plaid, &item.access_token, None, 500).await;
    assert_eq!(
        initial.last().unwrap().transactions_update_status,
        INITIAL_UPDATE_COMPLETE,
        "the page that ends the pagination was answered before"
    );
    let cursor = initial.last().unwrap().next_cursor.clone();
    let history = sync_to_end(&plaid, &item.access_token, Some(cursor), 500).await;
    assert_eq!(
        history[0].transactions_update_status,
        HISTORICAL_UPDATE_COMPLETE
    );
    let total = added_once(&initial).len() + added_once(&history).len();
    assert_eq!(total, DEFAULT_TRANSACTIONS);
}

#[tokio::test]
async fn ten_thousand_transactions_sync_in_pages_of_500() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109511");
    let started = Instant::now();
    sim.set_history(&item.item_id, 10_000);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let plaid = client(&url);
    let initial = sync_to_end(&plaid, &item.access_token, None, 500).await;
    let cursor = initial.last().unwrap().next_cursor.clone();
    let history = sync_to_end(&plaid, &item.access_token, Some(cursor), 500).await;
    assert!(history.iter().all(|page| page.added.len() <= 500));
    assert!(history.len() >= 19, "{} pages", history.len());
    let mut all = ids(added_once(&initial));
    all.extend(ids(added_once(&history)));
    assert_eq!(all.len(), 10_000);
    let accounts: HashSet<_> = history
        .iter()
        .flat_map(|page| &page.added)
        .map(|t| &t.account_id)
        .collect();
    assert_eq!(accounts.len(), 4, "spread over the accounts");
}

#[tokio::test]
async fn a_sync_after_mutate_answers_exactly_the_changes() {
    let (sim, url) = start().await;
    sim.set_auto_historical(false);
    let item = sim.create_item("ins_109508");
    let plaid = client(&url);
    let initial = sync_to_end(&plaid, &item.access_token, None, 500).await;
    let known: Vec<Transaction> = initial.iter().flat_map(|p| p.added.clone()).collect();
    let cursor = initial.last().unwrap().next_cursor.clone();

    let mutation = Mutation {
        add: 5,
        modify: 4,
        remove: 3,
    };
    let outcome = sim.mutate(&item.item_id, mutation);
    assert_eq!(
        (
            outcome.added.len(),
            outcome.modified.len(),
            outcome.removed.len()
        ),
        (5, 4, 3)
    );
    let pages = sync_to_end(&plaid, &item.access_token, Some(cursor), 100).await;
    let added: BTreeSet<_> = ids(pages.iter().flat_map(|p| &p.added));
    let modified: Vec<_> = pages.iter().flat_map(|p| p.modified.clone()).collect();
    let removed: BTreeSet<_> = pages
        .iter()
        .flat_map(|p| &p.removed)
        .map(|r| r.transaction_id.clone())
        .collect();
    assert_eq!(added, outcome.added.iter().cloned().collect());
    assert_eq!(ids(&modified), outcome.modified.iter().cloned().collect());
    assert_eq!(removed, outcome.removed.iter().cloned().collect());

    let mut posted = 0;
    for new in &modified {
        let old = known
            .iter()
            .find(|t| t.transaction_id == new.transaction_id)
            .expect("a modified transaction was known");
        let changed =
            old.amount != new.amount || old.name != new.name || old.pending != new.pending;
        assert!(changed, "{} did not change", new.transaction_id);
        assert!(!new.pending, "a change never makes a transaction pending");
        if old.pending {
            posted += 1;
        }
    }
    let was_pending = known.iter().filter(|t| t.pending).count();
    assert_eq!(posted, was_pending.min(4), "pending ones post first");
    let removed_accounts = pages.iter().flat_map(|p| &p.removed);
    assert!(removed_accounts.into_iter().all(|r| r.account_id.is_some()));
}

#[tokio::test]
async fn mutation_during_pagination_is_answered_once_on_the_second_page() {
    let (sim, url) = start().await;
    sim.set_auto_historical(false);
    let item = sim.create_item("ins_109508");
    let plaid = client(&url);
    sim.mutate_during_next_pagination(&item.item_id);

    let first = plaid
        .transactions_sync(&item.access_token, None, 3)
        .await
        .unwrap();
    assert!(first.has_more);
    let error = plaid
        .transactions_sync(&item.access_token, Some(&first.next_cursor), 3)
        .await
        .unwrap_err();
    let PlaidError::Api {
        http_status,
        error: body,
    } = &error
    else {
        panic!("expected an API error, got {error:?}");
    };
    assert_eq!(*http_status, 400);
    assert_eq!(body.error_type, "TRANSACTIONS_ERROR");
    assert_eq!(
        body.error_code,
        "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"
    );

    let restarted = sync_to_end(&plaid, &item.access_token, None, 3).await;
    assert_eq!(
        ids(added_once(&restarted).into_iter()),
        visible_ids(&sim, &item.item_id),
        "starting over succeeds"
    );
}

#[tokio::test]
async fn bad_counts_and_cursors_are_invalid_fields() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let other = sim.create_item("ins_109508");
    let plaid = client(&url);
    let error = plaid
        .transactions_sync(&item.access_token, None, 501)
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("INVALID_FIELD"));
    let page = plaid
        .transactions_sync(&other.access_token, None, 1)
        .await
        .unwrap();
    let error = plaid
        .transactions_sync(&item.access_token, Some(&page.next_cursor), 10)
        .await
        .unwrap_err();
    assert_eq!(
        error.error_code(),
        Some("INVALID_FIELD"),
        "another item's cursor"
    );
    let now = plaid
        .transactions_sync(&item.access_token, Some("now"), 10)
        .await
        .unwrap();
    assert!(now.added.is_empty() && !now.has_more);
}

#[tokio::test]
async fn injected_errors_reach_transactions_sync() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let plaid = client(&url);
    let mut limited = rule(
        "/transactions/sync",
        429,
        "RATE_LIMIT_EXCEEDED",
        "RATE_LIMIT",
    );
    limited.times = Some(1);
    sim.inject_error(limited);
    let error = plaid
        .transactions_sync(&item.access_token, None, 10)
        .await
        .unwrap_err();
    assert_eq!(error.http_status(), Some(429));
    assert!(error.is_retryable());

    let mut login = rule(
        "/transactions/sync",
        400,
        "ITEM_ERROR",
        "ITEM_LOGIN_REQUIRED",
    );
    login.times = Some(1);
    sim.inject_error(login);
    let error = plaid
        .transactions_sync(&item.access_token, None, 10)
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("ITEM_LOGIN_REQUIRED"));
    plaid
        .transactions_sync(&item.access_token, None, 10)
        .await
        .unwrap();
}
