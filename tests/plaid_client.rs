//! The client against the simulator, over real HTTP on 127.0.0.1.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

use linkstate::domain::secret::Secret;
use linkstate::providers::plaid::*;
use linkstate_testing::plaid::{self as testing, client, client_with, rule, start};

#[tokio::test]
async fn sandbox_flow_creates_an_item() {
    let (_sim, url) = start().await;
    let plaid = client(&url);
    let created = plaid
        .sandbox_public_token_create("ins_109508", &["transactions"])
        .await
        .unwrap();
    assert!(created.public_token.starts_with("public-sandbox-"));
    let exchanged = plaid
        .item_public_token_exchange(&created.public_token)
        .await
        .unwrap();
    assert!(
        exchanged
            .access_token
            .expose()
            .starts_with("access-sandbox-")
    );
    assert_eq!(exchanged.item_id.len(), 37);

    let got = plaid.item_get(&exchanged.access_token).await.unwrap();
    assert_eq!(got.item.item_id, exchanged.item_id);
    assert_eq!(got.item.institution_id.as_deref(), Some("ins_109508"));
    assert_eq!(got.item.billed_products, ["transactions"]);
    assert!(got.item.available_products.contains(&"auth".to_owned()));
    assert_eq!(got.item.update_type, "background");
    assert!(got.item.error.is_none() && got.item.webhook.is_none());
    assert!(got.item.created_at.is_some());
    assert_eq!(got.request_id.len(), 15);
}

#[tokio::test]
async fn accounts_get_answers_the_sandbox_accounts() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109509");
    let answer = client(&url).accounts_get(&item.access_token).await.unwrap();
    assert_eq!(answer.item.item_id, item.item_id);
    let names: Vec<_> = answer.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Plaid Checking",
            "Plaid Saving",
            "Plaid CD",
            "Plaid Credit Card",
            "Plaid Money Market"
        ]
    );
    let checking = &answer.accounts[0];
    let mask = checking.mask.as_deref().unwrap();
    assert!(mask.len() == 4 && mask.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        (checking.r#type.as_str(), checking.subtype.as_deref()),
        ("depository", Some("checking"))
    );
    assert_eq!(checking.balances.iso_currency_code.as_deref(), Some("USD"));
    let current = decimal_string(checking.balances.current.as_ref().unwrap());
    assert!(
        current.split('.').nth(1).is_none_or(|d| d.len() <= 2),
        "{current}"
    );
}

#[tokio::test]
async fn item_webhook_update_sets_the_webhook() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109510");
    let hook = "https://linkstate.example/webhooks/plaid";
    let answer = client(&url)
        .item_webhook_update(&item.access_token, hook)
        .await
        .unwrap();
    assert_eq!(answer.item.webhook.as_deref(), Some(hook));
    assert_eq!(sim.item_webhook(&item.item_id).as_deref(), Some(hook));
}

#[tokio::test]
async fn institutions_get_by_id_answers_the_institution() {
    let (_sim, url) = start().await;
    let answer = client(&url)
        .institutions_get_by_id("ins_109511")
        .await
        .unwrap();
    assert_eq!(answer.institution.name, "Tartan Bank");
    assert_eq!(answer.institution.country_codes, ["US"]);
}

#[tokio::test]
async fn webhook_verification_key_get_answers_the_jwk() {
    let (sim, url) = start().await;
    let kid = testing::webhook_key_id(&sim);
    let answer = client(&url)
        .webhook_verification_key_get(&kid)
        .await
        .unwrap();
    assert_eq!(answer.key.kid, kid);
    assert_eq!(
        (answer.key.alg.as_str(), answer.key.crv.as_str()),
        ("ES256", "P-256")
    );
    assert_eq!(answer.key.expired_at, None);
}

