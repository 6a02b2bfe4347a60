//! Plaid webhooks over HTTP and gRPC: verification, answers, exactly-once effect, the mapping.

mod common;

use std::time::Duration;

use common::*;
use linkstate::proto::{self, event::Type};
use linkstate_sim::{Mutation, WebhookKey};
use linkstate_testing::{TestApp, authed};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn item_webhook(item_id: &str, code: &str) -> Value {
    json!({"webhook_type": "ITEM", "webhook_code": code, "item_id": item_id, "environment": "sandbox"})
}

fn item_error(item_id: &str, error_code: &str) -> Value {
    let mut webhook = item_webhook(item_id, "ERROR");
    webhook["error"] = json!({
        "error_type": "ITEM_ERROR",
        "error_code": error_code,
        "error_message": "simulated",
        "display_message": null,
        "request_id": null,
        "causes": null,
        "status": 400,
        "documentation_url": null,
        "suggested_action": null
    });
    webhook
}

/// An app with one imported, fully aggregated connection.
async fn connected() -> (
    TestApp,
    String,
    linkstate_sim::SandboxItem,
    proto::Connection,
) {
    let app = TestApp::start().await;
    let (_, key) = app.account("acme").await;
    app.sim.set_auto_historical(false);
    let item = app.sim.create_item("ins_109508");
    let connection = import(&app, &key, &item).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) == 1
    })
    .await;
    // Plaid acknowledges the webhook URL the import set: that delivery comes first.
    wait_processed(&app, 1).await;
    (app, key, item, connection)
}

