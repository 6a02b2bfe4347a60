//! Initial transaction sync: one connection with 10,000 transactions over its accounts, against
//! the simulator at zero latency; then the write alone, against a plain multi-row INSERT of the
//! same rows into an equivalent table, in the same run and on the same database.
//! Run: `cargo bench --bench sync`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use linkstate::domain::ids::{ConnectionId, FinancialAccountId};
use linkstate::domain::transactions::ProviderTransaction;
use linkstate::proto::{self, import_result};
use linkstate::store::transactions::{Owner, TransactionQuery, TransactionScope};
use linkstate::store::{self, financial_accounts, transactions};
use linkstate_testing::{TestApp, authed};

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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let app = TestApp::start_unlimited().await;
    let (account_id, key) = app.account("bench").await;
    app.sim.set_auto_historical(false);
    let item = app.sim.create_item("ins_109508");
    app.sim.set_history(&item.item_id, TRANSACTIONS);
    app.sim.complete_historical(&item.item_id);

    // End to end: import, then every transaction fetched, stored and announced.
    let started = Instant::now();
    let response = app
        .connections()
        .await
        .import_connections(authed(
            &key,
            proto::ImportConnectionsRequest {
                connections: vec![proto::ImportConnection {
                    service_provider: proto::service_provider::Value::Plaid as i32,
                    external_customer_id: "bench".into(),
                    access_token: item.access_token.expose().into(),
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
    let stored = transactions::list(
        &mut conn,
        account_id,
        TransactionScope::Connection(connection_id),
        &TransactionQuery::default(),
        1_000_000,
    )
    .await
    .unwrap();
    let accounts = financial_accounts::ids_by_provider_id(&mut conn, connection_id)
        .await
        .unwrap();
    let provider_of: HashMap<FinancialAccountId, String> =
        accounts.iter().map(|(p, id)| (*id, p.clone())).collect();
    let rows: Vec<ProviderTransaction> = stored
        .iter()
        .map(|row| ProviderTransaction {
            provider_transaction_id: row.provider_transaction_id.clone(),
            provider_account_id: provider_of[&FinancialAccountId(row.financial_account_id)].clone(),
            amount: row.amount.clone(),
            currency: row.currency.clone(),
            description: row.description.clone(),
            status: row.status.parse().unwrap(),
            transaction_date: row.transaction_date,
            posted_date: row.posted_date,
        })
        .collect();

    // The write alone: linkstate's batched upsert into the real table ...
    diesel::sql_query(format!(
        "DELETE FROM transactions WHERE connection_id = '{connection_id}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let owner = Owner {
        account_id,
        connection_id,
        customer_id: connection.customer_id.parse().unwrap(),
    };
    let refs: Vec<&ProviderTransaction> = rows.iter().collect();
    let started = Instant::now();
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        transactions::upsert(conn, owner, &accounts, &refs)
            .await
            .map_err(|e| {
                panic!("upsert: {e}");
            })
    })
    .await
    .unwrap();
    let ours = started.elapsed();

    // ... against a plain multi-row INSERT into an equivalent table (same columns and indexes).
    diesel::sql_query(
        "CREATE TABLE bench_plain_transactions (LIKE transactions INCLUDING DEFAULTS INCLUDING INDEXES)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    use bench_plain_transactions::dsl as plain;
    let values: Vec<_> = rows
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

    let per_second = |d: Duration| rows.len() as f64 / d.as_secs_f64();
    println!(
        "\nInitial sync of one connection: {} transactions over {} accounts, simulator at zero latency\n",
        rows.len(),
        accounts.len()
    );
    println!("| what | wall time | transactions/s |");
    println!("|---|---:|---:|");
    println!(
        "| end to end: import, sync pages, store, events | {:.3} s | {:.0} |",
        end_to_end.as_secs_f64(),
        per_second(end_to_end)
    );
    println!(
        "| store only: linkstate's batched upsert | {:.3} s | {:.0} |",
        ours.as_secs_f64(),
        per_second(ours)
    );
    println!(
        "| baseline: plain multi-row INSERT, same rows, equivalent table | {:.3} s | {:.0} |",
        baseline.as_secs_f64(),
        per_second(baseline)
    );
    println!(
        "\nratio, store only / baseline: {:.2}",
        per_second(ours) / per_second(baseline)
    );
    app.stop().await;
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