#[tokio::test]
async fn accounts_balance_get_answers_fresh_balances() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let plaid = client(&url);
    let cached = plaid.accounts_get(&item.access_token).await.unwrap();
    let mut moved = false;
    for _ in 0..3 {
        let fresh = plaid
            .accounts_balance_get(&item.access_token)
            .await
            .unwrap();
        assert_eq!(fresh.item.item_id, item.item_id);
        assert_eq!(fresh.accounts.len(), cached.accounts.len());
        let checking = decimal_string(fresh.accounts[0].balances.current.as_ref().unwrap());
        assert!(
            checking.split('.').nth(1).is_none_or(|d| d.len() <= 2),
            "{checking}"
        );
        moved |= fresh.accounts[0].balances.current != cached.accounts[0].balances.current;
    }
    assert!(moved, "balances drift");
}

#[tokio::test]
async fn auth_get_answers_ach_numbers_that_debug_hides() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let answer = client(&url).auth_get(&item.access_token).await.unwrap();
    let depository = answer
        .accounts
        .iter()
        .filter(|a| a.r#type == "depository")
        .count();
    assert_eq!(answer.numbers.ach.len(), depository);
    let checking = &answer.numbers.ach[0];
    assert_eq!(checking.account_id, answer.accounts[0].account_id);
    assert_eq!(checking.routing.expose(), "011401533");
    let mask = answer.accounts[0].mask.as_deref().unwrap();
    assert!(checking.account.expose().ends_with(mask));
    assert!(checking.wire_routing.is_some());
    let printed = format!("{answer:?}");
    assert!(!printed.contains(checking.account.expose()), "{printed}");
    assert!(!printed.contains("011401533"), "{printed}");
}

#[tokio::test]
async fn identity_get_answers_owners_per_account() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let answer = client(&url).identity_get(&item.access_token).await.unwrap();
    assert_eq!(answer.accounts.len(), 5);
    for account in &answer.accounts {
        let owner = &account.owners[0];
        assert_eq!(owner.names.len(), 1);
        assert!(owner.emails[0].data.ends_with("@example.com"));
        assert!(!owner.phone_numbers.is_empty());
        assert_eq!(owner.addresses[0].data.country.as_deref(), Some("US"));
    }
    assert_eq!(answer.accounts[0].account.name, "Plaid Checking");
}

#[tokio::test]
async fn transactions_sync_pages_through_the_history() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let plaid = client(&url);
    let first = plaid
        .transactions_sync(&item.access_token, None, 2)
        .await
        .unwrap();
    assert_eq!(first.added.len(), 2);
    assert!(first.has_more && !first.next_cursor.is_empty());
    let next = plaid
        .transactions_sync(&item.access_token, Some(&first.next_cursor), 2)
        .await
        .unwrap();
    assert_ne!(next.added[0].transaction_id, first.added[0].transaction_id);
    let transaction = &first.added[0];
    assert_eq!(transaction.iso_currency_code.as_deref(), Some("USD"));
    assert!(!transaction.name.is_empty() && !transaction.payment_channel.is_empty());
}

#[tokio::test]
async fn item_remove_makes_the_token_unknown() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let plaid = client(&url);
    let removed = plaid.item_remove(&item.access_token).await.unwrap();
    assert_eq!(removed.request_id.len(), 15);
    let error = plaid.item_get(&item.access_token).await.unwrap_err();
    assert_eq!(error.error_code(), Some("ITEM_NOT_FOUND"));
    assert!(error.is_credentials_error());
    let error = plaid.item_remove(&item.access_token).await.unwrap_err();
    assert_eq!(error.error_code(), Some("ITEM_NOT_FOUND"));
}

#[tokio::test]
async fn injected_errors_reach_the_product_endpoints() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let plaid = client(&url);
    let token = &item.access_token;
    for endpoint in [
        "/accounts/balance/get",
        "/auth/get",
        "/identity/get",
        "/transactions/refresh",
        "/item/remove",
    ] {
        let mut down = rule(endpoint, 503, "API_ERROR", "PLANNED_MAINTENANCE");
        down.times = Some(1);
        sim.inject_error(down);
    }
    let errors = [
        plaid.accounts_balance_get(token).await.map(drop),
        plaid.auth_get(token).await.map(drop),
        plaid.identity_get(token).await.map(drop),
        plaid.transactions_refresh(token).await.map(drop),
        plaid.item_remove(token).await.map(drop),
    ];
    for error in errors {
        let error = error.unwrap_err();
        assert_eq!(error.http_status(), Some(503));
        assert!(error.is_retryable());
    }
    plaid.auth_get(token).await.unwrap();
}