fn field(details: &prost_types::Struct, name: &str) -> Option<String> {
    match details.fields.get(name)?.kind.as_ref()? {
        prost_types::value::Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_401_and_record_nothing() {
    let app = TestApp::start().await;
    let body = serde_json::to_vec(&item_webhook("item-x", "LOGIN_REPAIRED")).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut impostor = WebhookKey::generate();
    impostor.kid = app.sim.webhook_key_id();
    let mut stranger = WebhookKey::generate();
    stranger.kid = "no-such-key".into();
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iat": now, "request_body_sha256": "00"}),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    let cases: Vec<(Option<String>, &[u8], &str)> = vec![
        (
            None,
            &body,
            "webhook signature: missing Plaid-Verification header",
        ),
        (
            Some("not-a-jwt".into()),
            &body,
            "webhook signature: Plaid-Verification is not a well-formed JWT",
        ),
        (
            Some(impostor.sign(&body)),
            &body,
            "webhook signature: signature does not verify",
        ),
        (
            Some(stranger.sign(&body)),
            &body,
            "webhook signature: unknown verification key id",
        ),
        (
            Some(app.sim.sign_webhook(b"another body")),
            &body,
            "webhook signature: body does not match the signed hash",
        ),
        (
            Some(app.sim.sign_webhook_at(&body, now - 600)),
            &body,
            "webhook signature: signature is older than five minutes",
        ),
        (
            Some(hs256),
            &body,
            "webhook signature: Plaid-Verification must be signed with ES256",
        ),
    ];
    for (jwt, body, message) in cases {
        let (status, answer) = post(&app, body, jwt.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
        assert_eq!(answer["error"], message);
    }
    assert_eq!(app.count("webhook_deliveries").await, 0);
    assert_eq!(app.count("jobs").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused() {
    let app = TestApp::start().await;
    app.sim.expire_webhook_key();
    let (status, answer) = deliver(&app, &item_webhook("item-x", "LOGIN_REPAIRED")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer["error"],
        "webhook signature: verification key has expired"
    );
    assert_eq!(app.count("webhook_deliveries").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_unreachable_database_answers() {
    let app = TestApp::start_with(|config| config.http_limits.max_body_bytes = 1000).await;
    let garbage = b"this is not json";
    let (status, answer) = post(&app, garbage, Some(&app.sim.sign_webhook(garbage))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("body is not a Plaid webhook")
    );
    let big = vec![b' '; 2000];
    let (status, answer) = post(&app, &big, Some(&app.sim.sign_webhook(&big))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"], "body is larger than 1000 bytes");
    let (status, answer) = post_to(&app, "/webhooks/akoya", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"], "body is larger than 1000 bytes");
    assert_eq!(app.count("webhook_deliveries").await, 0);
    assert_eq!(app.count("jobs").await, 0);
    app.stop().await;

    let down = TestApp::start_with(|config| {
        config.database_url = "postgres://postgres@127.0.0.1:1/unreachable".into();
    })
    .await;
    let retry_later = "cannot record the webhook now; retry later";
    let (status, answer) = deliver(&down, &item_webhook("item-x", "LOGIN_REPAIRED")).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "so that Plaid retries"
    );
    assert_eq!(answer["error"], retry_later);
    let notification = serde_json::to_vec(&linkstate_sim::Simulator::akoya_notification(
        "CONSENT",
        "CONSENT_REVOKED",
        "consent-1",
        "mikomo",
    ))
    .unwrap();
    let (status, answer) = post_to(&down, "/webhooks/akoya", &notification).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "so that Akoya retries"
    );
    assert_eq!(answer["error"], retry_later);
    // Not ready while the database is away; alive all the same.
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://{}/readyz", down.app.http_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text().await.unwrap(), "database unavailable");
    let alive = http
        .get(format!("http://{}/healthz", down.app.http_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), StatusCode::OK);
    down.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_delivery_twice_is_recorded_and_applied_once() {
    let (app, key, item, _) = connected().await;
    let body = serde_json::to_vec(&item_error(&item.item_id, "ITEM_LOGIN_REQUIRED")).unwrap();
    let jwt = app.sim.sign_webhook(&body);
    let (first, one) = post(&app, &body, Some(&jwt)).await;
    let (second, two) = post(&app, &body, Some(&jwt)).await;
    assert_eq!((first, second), (StatusCode::OK, StatusCode::OK));
    assert_eq!(one["duplicate"], false);
    assert_eq!(two["duplicate"], true);
    assert_eq!(one["webhookId"], two["webhookId"]);
    // Re-signed later, as a Plaid retry would be: still the same delivery.
    let (_, three) = post(&app, &body, Some(&app.sim.sign_webhook(&body))).await;
    assert_eq!(three["duplicate"], true);
    // Eight copies of another delivery at once: exactly one is new.
    let body = serde_json::to_vec(&item_webhook(&item.item_id, "PENDING_EXPIRATION")).unwrap();
    let jwt = app.sim.sign_webhook(&body);
    let copies = futures::future::join_all((0..8).map(|_| post(&app, &body, Some(&jwt)))).await;
    let new = copies
        .iter()
        .filter(|(_, answer)| answer["duplicate"] == false);
    assert_eq!(new.count(), 1);
    wait_processed(&app, 3).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingCustomerActionRequired) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events_after = all_events(&app, &key).await;
    assert_eq!(events_after.len(), events.len(), "applied once");
    // (The other delivery is Plaid's WEBHOOK_UPDATE_ACKNOWLEDGED from the import.)
    assert_eq!(
        app.count("webhook_deliveries WHERE webhook_code = 'ERROR'")
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_required_then_repaired() {
    let (app, key, item, connection) = connected().await;
    let (status, _) = deliver(&app, &item_error(&item.item_id, "ITEM_LOGIN_REQUIRED")).await;
    assert_eq!(status, StatusCode::OK);
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
    let change = payload(&events[events.len() - 2]);
    assert_eq!(
        change.old_status,
        Some(proto::connection::Status::Active as i32)
    );
    assert_eq!(
        change.new_status,
        Some(proto::connection::Status::ReconnectRequired as i32)
    );
    assert_eq!(
        change.new_status_reason,
        Some(proto::connection::StatusReason::LoginRequired as i32)
    );
    for event in &events[events.len() - 2..] {
        let details = payload(event).service_provider_details.as_ref().unwrap();
        assert_eq!(field(details, "webhook_code").as_deref(), Some("ERROR"));
        assert_eq!(
            field(details, "item_id").as_deref(),
            Some(item.item_id.as_str())
        );
        assert_eq!(field(details, "serviceProvider").as_deref(), Some("PLAID"));
        assert_eq!(
            field(details, "serviceProviderConnectionId").as_deref(),
            Some(item.item_id.as_str())
        );
        assert!(details.fields.contains_key("error"));
    }
    assert_eq!(
        payload(events.last().unwrap()).reason.as_deref(),
        Some("LOGIN_REQUIRED")
    );

    deliver(&app, &item_webhook(&item.item_id, "LOGIN_REPAIRED")).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionStatusChange) == 2
    })
    .await;
    let repaired = payload(events.last().unwrap());
    assert_eq!(
        repaired.new_status,
        Some(proto::connection::Status::Active as i32)
    );
    assert_eq!(repaired.new_status_reason, None);
    assert_eq!(count(&events, Type::BankLinkingCustomerActionRequired), 1);
    let now = connection_status(&app, &key, &connection.id).await;
    assert_eq!(now, proto::connection::Status::Active);

    // The login breaks again: Plaid sends the very same body as the first time. It is not a
    // retry of that one (the item said LOGIN_REPAIRED since), so it takes effect again.
    let (_, again) = deliver(&app, &item_error(&item.item_id, "ITEM_LOGIN_REQUIRED")).await;
    assert_eq!(again["duplicate"], false);
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingCustomerActionRequired) == 2
    })
    .await;
    assert_eq!(count(&events, Type::BankLinkingConnectionStatusChange), 3);
    let now = connection_status(&app, &key, &connection.id).await;
    assert_eq!(now, proto::connection::Status::ReconnectRequired);
    app.stop().await;
}

async fn connection_status(app: &TestApp, key: &str, id: &str) -> proto::connection::Status {
    proto::connection::Status::try_from(common::connection(app, key, id).await.status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_item_errors_consent_and_new_accounts() {
    let (app, key, item, connection) = connected().await;
    deliver(&app, &item_error(&item.item_id, "INSTITUTION_DOWN")).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionStatusChange) == 1
    })
    .await;
    let change = payload(events.last().unwrap());
    assert_eq!(
        change.new_status,
        Some(proto::connection::Status::Degraded as i32)
    );
    assert_eq!(
        change.new_status_reason,
        Some(proto::connection::StatusReason::InstitutionCurrentlyUnavailable as i32)
    );
    deliver(&app, &item_webhook(&item.item_id, "LOGIN_REPAIRED")).await;
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionStatusChange) == 2
    })
    .await;

    for (code, n) in [("PENDING_EXPIRATION", 3), ("PENDING_DISCONNECT", 3)] {
        deliver(&app, &item_webhook(&item.item_id, code)).await;
        let events = events_until(&app, &key, |e| {
            count(e, Type::BankLinkingConnectionStatusChange) == n
        })
        .await;
        let change = payload(events.last().unwrap());
        assert_eq!(
            change.new_status,
            Some(proto::connection::Status::Active as i32)
        );
        assert_eq!(
            change.new_status_reason,
            Some(proto::connection::StatusReason::AccessExpiringSoon as i32)
        );
    }
    deliver(&app, &item_webhook(&item.item_id, "NEW_ACCOUNTS_AVAILABLE")).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingNewAccountsAvailable) == 1
    })
    .await;
    let change = payload(&events[events.len() - 2]);
    assert_eq!(
        change.new_status_reason,
        Some(proto::connection::StatusReason::NewAccountsAvailable as i32)
    );
    assert_eq!(
        connection_status(&app, &key, &connection.id).await,
        proto::connection::Status::Active
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_revoked_deletes_and_account_revoked_removes_one() {
    let (app, key, item, connection) = connected().await;
    let accounts = financial_accounts(&app, &key, &connection.id).await;
    // USER_ACCOUNT_REVOKED for one account: that account only.
    let revoked = &accounts[0];
    let provider_account: String = {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            provider_account_id: String,
        }
        let mut conn = linkstate::store::connect(&app.pool).await.unwrap();
        diesel::sql_query(format!(
            "SELECT provider_account_id FROM financial_accounts WHERE id = '{}'",
            revoked.id
        ))
        .get_result::<Row>(&mut conn)
        .await
        .unwrap()
        .provider_account_id
    };
    let mut webhook = item_webhook(&item.item_id, "USER_ACCOUNT_REVOKED");
    webhook["account_id"] = json!(provider_account);
    deliver(&app, &webhook).await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingAccountsRemoved) == 1
    })
    .await;
    let removed: Vec<_> = payload(events.last().unwrap())
        .financial_accounts
        .iter()
        .map(|a| a.id.clone().unwrap())
        .collect();
    assert_eq!(removed, vec![revoked.id.clone()]);

    // USER_PERMISSION_REVOKED: the connection is deleted and every remaining account removed.
    deliver(
        &app,
        &item_webhook(&item.item_id, "USER_PERMISSION_REVOKED"),
    )
    .await;
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingConnectionDeleted) == 1
    })
    .await;
    let tail: Vec<_> = types(&events).into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        vec![
            Type::BankLinkingAccountsRemoved,
            Type::BankLinkingConnectionDeleted
        ]
    );
    let removed = payload(events.last().unwrap()).financial_accounts.len();
    // Every account of the connection, the one revoked before included, as Meld lists them.
    assert_eq!(removed, accounts.len());
    assert_eq!(
        connection_status(&app, &key, &connection.id).await,
        proto::connection::Status::Deleted
    );
    assert_eq!(
        app.count("connections WHERE credentials IS NOT NULL").await,
        0,
        "no tokens kept"
    );
    // Stored data stays readable.
    let still = financial_accounts(&app, &key, &connection.id).await;
    assert!(
        still
            .iter()
            .all(|a| a.status == proto::financial_account::Status::Inactive as i32)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_transactions_webhooks_syncs_once() {
    let (app, key, item, _) = connected().await;
    app.sim.mutate(
        &item.item_id,
        Mutation {
            add: 2,
            modify: 1,
            remove: 0,
        },
    );
    for (n, code) in [
        "SYNC_UPDATES_AVAILABLE",
        "DEFAULT_UPDATE",
        "INITIAL_UPDATE",
        "HISTORICAL_UPDATE",
        "TRANSACTIONS_REMOVED",
    ]
    .iter()
    .enumerate()
    {
        let mut webhook = json!({"webhook_type": "TRANSACTIONS", "webhook_code": code, "item_id": item.item_id, "new_transactions": n});
        webhook["environment"] = json!("sandbox");
        let (status, _) = deliver(&app, &webhook).await;
        assert_eq!(status, StatusCode::OK);
    }
    let events = events_until(&app, &key, |e| {
        count(e, Type::BankLinkingTransactionsAggregated) == 2
    })
    .await;
    wait_processed(&app, 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_after = all_events(&app, &key).await;
    assert_eq!(
        count(&events_after, Type::BankLinkingTransactionsAggregated),
        2,
        "the burst made one sync with changes"
    );
    let last = events
        .iter()
        .rev()
        .find(|e| e.event_type == Type::BankLinkingTransactionsAggregated as i32)
        .unwrap();
    let added: i64 = payload(last)
        .financial_accounts
        .iter()
        .map(|a| a.num_transactions_added.unwrap())
        .sum();
    assert_eq!(added, 2);
    // A webhook-driven sync touches transactions only.
    assert_eq!(count(&events_after, Type::BankLinkingAccountsUpdated), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_unknown_items_and_stale_webhooks_change_nothing() {
    let (app, key, item, connection) = connected().await;
    let before = all_events(&app, &key).await.len();
    let mut ack = item_webhook(&item.item_id, "WEBHOOK_UPDATE_ACKNOWLEDGED");
    ack["new_webhook_url"] = json!("https://example.invalid/hook");
    assert_eq!(deliver(&app, &ack).await.0, StatusCode::OK);
    assert_eq!(
        deliver(&app, &item_error("unknown-item", "ITEM_LOGIN_REQUIRED"))
            .await
            .0,
        StatusCode::OK
    );
    // Past the grace in which an item's import may still be committing.
    sql(
        &app,
        "UPDATE webhook_deliveries SET received_at = received_at - interval '2 minutes' \
         WHERE provider_connection_id = 'unknown-item'",
    )
    .await;
    // A newer report first, then an older one that arrives late: the older one is stale.
    let repaired = serde_json::to_vec(&item_webhook(&item.item_id, "LOGIN_REPAIRED")).unwrap();
    post(&app, &repaired, Some(&app.sim.sign_webhook(&repaired))).await;
    wait_processed(&app, 4).await;
    let late = serde_json::to_vec(&item_error(&item.item_id, "ITEM_LOGIN_REQUIRED")).unwrap();
    let signed_earlier = app
        .sim
        .sign_webhook_at(&late, chrono::Utc::now().timestamp() - 60);
    assert_eq!(
        post(&app, &late, Some(&signed_earlier)).await.0,
        StatusCode::OK
    );
    wait_processed(&app, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        all_events(&app, &key).await.len(),
        before,
        "nothing changed"
    );
    assert_eq!(
        connection_status(&app, &key, &connection.id).await,
        proto::connection::Status::Active
    );
    let outcomes = app
        .count("webhook_deliveries WHERE outcome = 'unknown_connection'")
        .await;
    assert_eq!(outcomes, 1);
    assert_eq!(
        app.count("webhook_deliveries WHERE outcome = 'stale'")
            .await,
        1
    );
    let metrics = common::metrics(&app).await;
    assert!(
        metrics.contains("linkstate_unknown_webhooks_total{outcome=\"PLAID\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_webhook_runs_the_same_path() {
    let (app, key, item, _) = connected().await;
    let body = serde_json::to_vec(&item_error(&item.item_id, "ITEM_LOGIN_REQUIRED")).unwrap();
    let request = |jwt: String| proto::RecordWebhookRequest {
        service_provider: proto::service_provider::Value::Plaid as i32,
        headers: [("Plaid-Verification".to_string(), jwt)].into(),
        body: body.clone(),
    };
    let mut client = proto::webhook_service_client::WebhookServiceClient::new(app.channel().await);
    let first = client
        .record_webhook(authed(&key, request(app.sim.sign_webhook(&body))))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .record_webhook(authed(&key, request(app.sim.sign_webhook(&body))))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.webhook_id, again.webhook_id);
    let recorded = app.count("webhook_deliveries").await;
    let bad = client
        .record_webhook(authed(&key, request("garbage".into())))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::Unauthenticated);
    assert!(
        bad.message().starts_with("webhook signature: "),
        "{}",
        bad.message()
    );
    let garbage = b"this is not json".to_vec();
    let malformed = client
        .record_webhook(authed(
            &key,
            proto::RecordWebhookRequest {
                headers: [(
                    "Plaid-Verification".to_string(),
                    app.sim.sign_webhook(&garbage),
                )]
                .into(),
                body: garbage,
                ..request(String::new())
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert!(
        malformed
            .message()
            .starts_with("body is not a Plaid webhook"),
        "{}",
        malformed.message()
    );
    let big = vec![b' '; 2 * 1024 * 1024];
    let too_large = client
        .record_webhook(authed(
            &key,
            proto::RecordWebhookRequest {
                headers: [("Plaid-Verification".to_string(), app.sim.sign_webhook(&big))].into(),
                body: big,
                ..request(String::new())
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(too_large.code(), tonic::Code::ResourceExhausted);
    assert_eq!(too_large.message(), "body is larger than 1048576 bytes");
    assert_eq!(
        app.count("webhook_deliveries").await,
        recorded,
        "nothing refused was recorded"
    );
    let unauthenticated = client
        .record_webhook(request(app.sim.sign_webhook(&body)))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    events_until(&app, &key, |e| {
        count(e, Type::BankLinkingCustomerActionRequired) == 1
    })
    .await;
    app.stop().await;
}
