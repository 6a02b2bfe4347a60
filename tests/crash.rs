//! No loss under a crash: 1,000 signed webhooks from 16 concurrent senders to the real binary,
//! which is killed with SIGKILL midway and started again; senders retry whatever was not
//! answered 200, as Plaid does. Every webhook must then have taken effect exactly once.
//!
//! Each webhook is a USER_ACCOUNT_REVOKED for a different account, whose effect is one
//! BANK_LINKING_ACCOUNTS_REMOVED event naming that account.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use linkstate::proto;
use linkstate_testing::{TestDatabase, authed};

use common::process::{Replicas, free_port};

/// Short leases, so that the jobs the killed process held are taken over soon.
const LEASE: [(&str, &str); 1] = [("LINKSTATE_JOB_LEASE", "3s")];

const WEBHOOKS: usize = 1_000;
const SENDERS: usize = 16;
const CONNECTIONS: usize = WEBHOOKS / 5;

#[derive(diesel::QueryableByName)]
struct AccountRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    item_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    provider_account_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

#[derive(diesel::QueryableByName)]
struct Removed {
    #[diesel(sql_type = diesel::sql_types::Text)]
    account: String,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_answered_200_takes_effect_exactly_once_across_a_sigkill() {
    let database = TestDatabase::new().await;
    let (sim, replicas) = Replicas::with_simulator(&database.url).await;
    let (grpc, http) = (free_port(), free_port());
    let mut service = replicas.start(grpc, http, &LEASE);
    service.wait_ready().await;

    // 200 connections of 5 accounts each, imported through the running service.
    let pool = linkstate::store::pool(&database.url, 2).unwrap();
    let api_key = {
        let mut conn = linkstate::store::connect(&pool).await.unwrap();
        linkstate::store::accounts::create(&mut conn, "crash")
            .await
            .unwrap()
            .1
    };
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = proto::connection_service_client::ConnectionServiceClient::new(channel);
    for batch in 0..CONNECTIONS / 100 {
        let connections = (0..100)
            .map(|i| proto::ImportConnection {
                service_provider: proto::service_provider::Value::Plaid as i32,
                external_customer_id: format!("customer-{batch}-{i}"),
                access_token: sim.create_item("ins_109508").access_token.expose().into(),
                ..Default::default()
            })
            .collect();
        client
            .import_connections(authed(
                api_key.expose(),
                proto::ImportConnectionsRequest {
                    connections,
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    let accounts: Vec<AccountRow> = {
        let mut conn = linkstate::store::connect(&pool).await.unwrap();
        diesel::sql_query(
            "SELECT c.provider_connection_id AS item_id, f.provider_account_id, f.id::text AS id \
             FROM financial_accounts f JOIN connections c ON c.id = f.connection_id",
        )
        .load(&mut conn)
        .await
        .unwrap()
    };
    assert_eq!(accounts.len(), WEBHOOKS);

    // 16 senders share the queue of unanswered webhooks; a failure goes to the back.
    let bodies: Vec<Vec<u8>> = accounts
        .iter()
        .map(|a| {
            serde_json::to_vec(&serde_json::json!({
                "webhook_type": "ITEM",
                "webhook_code": "USER_ACCOUNT_REVOKED",
                "item_id": a.item_id,
                "account_id": a.provider_account_id,
                "environment": "sandbox",
            }))
            .unwrap()
        })
        .collect();
    let queue = Arc::new(Mutex::new(
        (0..WEBHOOKS).collect::<std::collections::VecDeque<_>>(),
    ));
    let answered = Arc::new(Mutex::new(HashMap::<usize, usize>::new()));
    let bodies = Arc::new(bodies);
    let http_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (queue, answered, bodies, sim, client) = (
            queue.clone(),
            answered.clone(),
            bodies.clone(),
            sim.clone(),
            http_client.clone(),
        );
        senders.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let next = queue.lock().unwrap().pop_front();
                let Some(index) = next else {
                    if answered.lock().unwrap().len() == WEBHOOKS {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                // Signed at each attempt, as Plaid signs each delivery attempt.
                let jwt = sim.sign_webhook(&bodies[index]);
                let result = client
                    .post(format!("http://127.0.0.1:{http}/webhooks/plaid"))
                    .header("Plaid-Verification", jwt)
                    .body(bodies[index].clone())
                    .send()
                    .await;
                match result {
                    Ok(response) if response.status().is_success() => {
                        *answered.lock().unwrap().entry(index).or_default() += 1;
                    }
                    _ => {
                        queue.lock().unwrap().push_back(index);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }

    // Kill it midway, while senders are sending and workers are working.
    while answered.lock().unwrap().len() < WEBHOOKS * 2 / 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    service.kill();
    let at_kill = answered.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut service = replicas.start(grpc, http, &LEASE);
    for sender in senders {
        sender.await.unwrap();
    }
    assert_eq!(
        answered.lock().unwrap().len(),
        WEBHOOKS,
        "every webhook answered 200 in the end"
    );
    assert!(
        at_kill < WEBHOOKS,
        "the kill came midway ({at_kill} answered)"
    );

    // Every delivery processed (jobs claimed by the killed process are taken over when their
    // leases run out), then exactly one ACCOUNTS_REMOVED per account.
    let mut conn = linkstate::store::connect(&pool).await.unwrap();
    let started = Instant::now();
    loop {
        let processed = diesel::sql_query(
            "SELECT count(DISTINCT body_sha256) AS n FROM webhook_deliveries \
             WHERE webhook_code = 'USER_ACCOUNT_REVOKED' AND processed_at IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE processed_at IS NULL)",
        )
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n;
        if processed as usize == WEBHOOKS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{processed} processed after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A delivery whose 200 the kill swallowed is sent again; it is recorded once more only if
    // its item said something else in between (then it may be a new report, see
    // store::webhooks::record), and applying it again changes nothing, as the events show.
    let recorded = diesel::sql_query(
        "SELECT count(DISTINCT body_sha256) AS n FROM webhook_deliveries \
         WHERE webhook_code = 'USER_ACCOUNT_REVOKED'",
    )
    .get_result::<Count>(&mut conn)
    .await
    .unwrap()
    .n;
    assert_eq!(recorded as usize, WEBHOOKS, "every delivery recorded");
    let removed: Vec<Removed> = diesel::sql_query(
        "SELECT a->>'id' AS account FROM events, json_array_elements(payload->'financialAccounts') a \
         WHERE event_type = 'BANK_LINKING_ACCOUNTS_REMOVED'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut per_account: HashMap<String, usize> = HashMap::new();
    for row in removed {
        *per_account.entry(row.account).or_default() += 1;
    }
    for account in &accounts {
        assert_eq!(
            per_account.get(&account.id),
            Some(&1),
            "account {}",
            account.id
        );
    }
    assert_eq!(per_account.len(), WEBHOOKS, "no event for anything else");
    service.kill();
}
