//! Plaid slow, breaking connections off, and answering 500s: aggregations back off, the
//! circuit opens and holds them back, connections say DEGRADED (never UNRECOVERABLE), Plaid's
//! webhooks are still answered 200 and queued, and when Plaid recovers everything catches up
//! with nothing lost. Bounded: each fault is held for a few seconds.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{all_events, deliver, import, payload, refresh};
use linkstate::domain::service_provider::ServiceProvider;
use linkstate::proto::{connection::Status, connection::StatusReason, event::Type};
use linkstate_sim::{ErrorRule, Mutation, SandboxItem};
use linkstate_testing::TestApp;
use serde_json::json;

/// Connections that live through the faults.
const ITEMS: usize = 6;

/// How long each fault is held.
const HOLD: Duration = Duration::from_secs(6);

/// The longest a phase may take to open the circuit, or to catch up after it.
const LIMIT: Duration = Duration::from_secs(60);

/// What Plaid does wrong in a phase.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Every answer takes 5 s (the client's timeout is 1 s).
    Slow,
    /// Every connection breaks off before the answer.
    Resets,
    /// Every endpoint answers HTTP 500 INTERNAL_SERVER_ERROR.
    ServerErrors,
}

impl Fault {
    fn start(self, app: &TestApp) {
        match self {
            Fault::Slow => app.sim.set_latency(Duration::from_secs(5)),
            Fault::Resets => app.sim.set_resets(true),
            Fault::ServerErrors => app.sim.inject_error(ErrorRule {
                endpoint: "*".into(),
                access_token: None,
                http_status: 500,
                error_type: "API_ERROR".into(),
                error_code: "INTERNAL_SERVER_ERROR".into(),
                error_message: "an unexpected error occurred".into(),
                times: None,
            }),
        }
    }

