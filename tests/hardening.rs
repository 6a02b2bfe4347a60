//! What an outside run found (issue 9): each defect has its test here, through the real
//! listeners, against the simulator and a real database.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use linkstate::proto::{self, import_result};
use linkstate::sim::ErrorRule;
use linkstate::testing::{TestApp, authed};
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;

/// Nothing of a refused item or request is in the database.
async fn assert_nothing_written(app: &TestApp) {
    for table in [
        "customers",
        "connections",
        "financial_accounts",
        "events",
        "jobs",
    ] {
        assert_eq!(app.count(table).await, 0, "{table} has rows");
    }
}

fn import_request(items: Vec<proto::ImportConnection>) -> proto::ImportConnectionsRequest {
    proto::ImportConnectionsRequest { connections: items }
}

fn rule(endpoint: &str, http_status: u16, code: &str, times: Option<u32>) -> ErrorRule {
    ErrorRule {
        endpoint: endpoint.into(),
        access_token: None,
        http_status,
        error_type: "API_ERROR".into(),
        error_code: code.into(),
        error_message: "simulated".into(),
        times,
    }
}

// 1. The import answers only once the provider sends the item's webhooks to linkstate.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_points_the_items_webhook_before_it_answers() {
    // No worker runs: whatever happened, the import itself did it.
    let app = TestApp::start_with(|config| config.worker_concurrency = 0).await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    let ours = format!("http://{}/webhooks/plaid", app.app.http_addr);
    assert_eq!(app.sim.item_webhook(&item.item_id), Some(ours.clone()));
    assert_eq!(app.sim.calls("/item/webhook/update"), 1);
    assert_eq!(
        app.count(&format!(
            "connections WHERE id = '{}' AND webhook_url = '{ours}'",
            connection.id
        ))
        .await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_whose_webhook_plaid_will_not_point_fails_unavailable_and_writes_nothing() {
    let app = TestApp::start_with(|config| config.worker_concurrency = 0).await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    app.sim.inject_error(rule(
        "/item/webhook/update",
        500,
        "INTERNAL_SERVER_ERROR",
        None,
    ));
    let response = app
        .connections()
        .await
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("customer-1", item.access_token.expose())]),
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(import_result::Result::Error(error)) = &response.results[0].result else {
        panic!("imported: {:?}", response.results[0]);
    };
    assert_eq!(error.code, "UNAVAILABLE");
    assert!(
        error
            .message
            .starts_with("Plaid could not be told to send this item's webhooks to linkstate"),
        "{}",
        error.message
    );
    // The first call and three retries.
    assert_eq!(app.sim.calls("/item/webhook/update"), 4);
    assert_nothing_written(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_comes_before_its_items_import_committed_is_not_lost() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let ack = json!({"webhook_type": "ITEM", "webhook_code": "WEBHOOK_UPDATE_ACKNOWLEDGED",
        "item_id": item.item_id, "new_webhook_url": "http://elsewhere.invalid/hook"});
    assert_eq!(deliver(&app, &ack).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    import(&app, &key, &item).await;
    wait_processed(&app, 2).await;
    assert_eq!(
        app.count("webhook_deliveries WHERE outcome = 'unknown_connection'")
            .await,
        0,
        "looked at again once the connection was there"
    );
    app.stop().await;
}

// 2. A store error is a 500 with a fixed message, never a 503 with the database's text.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_recording_a_webhook_is_a_500_without_database_text() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    sql(
        &app,
        "ALTER TABLE webhook_deliveries ADD CONSTRAINT refuse_all CHECK (webhook_code = 'none')",
    )
    .await;
    let body = json!({"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": "item-1"});
    let (status, answer) = deliver(&app, &body).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer, json!({"error": "internal error"}));

    let bytes = serde_json::to_vec(&body).unwrap();
    let relayed = app.channel().await;
    let error = proto::webhook_service_client::WebhookServiceClient::new(relayed)
        .record_webhook(authed(
            &key,
            proto::RecordWebhookRequest {
                service_provider: proto::service_provider::Value::Plaid as i32,
                headers: [(
                    "Plaid-Verification".to_string(),
                    app.sim.sign_webhook(&bytes),
                )]
                .into(),
                body: bytes,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Internal, "internal error")
    );
    assert_eq!(app.count("webhook_deliveries").await, 0);
    assert_eq!(app.count("jobs").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_with_a_nul_byte_is_a_400_and_recorded_nowhere() {
    let app = TestApp::start().await;
    let body = br#"{"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": "a\u0000b"}"#;
    let (status, answer) = post(&app, body, Some(&app.sim.sign_webhook(body))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        "body is not a Plaid webhook: item_id must not contain NUL bytes"
    );
    assert_eq!(app.count("webhook_deliveries").await, 0);
    assert_eq!(app.count("webhook_sources").await, 0);
    app.stop().await;
}

// 3. Waiting for a busy connection is not an attempt.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_rounds_do_not_count_as_attempts() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    wait_until(|| async { app.count("jobs").await == 0 }).await;
    // Another replica holds the connection for a long time.
    sql(
        &app,
        "UPDATE connections SET lease_owner = 'another-replica', \
         lease_until = now() + interval '10 minutes'",
    )
    .await;
    refresh(&app, &key, &connection.id).await.unwrap();
    // Each busy round gives the job back for a second: three rounds or more.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        app.count("jobs WHERE last_error = 'busy' AND attempts = 0 AND dead_at IS NULL")
            .await,
        1,
        "the job waited without spending attempts"
    );
    sql(
        &app,
        "UPDATE connections SET lease_owner = NULL, lease_until = NULL",
    )
    .await;
    wait_until(|| async { app.count("jobs").await == 0 }).await;
    app.stop().await;
}

