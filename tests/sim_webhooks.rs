//! Webhooks over real HTTP: signed as Plaid signs them, sent when Plaid would send them, and the
//! sandbox endpoints that make things happen.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::json;
use sha2::{Digest, Sha256};

use linkstate::providers::plaid::{PlaidClient, PlaidError, PlaidWebhook};
use linkstate_sim::{Mutation, SandboxItem, Simulator};
use linkstate_testing::plaid::{Received, client, next_webhook, start, sync_to_end, webhook_sink};

/// An Item whose webhooks go to a fresh receiver, once the acknowledgement has arrived.
async fn item_with_sink(
    sim: &Simulator,
    plaid: &PlaidClient,
) -> (SandboxItem, tokio::sync::mpsc::UnboundedReceiver<Received>) {
    let (hook, mut received) = webhook_sink().await;
    let item = sim.create_item("ins_109508");
    plaid
        .item_webhook_update(&item.access_token, &hook)
        .await
        .unwrap();
    let ack = next_webhook(&mut received, "WEBHOOK_UPDATE_ACKNOWLEDGED").await;
    let ack: PlaidWebhook = serde_json::from_slice(&ack.body).unwrap();
    assert_eq!(ack.new_webhook_url.as_deref(), Some(hook.as_str()));
    (item, received)
}

/// Verifies a delivery as a receiver must (see PROVIDERS.md).
async fn verify(plaid: &PlaidClient, received: &Received) {
    let token = received
        .verification
        .as_deref()
        .expect("a Plaid-Verification header");
    let claims = verified_claims(plaid, token).await;
    assert_eq!(claims["request_body_sha256"], sha256_hex(&received.body));
}

/// The claims of a webhook JWT whose signature checks out with the JWK of its `kid`.
async fn verified_claims(plaid: &PlaidClient, token: &str) -> serde_json::Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.expect("a kid");
    let jwk = plaid.webhook_verification_key_get(&kid).await.unwrap().key;
    assert_eq!(jwk.expired_at, None);
    let key = DecodingKey::from_ec_components(&jwk.x, &jwk.y).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .unwrap()
        .claims;
    let age = chrono::Utc::now().timestamp() - claims["iat"].as_i64().unwrap();
    assert!((0..300).contains(&age), "iat is now: {age}");
    claims
}

fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[tokio::test]
async fn webhooks_are_signed_as_plaid_signs_them() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let (item, mut received) = item_with_sink(&sim, &plaid).await;
    sim.set_auto_historical(false);
    let outcome = sim.mutate(
        &item.item_id,
        Mutation {
            add: 2,
            ..Mutation::default()
        },
    );
    assert_eq!(outcome.added.len(), 2);

    let delivery = next_webhook(&mut received, "SYNC_UPDATES_AVAILABLE").await;
    verify(&plaid, &delivery).await;
    let hook: PlaidWebhook = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(hook.webhook_type, "TRANSACTIONS");
    assert_eq!(hook.item_id.as_deref(), Some(item.item_id.as_str()));
    assert_eq!(hook.initial_update_complete, Some(true));
    assert_eq!(hook.historical_update_complete, Some(false));
    assert_eq!(hook.environment.as_deref(), Some("sandbox"));

    let body = br#"{"webhook_type":"ITEM","webhook_code":"LOGIN_REPAIRED"}"#;
    let built = Received {
        verification: Some(sim.sign_webhook(body)),
        body: body.to_vec(),
    };
    verify(&plaid, &built).await;
}

#[tokio::test]
async fn a_tampered_body_no_longer_matches_its_signature() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let body = br#"{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE"}"#;
    let claims = verified_claims(&plaid, &sim.sign_webhook(body)).await;
    assert_eq!(claims["request_body_sha256"], sha256_hex(body));
    assert_ne!(claims["request_body_sha256"], sha256_hex(b"{}"));
}

#[tokio::test]
async fn the_historical_update_is_announced() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let (item, mut received) = item_with_sink(&sim, &plaid).await;
    sync_to_end(&plaid, &item.access_token, None, 500).await;
    let delivery = next_webhook(&mut received, "SYNC_UPDATES_AVAILABLE").await;
    let hook: PlaidWebhook = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(hook.historical_update_complete, Some(true));
}

#[tokio::test]
async fn a_refresh_is_answered_by_a_webhook() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let (item, mut received) = item_with_sink(&sim, &plaid).await;
    let answer = plaid
        .transactions_refresh(&item.access_token)
        .await
        .unwrap();
    assert_eq!(answer.request_id.len(), 15);
    let delivery = next_webhook(&mut received, "SYNC_UPDATES_AVAILABLE").await;
    verify(&plaid, &delivery).await;
}