    fn stop(self, app: &TestApp) {
        app.sim.set_latency(Duration::ZERO);
        app.sim.set_resets(false);
        app.sim.clear_errors();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaid_slow_resetting_or_failing_opens_the_circuit_degrades_and_everything_catches_up() {
    let app = TestApp::start_with(|config| {
        config.plaid.timeout = Duration::from_secs(1);
        config.worker.circuit_threshold = 3;
        config.worker.circuit_cool_down = Duration::from_millis(250);
        config.worker.circuit_max_cool_down = Duration::from_secs(1);
    })
    .await;
    let (_, key) = app.account("acme").await;
    let items: Vec<SandboxItem> = (0..ITEMS)
        .map(|_| app.sim.create_item("ins_109508"))
        .collect();
    let mut connections = Vec::new();
    for item in &items {
        connections.push(import(&app, &key, item).await.id);
    }
    caught_up(&app, &key, &items, &connections).await;
    // Plaid's verification key is fetched once and kept: webhooks verify while Plaid is down.
    let (status, _) = deliver(&app, &new_data(&items[0], 0)).await;
    assert_eq!(status, 200);

    println!(
        "{:<23} | circuit open after | Plaid calls while down | of which while open | caught up after",
        "fault"
    );
    let mut delivered = 1;
    // The last phase is an outage long enough for the failing jobs to give up: the
    // background refresh still catches up.
    let phases = [
        (Fault::Slow, false),
        (Fault::Resets, false),
        (Fault::ServerErrors, false),
        (Fault::ServerErrors, true),
    ];
    for (phase, (fault, gave_up)) in phases.into_iter().enumerate() {
        let calls_before = app.sim.all_calls();
        let started = Instant::now();
        fault.start(&app);
        for (i, item) in items.iter().enumerate() {
            app.sim.mutate(
                &item.item_id,
                Mutation {
                    add: 3,
                    modify: 1,
                    remove: 1,
                },
            );
            // Plaid's webhooks need no Plaid call: answered at once, recorded, queued.
            let (status, _) = deliver(&app, &new_data(item, phase * ITEMS + i + 1)).await;
            assert_eq!(
                status, 200,
                "{fault:?}: a webhook is answered while Plaid is down"
            );
            delivered += 1;
            refresh(&app, &key, &connections[i]).await.unwrap();
        }
        let opened = wait_for(|| async { app.app.ctx.circuits().is_open(ServiceProvider::Plaid) })
            .await
            .unwrap_or_else(|| panic!("{fault:?}: the circuit never opened"));
        let calls_at_open = app.sim.all_calls();
        tokio::time::sleep(HOLD.saturating_sub(started.elapsed())).await;
        let calls_while_down = app.sim.all_calls() - calls_before;
        let calls_while_open = app.sim.all_calls() - calls_at_open;
        assert_outage_shown(&app, &key, &connections, fault).await;
        assert_eq!(
            app.count("jobs WHERE dead_at IS NOT NULL").await,
            0,
            "{fault:?}: no job gave up"
        );
        if gave_up {
            // The failing connections' aggregations on their last attempt: the next failure
            // buries each, as minutes of failures would.
            common::sql(
                &app,
                "UPDATE jobs SET attempts = 8, run_at = now() WHERE dead_at IS NULL AND connection_id IN \
                 (SELECT id FROM connections WHERE status = 'DEGRADED')",
            )
            .await;
            wait_for(|| async {
                app.count("jobs WHERE dead_at IS NULL AND attempts >= 8")
                    .await
                    == 0
            })
            .await
            .expect("the failing jobs gave up");
            assert!(app.count("jobs WHERE dead_at IS NOT NULL").await > 0);
        }
        fault.stop(&app);
        let recovered = Instant::now();
        caught_up(&app, &key, &items, &connections).await;
        println!(
            "{:<23} | {:>18.1?} | {:>22} | {:>19} | {:.1?}",
            format!("{fault:?}{}", if gave_up { ", gave up" } else { "" }),
            opened,
            calls_while_down,
            calls_while_open,
            recovered.elapsed()
        );
        assert!(!app.app.ctx.circuits().is_open(ServiceProvider::Plaid));
    }

    // Every webhook was recorded once, and processed.
    assert_eq!(app.count("webhook_deliveries WHERE convert_from(body, 'UTF8') LIKE '%DEFAULT_UPDATE%' AND processed_at IS NOT NULL").await, delivered as i64);
    // The log: each connection went DEGRADED for Plaid and back, never further.
    let events = all_events(&app, &key).await;
    let changes: BTreeSet<(i32, i32, Option<i32>)> = events
        .iter()
        .filter(|e| e.event_type == Type::BankLinkingConnectionStatusChange as i32)
        .map(|e| {
            let p = payload(e);
            (
                p.old_status.unwrap(),
                p.new_status.unwrap(),
                p.new_status_reason,
            )
        })
        .collect();
    let to_degraded = (
        Status::Active as i32,
        Status::Degraded as i32,
        Some(StatusReason::ServiceProviderCurrentlyUnavailable as i32),
    );
    let healed = (Status::Degraded as i32, Status::Active as i32, None);
    assert_eq!(changes, BTreeSet::from([to_degraded, healed]));
    app.stop().await;
}

/// A signed DEFAULT_UPDATE about the item, made distinct by `n`.
fn new_data(item: &SandboxItem, n: usize) -> serde_json::Value {
    json!({
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "DEFAULT_UPDATE",
        "item_id": item.item_id,
        "new_transactions": n,
        "environment": "sandbox",
    })
}

/// While Plaid is down: the connections that failed say DEGRADED for the provider, none is
/// worse.
async fn assert_outage_shown(app: &TestApp, key: &str, connections: &[String], fault: Fault) {
    let mut degraded = 0;
    for id in connections {
        let connection = common::connection(app, key, id).await;
        match Status::try_from(connection.status).unwrap() {
            Status::Active => {}
            Status::Degraded => {
                assert_eq!(
                    connection.status_reason,
                    Some(StatusReason::ServiceProviderCurrentlyUnavailable as i32),
                    "{fault:?}"
                );
                degraded += 1;
            }
            other => panic!("{fault:?}: connection {id} is {other:?}"),
        }
    }
    assert!(degraded > 0, "{fault:?}: no connection says Plaid is down");
}

/// Waits until every connection is ACTIVE, no job is left, and each holds exactly the
/// transactions Plaid shows for its item.
async fn caught_up(app: &TestApp, key: &str, items: &[SandboxItem], connections: &[String]) {
    let done = wait_for(|| async {
        if app.count("jobs WHERE dead_at IS NULL").await > 0 {
            return false;
        }
        for id in connections {
            let status = common::connection(app, key, id).await.status;
            if status != Status::Active as i32 {
                return false;
            }
        }
        true
    })
    .await;
    assert!(done.is_some(), "not caught up within {LIMIT:?}");
    for (item, id) in items.iter().zip(connections) {
        let visible = app.sim.visible_transaction_ids(&item.item_id).unwrap();
        let listed = visible
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(",");
        let stored = app
            .count(&format!("transactions WHERE connection_id = '{id}'"))
            .await;
        let matching = app
            .count(&format!(
                "transactions WHERE connection_id = '{id}' AND provider_transaction_id IN ({listed})"
            ))
            .await;
        assert_eq!(
            (stored, matching),
            (visible.len() as i64, visible.len() as i64),
            "connection {id} holds what Plaid shows"
        );
    }
}

/// Polls `done` until it holds (answering how long that took), for [`LIMIT`] at most.
async fn wait_for<F, Fut>(done: F) -> Option<Duration>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < LIMIT {
        if done().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
