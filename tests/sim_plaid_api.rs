//! The simulator over real HTTP: Plaid's error bodies, the sandbox rules and the fault controls.

use std::time::Duration;

use serde_json::{Value, json};

use linkstate::providers::plaid::PlaidError;
use linkstate_testing::plaid::{
    self as testing, CLIENT_ID, SECRET, client, client_with, rule, start,
};

/// Posts `body` (with the accepted keys unless it has its own) and answers status and JSON.
async fn post(url: &str, path: &str, mut body: Value) -> (u16, Value) {
    let object = body.as_object_mut().unwrap();
    object.entry("client_id").or_insert(json!(CLIENT_ID));
    object.entry("secret").or_insert(json!(SECRET));
    send(testing::http().post(format!("{url}{path}")).json(&body)).await
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn error_code(body: &Value) -> &str {
    body["error_code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn unknown_access_token_answers_plaids_error_body() {
    let (_sim, url) = start().await;
    let token = "access-sandbox-00000000-0000-0000-0000-000000000000";
    let (status, body) = post(&url, "/accounts/get", json!({"access_token": token})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_type"], "INVALID_INPUT");
    assert_eq!(body["error_code"], "INVALID_ACCESS_TOKEN");
    assert_eq!(
        body["error_message"],
        "could not find matching access token"
    );
    assert_eq!(body["display_message"], Value::Null);
    assert!(body.get("display_message").is_some(), "present, as null");
    assert_eq!(body["request_id"].as_str().map(str::len), Some(15));
    assert_eq!(body["error_code_reason"], Value::Null);
    assert_eq!(body["causes"], json!([]));
    assert_eq!(body["status"], 400);
    assert_eq!(body["suggested_action"], Value::Null);
    assert_eq!(
        body["documentation_url"],
        "https://plaid.com/docs/errors/invalid-input/#invalid_access_token"
    );

    let (_, body) = post(&url, "/item/get", json!({"access_token": "nonsense"})).await;
    assert_eq!(error_code(&body), "INVALID_ACCESS_TOKEN");
}

#[tokio::test]
async fn wrong_or_missing_keys_answer_invalid_api_keys() {
    let (_sim, url) = start().await;
    let wrong = json!({"client_id": CLIENT_ID, "secret": "nope", "institution_id": "ins_109508",
        "country_codes": ["US"]});
    let (status, body) = post(&url, "/institutions/get_by_id", wrong).await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_API_KEYS"));
    let request = testing::http()
        .post(format!("{url}/institutions/get_by_id"))
        .json(&json!({"institution_id": "ins_109508", "country_codes": ["US"]}));
    let (status, body) = send(request).await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_API_KEYS"));
}

#[tokio::test]
async fn malformed_requests_answer_invalid_request_errors() {
    let (_sim, url) = start().await;
    let request = testing::http()
        .post(format!("{url}/item/get"))
        .body("not json");
    let (status, body) = send(request).await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_BODY"));
    assert_eq!(body["error_type"], "INVALID_REQUEST");
    let (_, body) = post(&url, "/item/get", json!({})).await;
    assert_eq!(error_code(&body), "MISSING_FIELDS");
    assert_eq!(
        body["error_message"],
        "the following required fields are missing: access_token"
    );
}

#[tokio::test]
async fn unknown_institutions_answer_invalid_institution() {
    let (_sim, url) = start().await;
    let plaid = client(&url);
    let error = plaid
        .institutions_get_by_id("ins_999999")
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("INVALID_INSTITUTION"));
    let error = plaid
        .sandbox_public_token_create("ins_999999", &["transactions"])
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("INVALID_INSTITUTION"));
    let gb = json!({"institution_id": "ins_109508", "country_codes": ["GB"]});
    let (_, body) = post(&url, "/institutions/get_by_id", gb).await;
    assert_eq!(error_code(&body), "INVALID_INSTITUTION");
}

#[tokio::test]
async fn initial_products_must_be_offered() {
    let (_sim, url) = start().await;
    let plaid = client(&url);
    let error = plaid
        .sandbox_public_token_create("ins_109512", &["investments"])
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("INVALID_PRODUCT"));
    let error = plaid
        .sandbox_public_token_create("ins_109512", &[])
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("INVALID_FIELD"));
}

#[tokio::test]
async fn public_tokens_exchange_once() {
    let (_sim, url) = start().await;
    let plaid = client(&url);
    let created = plaid
        .sandbox_public_token_create("ins_109508", &["auth", "transactions"])
        .await
        .unwrap();
    plaid
        .item_public_token_exchange(&created.public_token)
        .await
        .unwrap();
    let error = plaid
        .item_public_token_exchange(&created.public_token)
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("INVALID_PUBLIC_TOKEN"));
}

#[tokio::test]
async fn public_token_options_set_the_webhook() {
    let (sim, url) = start().await;
    let hook = "https://linkstate.example/hooks";
    let create = json!({"institution_id": "ins_109508", "initial_products": ["transactions"],
        "options": {"webhook": hook}});
    let (status, created) = post(&url, "/sandbox/public_token/create", create).await;
    assert_eq!(status, 200);
    let exchange = json!({"public_token": created["public_token"]});
    let (_, exchanged) = post(&url, "/item/public_token/exchange", exchange).await;
    let item_id = exchanged["item_id"].as_str().unwrap();
    assert_eq!(sim.item_webhook(item_id).as_deref(), Some(hook));
    assert_eq!(sim.item_webhook("unknown"), None);
}