#[tokio::test]
async fn injected_invalid_access_token_is_an_api_error() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    let mut invalid = rule(
        "/accounts/get",
        400,
        "INVALID_INPUT",
        "INVALID_ACCESS_TOKEN",
    );
    invalid.access_token = Some(item.access_token.expose().to_owned());
    sim.inject_error(invalid);

    let error = client(&url)
        .accounts_get(&item.access_token)
        .await
        .unwrap_err();
    let PlaidError::Api {
        http_status,
        error: body,
    } = &error
    else {
        panic!("expected an API error, got {error:?}");
    };
    assert_eq!(*http_status, 400);
    assert_eq!(body.error_type, "INVALID_INPUT");
    assert_eq!(body.request_id.as_ref().map(String::len), Some(15));
    assert_eq!(body.raw["display_message"], serde_json::Value::Null);
    assert_eq!(error.error_code(), Some("INVALID_ACCESS_TOKEN"));
    assert!(error.is_credentials_error());
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn injected_500_is_retryable() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    sim.inject_error(rule("/item/get", 500, "API_ERROR", "INTERNAL_SERVER_ERROR"));
    let error = client(&url).item_get(&item.access_token).await.unwrap_err();
    assert_eq!(error.http_status(), Some(500));
    assert!(error.is_retryable());
    assert!(!error.is_credentials_error());
}

#[tokio::test]
async fn latency_beyond_the_timeout_is_a_timeout() {
    let (sim, url) = start().await;
    let item = sim.create_item("ins_109508");
    sim.set_latency(Duration::from_millis(500));
    let plaid = client_with(
        &url,
        testing::CLIENT_ID,
        testing::SECRET,
        Duration::from_millis(100),
    );
    let error = plaid.item_get(&item.access_token).await.unwrap_err();
    assert!(matches!(error, PlaidError::Timeout), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn unconfigured_client_is_not_configured() {
    let plaid = PlaidClient::new(PlaidConfig {
        base_url: "http://127.0.0.1:9".into(),
        client_id: None,
        secret: None,
        timeout: Duration::from_secs(1),
    });
    assert!(!plaid.is_configured());
    let error = plaid
        .item_get(&Secret::new("access-sandbox-x"))
        .await
        .unwrap_err();
    assert!(matches!(error, PlaidError::NotConfigured));
    assert_eq!(
        error.to_string(),
        "Plaid is not configured: set PLAID_CLIENT_ID and PLAID_SECRET"
    );
}

#[tokio::test]
async fn wrong_api_keys_are_a_credentials_error() {
    let (_sim, url) = start().await;
    let plaid = client_with(&url, "someone", "else", Duration::from_secs(5));
    let error = plaid
        .institutions_get_by_id("ins_109508")
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("INVALID_API_KEYS"));
    assert!(error.is_credentials_error());
}

#[tokio::test]
async fn a_2xx_body_of_another_shape_is_a_decode_error() {
    let url = serve(Router::new().route("/item/get", post(|| async { "{\"item\": 1}" }))).await;
    let error = client(&url)
        .item_get(&Secret::new("access-sandbox-x"))
        .await
        .unwrap_err();
    assert!(matches!(error, PlaidError::Decode(_)), "{error:?}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_error_page_is_an_unexpected_response() {
    let page = || async { (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>") };
    let url = serve(Router::new().route("/item/get", post(page))).await;
    let error = client(&url)
        .item_get(&Secret::new("access-sandbox-x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, PlaidError::UnexpectedResponse { http_status: 502 }),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn an_unreachable_plaid_is_a_transport_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let error = client(&format!("http://{address}"))
        .item_get(&Secret::new("access-sandbox-x"))
        .await
        .unwrap_err();
    assert!(matches!(error, PlaidError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
}

/// Serves `router` on a free local port; answers its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}
