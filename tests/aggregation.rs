//! Aggregation: at import, on demand and on schedule; net transaction effects; failures.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use linkstate::proto::{self, event::Type};
use linkstate_sim::{ErrorRule, Mutation};
use linkstate_testing::{TestApp, authed};
use tonic::Code;

/// Sum of added / updated and all removed ids over an aggregation event's accounts.
fn totals(event: &proto::Event) -> (i64, i64, Vec<String>) {
    let accounts = &payload(event).financial_accounts;
    (
        accounts
            .iter()
            .map(|a| a.num_transactions_added.unwrap())
            .sum(),
        accounts
            .iter()
            .map(|a| a.num_transactions_updated.unwrap())
            .sum(),
        accounts
            .iter()
            .flat_map(|a| a.transaction_ids_removed.clone())
            .collect(),
    )
}

fn last_of(events: &[proto::Event], kind: Type) -> &proto::Event {
    events
        .iter()
        .rev()
        .find(|e| e.event_type == kind as i32)
        .unwrap()
}

fn error_rule(
    endpoint: &str,
    status: u16,
    error_type: &str,
    code: &str,
    times: Option<u32>,
) -> ErrorRule {
    ErrorRule {
        endpoint: endpoint.into(),
        access_token: None,
        http_status: status,
        error_type: error_type.into(),
        error_code: code.into(),
        error_message: format!("simulated {code}"),
        times,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_sends_updating_updated_transactions_then_historical_once() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    app.sim.set_auto_historical(false);
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;

    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) == 1
    })
    .await;
    assert_eq!(
        types(&events),
        vec![
            Type::BankLinkingAccountsUpdating,
            Type::BankLinkingAccountsUpdated,
            Type::BankLinkingTransactionsAggregated
        ]
    );
    let updated = payload(&events[1]);
    assert!(updated.financial_accounts.iter().all(|a| {
        !a.products
            .contains(&(proto::product::Value::Transactions as i32))
    }));
    assert!(updated.financial_accounts.iter().any(|a| {
        a.products
            .contains(&(proto::product::Value::Balances as i32))
    }));
    let stored = all_transactions(&app, &key, &connection.id, 500).await;
    let (added, changed, removed) = totals(&events[2]);
    assert_eq!(added as usize, stored.len());
    assert_eq!((changed, removed.len()), (0, 0));
    assert_eq!(payload(&events[2]).is_partial, Some(false));

    // Plaid finishes the historical load; the next aggregation announces it, once.
    app.sim.complete_historical(&item.item_id);
    refresh(&app, &key, &connection.id).await.unwrap();
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingHistoricalTransactionsAggregated) == 1
    })
    .await;
    let historical = last_of(&events, Type::BankLinkingHistoricalTransactionsAggregated);
    let now_stored = all_transactions(&app, &key, &connection.id, 500).await;
    assert_eq!(
        totals(historical).0 as usize,
        now_stored.len() - stored.len()
    );
    assert!(now_stored.len() > stored.len());
    // Plaid keeps saying the historical load is complete: no second historical event. (Its
    // webhook may add a sync of its own meanwhile: count what is there, then one more.)
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    let updated_so_far = count(
        &all_events(&app, &key).await,
        Type::BankLinkingAccountsUpdated,
    );
    refresh(&app, &key, &connection.id).await.unwrap();
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) > updated_so_far
    })
    .await;
    assert_eq!(
        count(&events, Type::BankLinkingHistoricalTransactionsAggregated),
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_sync_reports_the_exact_net_effect() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    app.sim.set_auto_historical(false);
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) == 1
    })
    .await;
    let before = all_transactions(&app, &key, &connection.id, 500).await;

    app.sim.mutate(
        &item.item_id,
        Mutation {
            add: 3,
            modify: 2,
            remove: 1,
        },
    );
    // The simulator announces the change with a signed SYNC_UPDATES_AVAILABLE, as Plaid does:
    // that webhook alone brings the sync.
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) == 2
    })
    .await;
    let after = all_transactions(&app, &key, &connection.id, 500).await;
    let (added, updated, removed) =
        totals(last_of(&events, Type::BankLinkingTransactionsAggregated));
    assert_eq!((added, updated), (3, 2));
    let before_ids: HashSet<_> = before.iter().map(|t| t.id.clone()).collect();
    let after_ids: HashSet<_> = after.iter().map(|t| t.id.clone()).collect();
    let gone: Vec<String> = before_ids.difference(&after_ids).cloned().collect();
    assert_eq!(removed, gone);
    assert_eq!(after.len(), before.len() + 3 - 1);

    // A sync with nothing new sends no transactions event.
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    let updated_so_far = count(
        &all_events(&app, &key).await,
        Type::BankLinkingAccountsUpdated,
    );
    refresh(&app, &key, &connection.id).await.unwrap();
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) > updated_so_far
    })
    .await;
    assert_eq!(count(&events, Type::BankLinkingTransactionsAggregated), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_during_pagination_restarts_from_the_old_cursor() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    app.sim.set_auto_historical(false);
    let item = app.sim.create_item("ins_109508");
    app.sim.set_history(&item.item_id, 1_500);
    app.sim.mutate_during_next_pagination(&item.item_id);
    let connection = import(&app, &key, &item).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) == 1
    })
    .await;
    let stored = all_transactions(&app, &key, &connection.id, 500).await;
    let ids: HashSet<_> = stored.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids.len(), stored.len(), "no transaction twice");
    assert_eq!(
        totals(last_of(&events, Type::BankLinkingTransactionsAggregated)).0 as usize,
        stored.len()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_and_heal_without_a_status_change() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    app.sim.inject_error(error_rule(
        "/accounts/balance/get",
        500,
        "API_ERROR",
        "INTERNAL_SERVER_ERROR",
        Some(2),
    ));
    let connection = import(&app, &key, &item).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 1
    })
    .await;
    assert_eq!(count(&events, Type::BankLinkingConnectionStatusChange), 0);
    assert_eq!(
        connection_status(&app, &key, &connection.id).await,
        proto::connection::Status::Active
    );
    app.stop().await;
}