#[tokio::test]
async fn an_item_keeps_its_accounts() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let item = sim.create_item("ins_109508");
    let first = plaid.accounts_get(&item.access_token).await.unwrap();
    let again = plaid.accounts_get(&item.access_token).await.unwrap();
    assert_eq!(
        serde_json::to_value(&first.accounts).unwrap(),
        serde_json::to_value(&again.accounts).unwrap()
    );
    assert_ne!(first.request_id, again.request_id);
    let other = sim.create_item("ins_109508");
    let other = plaid.accounts_get(&other.access_token).await.unwrap();
    assert_ne!(first.accounts[0].account_id, other.accounts[0].account_id);
}

#[tokio::test]
async fn counted_error_rules_run_out() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let item = sim.create_item("ins_109508");
    let mut login = rule("/item/get", 400, "ITEM_ERROR", "ITEM_LOGIN_REQUIRED");
    login.times = Some(1);
    sim.inject_error(login);
    let error = plaid.item_get(&item.access_token).await.unwrap_err();
    assert_eq!(error.error_code(), Some("ITEM_LOGIN_REQUIRED"));
    plaid.item_get(&item.access_token).await.unwrap();
}

#[tokio::test]
async fn error_rules_last_until_cleared_and_respect_the_token() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let target = sim.create_item("ins_109508");
    let bystander = sim.create_item("ins_109508");
    let mut down = rule(
        "/accounts/get",
        400,
        "INSTITUTION_ERROR",
        "INSTITUTION_DOWN",
    );
    down.access_token = Some(target.access_token.expose().to_owned());
    sim.inject_error(down);
    for _ in 0..2 {
        let error = plaid.accounts_get(&target.access_token).await.unwrap_err();
        assert!(error.is_retryable());
    }
    plaid.accounts_get(&bystander.access_token).await.unwrap();
    sim.clear_errors();
    plaid.accounts_get(&target.access_token).await.unwrap();
}

#[tokio::test]
async fn http_controls_set_latency_and_errors() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let http = testing::http();
    let slow = client_with(&url, CLIENT_ID, SECRET, Duration::from_millis(100));

    let (status, _) = send(
        http.post(format!("{url}/sim/latency"))
            .json(&json!({"milliseconds": 400})),
    )
    .await;
    assert_eq!(status, 200);
    let error = slow.item_get(&item.access_token).await.unwrap_err();
    assert!(matches!(error, PlaidError::Timeout), "{error:?}");
    send(
        http.post(format!("{url}/sim/latency"))
            .json(&json!({"milliseconds": 0})),
    )
    .await;

    let rule = json!({"endpoint": "/item/get", "http_status": 429, "error_type": "RATE_LIMIT_EXCEEDED",
        "error_code": "RATE_LIMIT", "error_message": "rate limit exceeded"});
    let (status, _) = send(http.post(format!("{url}/sim/errors")).json(&rule)).await;
    assert_eq!(status, 201);
    let error = slow.item_get(&item.access_token).await.unwrap_err();
    assert_eq!(
        (error.http_status(), error.is_retryable()),
        (Some(429), true)
    );

    let (status, _) = send(http.delete(format!("{url}/sim/errors"))).await;
    assert_eq!(status, 204);
    slow.item_get(&item.access_token).await.unwrap();
}

#[tokio::test]
async fn unknown_key_id_answers_plaids_error() {
    let (sim, url) = start().await;
    let plaid = client(&url);
    let error = plaid
        .webhook_verification_key_get("not-a-key")
        .await
        .unwrap_err();
    assert_eq!(
        error.error_code(),
        Some("INVALID_WEBHOOK_VERIFICATION_KEY_ID")
    );
    let kid = testing::webhook_key_id(&sim);
    let (_, body) = post(
        &url,
        "/webhook_verification_key/get",
        json!({"key_id": kid}),
    )
    .await;
    let key = &body["key"];
    for field in ["alg", "crv", "kid", "kty", "use", "x", "y", "created_at"] {
        assert!(key.get(field).is_some_and(|v| !v.is_null()), "{field}");
    }
    assert_eq!(key["expired_at"], Value::Null);
    assert!(body["request_id"].is_string());
}

#[tokio::test]
async fn the_catalog_has_plaids_sandbox_institutions() {
    let (sim, _url) = start().await;
    let institutions = sim.institutions();
    for (id, name) in [
        ("ins_109508", "First Platypus Bank"),
        ("ins_109509", "First Gingham Credit Union"),
        ("ins_109510", "Tattersall Federal Credit Union"),
        ("ins_109511", "Tartan Bank"),
        ("ins_109512", "Houndstooth Bank"),
    ] {
        assert!(
            institutions.contains(&(id.to_owned(), name.to_owned())),
            "{id}"
        );
    }
}
