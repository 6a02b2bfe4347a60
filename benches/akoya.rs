//! Akoya: 100 consents imported against the simulator at 50 ms per Akoya call, against the
//! same imported one request at a time; then one pull of 10,000 transactions diffed against
//! what is stored and written, against a plain multi-row INSERT of the same rows, in the same
//! run and on the same database.
//! Run: `cargo bench --bench akoya` (uses DATABASE_URL if set, else the embedded test cluster).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use linkstate::domain::ids::ConnectionId;
use linkstate::domain::transaction_window::{self, Window};
use linkstate::domain::transactions::{self as rules, ProviderTransaction};
use linkstate::proto::{self, import_result};
use linkstate::store::transactions::{Owner, TransactionQuery, TransactionScope};
use linkstate::store::{self, financial_accounts, transactions};
use linkstate_testing::{TestApp, authed, imported};

const ITEMS: usize = 100;
const LATENCY: Duration = Duration::from_millis(50);
const TRANSACTIONS: usize = 10_000;

diesel::table! {
    bench_plain_transactions (id) {
        id -> Uuid,
        account_id -> Uuid,
        connection_id -> Uuid,
        financial_account_id -> Uuid,
        customer_id -> Uuid,
        provider_transaction_id -> Text,
        amount -> Numeric,
        currency -> Nullable<Text>,
        description -> Text,
        status -> Text,
        transaction_date -> Date,
        posted_date -> Nullable<Date>,
    }
}

fn items(app: &TestApp, from: usize) -> Vec<proto::ImportConnection> {
    (from..from + ITEMS)
        .map(|i| {
            let consent = app.sim.create_akoya_consent("mikomo");
            proto::ImportConnection {
                service_provider: proto::service_provider::Value::Akoya as i32,
                external_customer_id: format!("customer-{i}"),
                refresh_token: consent.refresh_token.expose().into(),
                provider_id: consent.provider_id,
                ..Default::default()
            }
        })
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        imports().await;
        pull().await;
    });
}

async fn imports() {
    let app = TestApp::start_unlimited().await;
    let (_, key) = app.account("bench").await;
    app.sim.set_latency(LATENCY);
    let mut client = app.connections().await;

    let batch = items(&app, 0);
    let started = Instant::now();
    let response = client
        .import_connections(authed(
            &key,
            proto::ImportConnectionsRequest {
                connections: batch,
                ..Default::default()
            },
        ))
        .await
        .expect("import")
        .into_inner();
    let concurrent = started.elapsed();
    assert_eq!(imported(&response), ITEMS);

    let one_by_one = items(&app, ITEMS);
    let started = Instant::now();
    for item in one_by_one {
        let response = client
            .import_connections(authed(
                &key,
                proto::ImportConnectionsRequest {
                    connections: vec![item],
                    ..Default::default()
                },
            ))
            .await
            .expect("import")
            .into_inner();
        assert_eq!(imported(&response), 1);
    }
    let sequential = started.elapsed();

    println!(
        "\nImport of {ITEMS} Akoya consents (token refresh, then accounts-info and balances), simulator latency {} ms per call\n",
        LATENCY.as_millis()
    );
    println!("| how | wall time | items/s |");
    println!("|---|---:|---:|");
    for (how, took) in [
        (
            "one request of 100 items (linkstate, 16 at a time)",
            concurrent,
        ),
        (
            "baseline: 100 requests of 1 item, one after another",
            sequential,
        ),
    ] {
        println!(
            "| {how} | {:.2} s | {:.0} |",
            took.as_secs_f64(),
            ITEMS as f64 / took.as_secs_f64()
        );
    }
    println!(
        "\nspeed-up: {:.1}x",
        sequential.as_secs_f64() / concurrent.as_secs_f64()
    );
    app.stop().await;
}