/// Waits until `done` holds (10 s at most).
async fn wait_until<F, Fut>(done: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10 s");
}

// 4. Answers that name something.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_during_a_running_aggregation_answers_that_aggregations_request_id() {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    let item = app.sim.create_item("ins_109508");
    app.sim.set_latency(Duration::from_millis(300));
    let response = app
        .connections()
        .await
        .import_connections(authed(
            &key,
            import_request(vec![plaid_item("customer-1", item.access_token.expose())]),
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(import_result::Result::Connection(connection)) = &response.results[0].result else {
        panic!("import failed");
    };
    // The import's aggregation makes four calls of 300 ms: it is queued or running now.
    let answered = refresh(&app, &key, &connection.id).await.unwrap();
    assert_eq!(answered, response.request_id);
    app.sim.set_latency(Duration::ZERO);
    let events = events_until(&app, &key, |events| {
        count(events, proto::event::Type::BankLinkingAccountsUpdated) == 1
    })
    .await;
    let updated = events
        .iter()
        .find(|e| e.event_type == proto::event::Type::BankLinkingAccountsUpdated as i32)
        .unwrap();
    let payload = updated.payload.as_ref().unwrap();
    assert_eq!(payload.request_id.as_deref(), Some(answered.as_str()));
    app.stop().await;
}

// 5. Unknown webhook key ids cost Plaid one call, not one per request.

/// A JWT that names `kid`, signed by nobody.
fn jwt_naming(kid: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": kid}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(json!({"iat": 0, "request_body_sha256": "x"}).to_string());
    let signature = URL_SAFE_NO_PAD.encode([7u8; 64]);
    format!("{header}.{claims}.{signature}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_id_is_fetched_once_and_a_failed_fetch_is_cached() {
    let app = TestApp::start().await;
    let body = br#"{"webhook_type": "ITEM", "webhook_code": "ERROR", "item_id": "i"}"#;
    let jwt = jwt_naming("made-up-kid-1");
    let together = futures::future::join_all((0..10).map(|_| post(&app, body, Some(&jwt)))).await;
    for (status, _) in together {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for _ in 0..10 {
        assert_eq!(
            post(&app, body, Some(&jwt)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.sim.calls("/webhook_verification_key/get"), 1);

    app.sim.inject_error(rule(
        "/webhook_verification_key/get",
        500,
        "INTERNAL_SERVER_ERROR",
        None,
    ));
    let jwt = jwt_naming("made-up-kid-2");
    for _ in 0..10 {
        let (status, answer) = post(&app, body, Some(&jwt)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            answer["error"],
            "cannot record the webhook now; retry later"
        );
    }
    assert_eq!(app.sim.calls("/webhook_verification_key/get"), 2);
    assert_eq!(app.count("webhook_deliveries").await, 0);
    app.stop().await;
}