async fn connection_status(app: &TestApp, key: &str, id: &str) -> proto::connection::Status {
    proto::connection::Status::try_from(common::connection(app, key, id).await.status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_degrades_and_heals_and_continued_institution_failures_make_it_unrecoverable() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 1
    })
    .await;

    app.sim.inject_error(error_rule(
        "/accounts/balance/get",
        503,
        "API_ERROR",
        "INTERNAL_SERVER_ERROR",
        None,
    ));
    refresh(&app, &key, &connection.id).await.unwrap();
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionStatusChange) == 1
    })
    .await;
    let change = payload(last_of(&events, Type::BankLinkingConnectionStatusChange));
    assert_eq!(
        change.old_status,
        Some(proto::connection::Status::Active as i32)
    );
    assert_eq!(
        change.new_status,
        Some(proto::connection::Status::Degraded as i32)
    );
    assert_eq!(
        change.new_status_reason,
        Some(proto::connection::StatusReason::ServiceProviderCurrentlyUnavailable as i32)
    );

    // Healing: a success returns it to ACTIVE with one STATUS_CHANGE.
    app.sim.clear_errors();
    refresh(&app, &key, &connection.id).await.unwrap();
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionStatusChange) == 2
    })
    .await;
    let healed = payload(last_of(&events, Type::BankLinkingConnectionStatusChange));
    assert_eq!(
        healed.new_status,
        Some(proto::connection::Status::Active as i32)
    );

    // The failed job's own retry and the refresh may both still run: let them finish first.
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;

    // Three failed aggregations in a row, the institution's fault: UNRECOVERABLE. (Plaid's own
    // outage never counts: tests/provider_faults.rs.)
    app.sim.inject_error(error_rule(
        "/accounts/balance/get",
        400,
        "INSTITUTION_ERROR",
        "INSTITUTION_NOT_RESPONDING",
        None,
    ));
    for _ in 0..3 {
        refresh(&app, &key, &connection.id).await.unwrap();
        wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    }
    assert_eq!(
        connection_status(&app, &key, &connection.id).await,
        proto::connection::Status::Unrecoverable
    );
    // The log shows an event once every older transaction has ended, so wait for it.
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionStatusChange) == 4
    })
    .await;
    let last = payload(last_of(&events, Type::BankLinkingConnectionStatusChange));
    assert_eq!(
        last.new_status_reason,
        Some(proto::connection::StatusReason::ContinuedAggregationFailures as i32)
    );
    // Data already stored stays readable in every status.
    let accounts = financial_accounts(&app, &key, &connection.id).await;
    assert!(!accounts.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn institution_errors_degrade_with_their_own_reason() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    app.sim.inject_error(error_rule(
        "/accounts/balance/get",
        400,
        "INSTITUTION_ERROR",
        "INSTITUTION_DOWN",
        None,
    ));
    import(&app, &key, &item).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionStatusChange) == 1
    })
    .await;
    let change = payload(last_of(&events, Type::BankLinkingConnectionStatusChange));
    assert_eq!(
        change.new_status_reason,
        Some(proto::connection::StatusReason::InstitutionCurrentlyUnavailable as i32)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_retried_then_degrade() {
    let app = TestApp::start_with(|config| config.plaid.timeout = Duration::from_millis(300)).await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 1
    })
    .await;
    app.sim.set_latency(Duration::from_millis(600));
    refresh(&app, &key, &connection.id).await.unwrap();
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionStatusChange) == 1
    })
    .await;
    let change = payload(last_of(&events, Type::BankLinkingConnectionStatusChange));
    assert_eq!(
        change.new_status,
        Some(proto::connection::Status::Degraded as i32)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_required_asks_the_customer_and_refresh_is_then_refused() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 1
    })
    .await;
    app.sim.inject_error(error_rule(
        "/accounts/balance/get",
        400,
        "ITEM_ERROR",
        "ITEM_LOGIN_REQUIRED",
        None,
    ));
    refresh(&app, &key, &connection.id).await.unwrap();
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingCustomerActionRequired) == 1
    })
    .await;
    let tail: Vec<_> = types(&events).into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        vec![
            Type::BankLinkingCustomerActionRequired,
            Type::BankLinkingConnectionStatusChange
        ]
    );
    let action = payload(last_of(&events, Type::BankLinkingCustomerActionRequired));
    assert_eq!(action.reason.as_deref(), Some("LOGIN_REQUIRED"));
    let details = &action.service_provider_details.as_ref().unwrap().fields;
    assert!(
        details.contains_key("error_code"),
        "the provider's error travels along"
    );
    let refused = refresh(&app, &key, &connection.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("RECONNECT_REQUIRED"),
        "{}",
        refused.message()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rules() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, other) = app.account("other").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 1
    })
    .await;

    wait_until(|| async { app.count("jobs").await == 0 }).await;
    let unknown_id = uuid::Uuid::now_v7().to_string();
    let unknown = refresh(&app, &key, &unknown_id).await.unwrap_err();
    assert_status(
        &unknown,
        Code::NotFound,
        &format!("connection {unknown_id:?} not found"),
    );
    let foreign = refresh(&app, &other, &connection.id).await.unwrap_err();
    assert_status(
        &foreign,
        Code::NotFound,
        &format!("connection {:?} not found", connection.id),
    );
    assert_eq!(app.count("jobs").await, 0, "nothing was queued");

    // Already queued or running: not queued twice, the same request id comes back.
    app.sim.set_latency(Duration::from_millis(300));
    let first = refresh(&app, &key, &connection.id).await.unwrap();
    let second = refresh(&app, &key, &connection.id).await.unwrap();
    assert_eq!(first, second);
    app.sim.set_latency(Duration::ZERO);
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;

    // Plaid's 429 on /transactions/refresh: RESOURCE_EXHAUSTED, and only when transactions are asked.
    app.sim.inject_error(error_rule(
        "/transactions/refresh",
        429,
        "RATE_LIMIT_EXCEEDED",
        "RATE_LIMIT_EXCEEDED",
        None,
    ));
    let throttled = refresh(&app, &key, &connection.id).await.unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    let balances_only = app
        .connections()
        .await
        .refresh_connection(authed(
            &key,
            proto::RefreshConnectionRequest {
                connection_id: connection.id.clone(),
                products: vec![proto::product::Value::Balances as i32],
            },
        ))
        .await;
    assert!(balances_only.is_ok(), "{balances_only:?}");
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;

    for status in ["EXPIRED", "DELETED", "IN_PROGRESS", "RECONNECT_REQUIRED"] {
        set_status(&app, &connection.id, status).await;
        let refused = refresh(&app, &key, &connection.id).await.unwrap_err();
        assert_status(
            &refused,
            Code::FailedPrecondition,
            &format!(
                "connection is {status}: a refresh is allowed only from ACTIVE, \
                 PARTIALLY_ACTIVE, DEGRADED or UNDETERMINED"
            ),
        );
        assert_eq!(app.count("jobs").await, 0, "{status}: nothing was queued");
    }
    app.stop().await;
}