async fn pull() {
    let app = TestApp::start_unlimited().await;
    let (account_id, key) = app.account("bench").await;
    let consent = app.sim.create_akoya_consent("mikomo");
    app.sim.set_history(&consent.item_id, TRANSACTIONS);

    // End to end: import, the first window, then two years of history in pages.
    let started = Instant::now();
    let response = app
        .connections()
        .await
        .import_connections(authed(
            &key,
            proto::ImportConnectionsRequest {
                connections: vec![proto::ImportConnection {
                    service_provider: proto::service_provider::Value::Akoya as i32,
                    external_customer_id: "bench".into(),
                    refresh_token: consent.refresh_token.expose().into(),
                    provider_id: consent.provider_id.clone(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        ))
        .await
        .expect("import")
        .into_inner();
    let Some(import_result::Result::Connection(connection)) = &response.results[0].result else {
        panic!("import failed");
    };
    wait_for_historical(&app, &key).await;
    let end_to_end = started.elapsed();
    let connection_id: ConnectionId = connection.id.parse().unwrap();

    let mut conn = store::connect(&app.pool).await.unwrap();
    let accounts = financial_accounts::ids_by_provider_id(&mut conn, connection_id)
        .await
        .unwrap();
    let provider_of: HashMap<_, _> = accounts.iter().map(|(p, id)| (id.0, p.clone())).collect();
    let pulled: Vec<ProviderTransaction> = transactions::list(
        &mut conn,
        account_id,
        TransactionScope::Connection(connection_id),
        &TransactionQuery::default(),
        1_000_000,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|row| ProviderTransaction {
        provider_transaction_id: row.provider_transaction_id,
        provider_account_id: provider_of[&row.financial_account_id].clone(),
        amount: row.amount,
        currency: row.currency,
        description: row.description,
        status: row.status.parse().unwrap(),
        transaction_date: row.transaction_date,
        posted_date: row.posted_date,
    })
    .collect();
    let window = Window {
        accounts: accounts.keys().cloned().collect::<BTreeSet<_>>(),
        from: pulled
            .iter()
            .map(transaction_window::filtered_day)
            .min()
            .unwrap(),
        to: pulled
            .iter()
            .map(transaction_window::filtered_day)
            .max()
            .unwrap(),
    };
    let owner = Owner {
        account_id,
        connection_id,
        customer_id: connection.customer_id.parse().unwrap(),
    };

    // A pull with nothing new: read what is stored for the window, diff, write nothing.
    let started = Instant::now();
    let unchanged = diff_and_write(&mut conn, owner, &accounts, &window, pulled.clone()).await;
    let no_change = started.elapsed();
    assert_eq!(unchanged, 0);

    // A pull of a window whose every transaction is new: the diff, then the write.
    diesel::sql_query(format!(
        "DELETE FROM transactions WHERE connection_id = '{connection_id}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let started = Instant::now();
    let written = diff_and_write(&mut conn, owner, &accounts, &window, pulled.clone()).await;
    let all_new = started.elapsed();
    assert_eq!(written, pulled.len());

    // Baseline: a plain multi-row INSERT of the same rows into an equivalent table.
    diesel::sql_query(
        "CREATE TABLE bench_plain_transactions (LIKE transactions INCLUDING DEFAULTS INCLUDING INDEXES)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    use bench_plain_transactions::dsl as plain;
    let values: Vec<_> = pulled
        .iter()
        .map(|tx| {
            (
                plain::id.eq(uuid::Uuid::now_v7()),
                plain::account_id.eq(owner.account_id.0),
                plain::connection_id.eq(owner.connection_id.0),
                plain::financial_account_id.eq(accounts[&tx.provider_account_id].0),
                plain::customer_id.eq(owner.customer_id.0),
                plain::provider_transaction_id.eq(&tx.provider_transaction_id),
                plain::amount.eq(&tx.amount),
                plain::currency.eq(&tx.currency),
                plain::description.eq(&tx.description),
                plain::status.eq(<&str>::from(tx.status)),
                plain::transaction_date.eq(tx.transaction_date),
                plain::posted_date.eq(tx.posted_date),
            )
        })
        .collect();
    let started = Instant::now();
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        for chunk in values.chunks(2000) {
            diesel::insert_into(plain::bench_plain_transactions)
                .values(chunk)
                .execute(conn)
                .await?;
        }
        Ok(())
    })
    .await
    .unwrap();
    let baseline = started.elapsed();

    let per_second = |d: Duration| pulled.len() as f64 / d.as_secs_f64();
    println!(
        "\nOne Akoya pull: {} transactions over {} accounts, simulator at zero latency\n",
        pulled.len(),
        accounts.len()
    );
    println!("| what | wall time | transactions/s |");
    println!("|---|---:|---:|");
    for (what, took) in [
        (
            "end to end: import, 30-day window, two years in pages, diff, store, events",
            end_to_end,
        ),
        (
            "diff and write, every transaction new (read window, diff, upsert)",
            all_new,
        ),
        (
            "diff only, nothing changed (read window, diff, no write)",
            no_change,
        ),
        (
            "baseline: plain multi-row INSERT, same rows, equivalent table",
            baseline,
        ),
    ] {
        println!(
            "| {what} | {:.3} s | {:.0} |",
            took.as_secs_f64(),
            per_second(took)
        );
    }
    println!(
        "\nratio, diff and write / baseline: {:.2}",
        per_second(all_new) / per_second(baseline)
    );
    app.stop().await;
}

/// What aggregation does with a pulled window: read what is stored for it, turn the
/// difference into changes, fold them, write; answers the rows written.
async fn diff_and_write(
    conn: &mut diesel_async::AsyncPgConnection,
    owner: Owner,
    accounts: &HashMap<String, linkstate::domain::ids::FinancialAccountId>,
    window: &Window,
    pulled: Vec<ProviderTransaction>,
) -> usize {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let ids: Vec<String> = pulled
            .iter()
            .map(|t| t.provider_transaction_id.clone())
            .collect();
        let window_accounts: Vec<String> = window.accounts.iter().cloned().collect();
        let stored = transactions::in_window(
            conn,
            owner.connection_id,
            &window_accounts,
            (window.from, window.to),
            &ids,
        )
        .await
        .expect("read the window");
        let accounts_of: HashMap<String, String> = stored
            .iter()
            .map(|t| {
                (
                    t.provider_transaction_id.clone(),
                    t.provider_account_id.clone(),
                )
            })
            .collect();
        let changes = transaction_window::changes(window, &stored, pulled);
        let effect = rules::net_effect(&accounts_of, changes);
        let rows: Vec<_> = effect.upserts.values().collect();
        let written = transactions::upsert(conn, owner, accounts, &rows)
            .await
            .expect("upsert");
        Ok(written)
    })
    .await
    .unwrap()
}

async fn wait_for_historical(app: &TestApp, key: &str) {
    let mut events = app.events().await;
    for _ in 0..6000 {
        let page = events
            .list_events(authed(
                key,
                proto::ListEventsRequest {
                    event_types: vec![
                        proto::event::Type::BankLinkingHistoricalTransactionsAggregated as i32,
                    ],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        if !page.events.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no historical event within 60 s");
}