#[tokio::test]
async fn reset_login_breaks_product_calls_until_repaired() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let (item, mut received) = item_with_sink(&sim, &plaid).await;
    let token = &item.access_token;
    let answer = plaid.sandbox_item_reset_login(token).await.unwrap();
    assert!(answer.reset_login);

    let delivery = next_webhook(&mut received, "ERROR").await;
    verify(&plaid, &delivery).await;
    let hook: PlaidWebhook = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(hook.webhook_type, "ITEM");
    let error = hook.error.expect("the Item's error");
    assert_eq!(error.error_code, "ITEM_LOGIN_REQUIRED");
    assert_eq!(error.status, Some(400));

    let login_required = |result: Result<(), PlaidError>| {
        let error = result.unwrap_err();
        assert_eq!(error.http_status(), Some(400));
        assert_eq!(error.error_code(), Some("ITEM_LOGIN_REQUIRED"));
        let PlaidError::Api { error, .. } = error else {
            unreachable!()
        };
        assert_eq!(error.error_type, "ITEM_ERROR");
    };
    login_required(plaid.accounts_get(token).await.map(drop));
    login_required(plaid.accounts_balance_get(token).await.map(drop));
    login_required(plaid.auth_get(token).await.map(drop));
    login_required(plaid.identity_get(token).await.map(drop));
    login_required(plaid.transactions_sync(token, None, 100).await.map(drop));
    login_required(plaid.transactions_refresh(token).await.map(drop));
    let got = plaid.item_get(token).await.unwrap();
    assert_eq!(
        got.item.error.map(|e| e.error_code).as_deref(),
        Some("ITEM_LOGIN_REQUIRED"),
        "/item/get still answers, with the error"
    );

    let fired = plaid
        .sandbox_item_fire_webhook(token, "LOGIN_REPAIRED")
        .await
        .unwrap();
    assert!(fired.webhook_fired);
    next_webhook(&mut received, "LOGIN_REPAIRED").await;
    plaid.accounts_get(token).await.unwrap();
    assert!(plaid.item_get(token).await.unwrap().item.error.is_none());
}

#[tokio::test]
async fn fire_webhook_sends_the_sandbox_codes() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let (item, mut received) = item_with_sink(&sim, &plaid).await;
    for code in [
        "SYNC_UPDATES_AVAILABLE",
        "DEFAULT_UPDATE",
        "NEW_ACCOUNTS_AVAILABLE",
        "USER_ACCOUNT_REVOKED",
        "PENDING_DISCONNECT",
    ] {
        plaid
            .sandbox_item_fire_webhook(&item.access_token, code)
            .await
            .unwrap();
        let delivery = next_webhook(&mut received, code).await;
        verify(&plaid, &delivery).await;
        let hook: PlaidWebhook = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(hook.item_id.as_deref(), Some(item.item_id.as_str()));
    }
    let error = plaid
        .sandbox_item_fire_webhook(&item.access_token, "NOT_A_CODE")
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("INVALID_FIELD"));

    let quiet = sim.create_item("ins_109508");
    let error = plaid
        .sandbox_item_fire_webhook(&quiet.access_token, "DEFAULT_UPDATE")
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("SANDBOX_WEBHOOK_INVALID"));
}

#[tokio::test]
async fn fire_webhook_sends_a_body_byte_for_byte() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let (item, mut received) = item_with_sink(&sim, &plaid).await;
    let body = json!({"webhook_type": "ITEM", "webhook_code": "CUSTOM", "item_id": item.item_id,
        "something_new": [1, 2]});
    sim.fire_webhook(&item.item_id, body.clone());
    let delivery = next_webhook(&mut received, "CUSTOM").await;
    verify(&plaid, &delivery).await;
    assert_eq!(delivery.json(), body);
    let hook: PlaidWebhook = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(hook.extra["something_new"], json!([1, 2]));
}

#[tokio::test]
async fn webhooks_to_nowhere_are_dropped_quietly() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let item = sim.create_item("ins_109508");
    plaid
        .item_webhook_update(&item.access_token, "http://127.0.0.1:9/nobody")
        .await
        .unwrap();
    sim.mutate(
        &item.item_id,
        Mutation {
            add: 1,
            ..Mutation::default()
        },
    );
    plaid.accounts_get(&item.access_token).await.unwrap();
}