async fn set_status(app: &TestApp, id: &str, status: &str) {
    use diesel_async::RunQueryDsl;
    let mut conn = linkstate::store::connect(&app.pool).await.unwrap();
    diesel::sql_query(format!(
        "UPDATE connections SET status = '{status}', status_reason = NULL WHERE id = '{id}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_transactions_pages_stably_newest_first_with_filters() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let (_, other) = app.account("other").await;
    app.sim.set_auto_historical(false);
    let item = app.sim.create_item("ins_109508");
    // Enough history that the first 30 days fill several pages.
    app.sim.set_history(&item.item_id, 2_000);
    let connection = import(&app, &key, &item).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) == 1
    })
    .await;

    let whole = all_transactions(&app, &key, &connection.id, 500).await;
    let paged = all_transactions(&app, &key, &connection.id, 7).await;
    assert!(whole.len() > 14);
    assert_eq!(paged, whole);
    assert!(
        whole
            .windows(2)
            .all(|w| w[0].transaction_date >= w[1].transaction_date)
    );
    for tx in &whole {
        assert!(tx.amount.parse::<f64>().is_ok(), "{}", tx.amount);
        assert!(!tx.amount.contains('e'));
    }

    let mut client = app.financial_data().await;
    let mid = &whole[whole.len() / 2].transaction_date;
    let ranged = client
        .list_transactions(authed(
            &key,
            proto::ListTransactionsRequest {
                connection_id: connection.id.clone(),
                start_date: mid.clone(),
                end_date: mid.clone(),
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .transactions;
    assert_eq!(
        ranged.len(),
        whole.iter().filter(|t| &t.transaction_date == mid).count()
    );
    let pending = client
        .list_transactions(authed(
            &key,
            proto::ListTransactionsRequest {
                connection_id: connection.id.clone(),
                status: proto::transaction::Status::Pending as i32,
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .transactions;
    assert_eq!(
        pending.len(),
        whole
            .iter()
            .filter(|t| t.status == proto::transaction::Status::Pending as i32)
            .count()
    );
    let by_account = client
        .list_transactions(authed(
            &key,
            proto::ListTransactionsRequest {
                financial_account_id: whole[0].financial_account_id.clone(),
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .transactions;
    assert!(
        by_account
            .iter()
            .all(|t| t.financial_account_id == whole[0].financial_account_id)
    );
    let foreign = client
        .list_transactions(authed(
            &other,
            proto::ListTransactionsRequest {
                connection_id: connection.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(foreign.transactions.is_empty());
    let bad_date = client
        .list_transactions(authed(
            &key,
            proto::ListTransactionsRequest {
                connection_id: connection.id.clone(),
                start_date: "yesterday".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_date.code(), Code::InvalidArgument);
    assert_eq!(
        bad_date.message(),
        "startDate \"yesterday\" is not a YYYY-MM-DD date"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_and_owners_are_listed_and_numbers_sealed_at_rest() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 1
    })
    .await;
    let updated = payload(last_of(&events, Type::BankLinkingAccountsUpdated));
    assert!(updated.financial_accounts.iter().any(|a| {
        a.products
            .contains(&(proto::product::Value::Identifiers as i32))
    }));
    assert!(
        updated
            .financial_accounts
            .iter()
            .any(|a| a.products.contains(&(proto::product::Value::Owners as i32)))
    );

    let accounts = financial_accounts(&app, &key, &connection.id).await;
    let checking = accounts.iter().find(|a| a.subtype == "checking").unwrap();
    let identifiers = checking.identifiers.as_ref().expect("identifiers");
    assert!(identifiers.account_number.len() >= 4);
    assert!(!identifiers.routing_number.is_empty());
    assert!(!checking.owners.is_empty() && !checking.owners[0].names.is_empty());

    #[derive(diesel::QueryableByName)]
    struct Sealed {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        identifiers: Vec<u8>,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = linkstate::store::connect(&app.pool).await.unwrap();
    let sealed = diesel::sql_query(format!(
        "SELECT identifiers FROM financial_accounts WHERE id = '{}'",
        checking.id
    ))
    .get_result::<Sealed>(&mut conn)
    .await
    .unwrap()
    .identifiers;
    let number = identifiers.account_number.as_bytes();
    assert!(!sealed.windows(number.len()).any(|w| w == number));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refresh_takes_due_connections_up_to_the_limit() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let item = app.sim.create_item("ins_109508");
        ids.push(import(&app, &key, &item).await.id);
    }
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 3
    })
    .await;
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    {
        use diesel_async::RunQueryDsl;
        let mut conn = linkstate::store::connect(&app.pool).await.unwrap();
        // Each import drew its first refresh somewhere in the next 24 h.
        #[derive(diesel::QueryableByName)]
        struct Spread {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let spread = diesel::sql_query(
            "SELECT count(*) AS n FROM connections WHERE next_refresh_at > now() AND next_refresh_at <= now() + interval '24 hours'",
        )
        .get_result::<Spread>(&mut conn)
        .await
        .unwrap();
        assert_eq!(spread.n, 3);
        diesel::sql_query("UPDATE connections SET next_refresh_at = now() - interval '1 minute'")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let queued = linkstate::worker::schedule::tick(&app.app.ctx, 2)
        .await
        .unwrap();
    assert_eq!(queued, 2, "never more than the limit at once");
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 5
    })
    .await;
    assert_eq!(count(&events, Type::BankLinkingAccountsUpdating), 5);
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    let queued = linkstate::worker::schedule::tick(&app.app.ctx, 2)
        .await
        .unwrap();
    assert_eq!(queued, 1, "the third one's turn");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_is_aggregated_by_one_worker_at_a_time() {
    use linkstate::jobs::{AggregateJob, Trigger};
    use linkstate::worker::JobError;
    use linkstate::worker::aggregate;
    let app = TestApp::start().await;
    let (account_id, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsUpdated) == 1
    })
    .await;
    wait_until(|| async { app.count("jobs WHERE dead_at IS NULL").await == 0 }).await;
    app.sim.set_latency(Duration::from_millis(300));
    let job = AggregateJob {
        account_id,
        connection_id: connection.id.parse().unwrap(),
        request_id: linkstate::domain::ids::RequestId::generate(),
        announce: true,
        products: Vec::new(),
        trigger: Trigger::Refresh,
        settle_duplicates: false,
    };
    let ctx = &app.app.ctx;
    let (a, b) = tokio::join!(
        aggregate::run(ctx, "worker-a", Duration::from_secs(60), &job),
        aggregate::run(ctx, "worker-b", Duration::from_secs(60), &job)
    );
    let busy = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(JobError::Busy)))
        .count();
    let done = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!((busy, done), (1, 1), "{a:?} {b:?}");
    app.stop().await;
}
