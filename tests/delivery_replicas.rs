//! Delivery across real `linkstate serve` processes: a SIGKILL in the middle of delivering
//! 1,000 events to 3 profiles loses none of them, and two replicas deliver each event once.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use diesel_async::RunQueryDsl;
use linkstate::proto;
use linkstate::store;
use linkstate_testing::authed;
use linkstate_testing::receiver::Receiver;

use common::process::{Service, Setup};

/// Events written straight into the log, as any writer would leave them.
const EVENTS: usize = 1000;

const SETTINGS: &[(&str, &str)] = &[
    ("LINKSTATE_DELIVERY_ALLOW_PRIVATE", "true"),
    ("LINKSTATE_DELIVERY_RETRY_BASE", "200ms"),
    ("LINKSTATE_DELIVERY_RETRY_MAX", "1s"),
    ("LINKSTATE_DELIVERY_TIMEOUT", "2s"),
];

async fn profile(service: &Service, key: &str, url: &str) {
    proto::webhook_profile_service_client::WebhookProfileServiceClient::new(
        service.channel().await,
    )
    .create_webhook_profile(authed(
        key,
        proto::CreateWebhookProfileRequest {
            name: "replica test".into(),
            url: url.into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
}

async fn write_events(setup: &Setup, account: &str) {
    let mut conn = store::connect(&setup.pool).await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO events (event_id, account_id, event_type, version, payload) \
         SELECT gen_random_uuid(), '{account}', 'BANK_LINKING_CONNECTION_STATUS_CHANGE', '2023-07-31', \
         '{{\"serviceProviderDetails\": {{}}}}' FROM generate_series(1, {EVENTS})"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
}

/// How many distinct events a receiver got, and how many requests repeated one.
fn tally(receiver: &Receiver) -> (usize, usize) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for request in receiver.received() {
        *seen
            .entry(request.header("webhook-id").unwrap().to_string())
            .or_default() += 1;
    }
    let duplicates = seen.values().map(|n| n - 1).sum();
    (seen.len(), duplicates)
}

/// Waits until every receiver has every event (60 s at most).
async fn all_delivered(receivers: &[Receiver]) {
    for _ in 0..1200 {
        if receivers.iter().all(|r| tally(r).0 >= EVENTS) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got: Vec<_> = receivers.iter().map(tally).collect();
    panic!("not every event delivered in 60 s: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_while_delivering_loses_no_event() {
    let setup = Setup::new().await;
    let (account, key) = setup.api_key().await;
    let mut first = setup.start(SETTINGS).await;
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let receiver = Receiver::start(Vec::new()).await;
        profile(&first, &key, &receiver.url).await;
        receivers.push(receiver);
    }
    write_events(&setup, &account.to_string()).await;
    // Kill it once it is well under way.
    for _ in 0..400 {
        let sent: usize = receivers.iter().map(|r| r.received().len()).sum();
        if sent >= 3 * EVENTS / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let at_kill: usize = receivers.iter().map(|r| r.received().len()).sum();
    assert!(
        at_kill < 3 * EVENTS,
        "the kill came after everything was sent"
    );
    let _second = setup.start(SETTINGS).await;
    all_delivered(&receivers).await;
    let duplicates: usize = receivers.iter().map(|r| tally(r).1).sum();
    let distinct: HashSet<usize> = receivers.iter().map(|r| tally(r).0).collect();
    assert_eq!(
        distinct,
        HashSet::from([EVENTS]),
        "each profile got every event"
    );
    println!(
        "SIGKILL after {at_kill} of {} requests: every event delivered to every profile, \
         {duplicates} duplicate(s)",
        3 * EVENTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once() {
    let setup = Setup::new().await;
    let (account, key) = setup.api_key().await;
    let first = setup.start(SETTINGS).await;
    let _second = setup.start(SETTINGS).await;
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let receiver = Receiver::start(Vec::new()).await;
        profile(&first, &key, &receiver.url).await;
        receivers.push(receiver);
    }
    write_events(&setup, &account.to_string()).await;
    all_delivered(&receivers).await;
    // Let a late duplicate, if any, arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let duplicates: usize = receivers.iter().map(|r| tally(r).1).sum();
    assert_eq!(duplicates, 0, "two replicas sent the same delivery");
}
