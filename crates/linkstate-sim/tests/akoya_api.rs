//! Akoya's API of the simulator over real HTTP: token rotation, id tokens, the data paths and
//! their shapes, paging by `links.next.href`, revocation, account changes, injected errors and
//! notifications.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Days, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use linkstate_sim::{AkoyaErrorRule, Mutation, SimConfig, Simulator};
use linkstate_wire::akoya::{
    AccountsInfoResponse, BalancesResponse, CurrentCustomerResponse, IdTokenClaims, Notification,
    TokenResponse, TransactionsResponse,
};

const PROVIDER: &str = "mikomo";
const STALE: &str = "Refresh token is invalid or has already been claimed by another client.";

/// A simulator serving on a free local port, and its base URL.
async fn start() -> (Simulator, String) {
    let sim = Simulator::new(SimConfig {
        client_id: "client-id".into(),
        secret: "client-secret".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = sim.spawn(listener).await;
    (sim, format!("http://{address}"))
}

fn http() -> reqwest::Client {
    // reqwest has no rustls provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A refresh with the simulator's client credentials: the status and the JSON body.
async fn refresh(url: &str, refresh_token: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", "client-id"),
        ("client_secret", "client-secret"),
    ];
    let response = http()
        .post(format!("{url}/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// A successful refresh's answer.
async fn tokens(url: &str, refresh_token: &str) -> TokenResponse {
    let (status, body) = refresh(url, refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

/// A data call (`path_and_query` after the base URL) with this bearer: status and JSON body.
async fn get(url: &str, path_and_query: &str, id_token: Option<&str>) -> (StatusCode, Value) {
    let mut request = http().get(format!("{url}{path_and_query}"));
    if let Some(id_token) = id_token {
        request = request.bearer_auth(id_token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

/// A successful data call's body, read as `T`.
async fn read<T: serde::de::DeserializeOwned>(url: &str, path: &str, id_token: &str) -> T {
    let (status, body) = get(url, path, Some(id_token)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    serde_json::from_value(body).unwrap()
}

/// The claims of an id token, read without checking its signature.
fn claims(id_token: &str) -> (IdTokenClaims, Value) {
    let payload = id_token.split('.').nth(1).unwrap();
    let json: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    (serde_json::from_value(json.clone()).unwrap(), json)
}

fn not_authorized() -> Value {
    json!({"code": 602, "message": "Customer not authorized"})
}

/// Every transaction of the account in the window, following `links.next.href` from the first
/// page: (ids in the order served, pages).
async fn all_pages(
    url: &str,
    id_token: &str,
    account_id: &str,
    query: &str,
) -> (Vec<String>, usize) {
    let mut path = format!("/transactions/v2/{PROVIDER}/{account_id}?{query}");
    let (mut ids, mut pages) = (Vec::new(), 0);
    loop {
        let page: TransactionsResponse = read(url, &path, id_token).await;
        pages += 1;
        assert!(page.transactions.len() <= 100, "pages of 100 at most");
        ids.extend(
            page.transactions
                .iter()
                .map(|t| t.value.transaction_id.clone()),
        );
        match page.links.and_then(|links| links.next) {
            Some(next) => {
                assert!(next.href.starts_with("/transactions/v2/"), "{}", next.href);
                path = next.href;
            }
            None => return (ids, pages),
        }
    }
}

/// A window from two years and a half ago to tomorrow: every transaction of a ledger.
fn everything() -> String {
    let today = Utc::now().date_naive();
    let start = today - Days::new(900);
    let end = today + Days::new(1);
    format!("startTime={start}T00:00:00Z&endTime={end}T00:00:00Z&limit=100")
}

#[tokio::test]
async fn a_refresh_rotates_the_refresh_token() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let first = consent.refresh_token.expose().to_owned();
    assert!(first.starts_with("akoya-refresh-"));

    let answer = tokens(&url, &first).await;
    let second = answer.refresh_token.clone().unwrap();
    assert_ne!(second, first);
    assert_eq!(answer.token_type.as_deref(), Some("bearer"));
    assert_eq!(answer.expires_in, Some(86_399));
    assert!(answer.access_token.is_some());
    assert_eq!(
        sim.akoya_refresh_token(&consent.consent_id)
            .unwrap()
            .expose(),
        second
    );

    let (status, body) = refresh(&url, &first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": STALE})
    );
    assert_eq!(sim.akoya_refused_refreshes(), 1);

    let third = tokens(&url, &second).await.refresh_token.unwrap();
    assert_ne!(third, second);
    assert_eq!(sim.akoya_refreshes(&consent.consent_id), 2);
    let (status, _) = refresh(&url, "akoya-refresh-never-issued").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.akoya_refused_refreshes(), 2);
    assert_eq!(sim.calls("/token"), 4);
}

#[tokio::test]
async fn two_refreshes_with_one_token_have_one_winner() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let token = consent.refresh_token.expose().to_owned();
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move { refresh(&url, &token).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap().0);
    }
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!((won, refused), (1, 7), "{statuses:?}");
    assert_eq!(sim.akoya_refused_refreshes(), 7);
    assert_eq!(sim.akoya_refreshes(&consent.consent_id), 1);
}

#[tokio::test]
async fn the_token_endpoint_checks_in_dexs_order() {
    let (sim, url) = start().await;
    let token = sim
        .create_akoya_consent(PROVIDER)
        .refresh_token
        .expose()
        .to_owned();
    let post = |form: Vec<(&'static str, String)>| {
        let url = url.clone();
        async move {
            let response = http()
                .post(format!("{url}/token"))
                .form(&form)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let credentials = || {
        vec![
            ("client_id", "client-id".to_owned()),
            ("client_secret", "client-secret".to_owned()),
        ]
    };

    let mut wrong_grant = credentials();
    wrong_grant.push(("grant_type", "authorization_code".into()));
    wrong_grant.push(("refresh_token", token.clone()));
    let (status, body) = post(wrong_grant).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant",
               "error_description": "Missing or incorrect grant_type field. Must be refresh_token"})
    );

    // A JSON body reads as an empty form, so it fails on the grant type first.
    let response = http()
        .post(format!("{url}/token"))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    let mut no_token = credentials();
    no_token.push(("grant_type", "refresh_token".into()));
    let (status, body) = post(no_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": "No refresh token in request"})
    );

    let wrong_client = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", token.clone()),
        ("client_id", "client-id".to_owned()),
        ("client_secret", "not-the-secret".to_owned()),
    ];
    let (status, body) = post(wrong_client).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "invalid_client", "error_description": "Invalid client credentials."})
    );

    assert_eq!(
        sim.akoya_refused_refreshes(),
        0,
        "none got as far as the token"
    );
    tokens(&url, &token).await;
}

#[tokio::test]
async fn id_tokens_name_the_consent_and_its_accounts() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let answer = tokens(&url, consent.refresh_token.expose()).await;
    let (claims, raw) = claims(&answer.id_token);
    assert_eq!(claims.grant_id, consent.consent_id);
    assert_eq!(claims.connector_id.as_deref(), Some(PROVIDER));
    assert_eq!(claims.accounts, sim.akoya_account_ids(&consent.consent_id));
    assert_eq!(claims.accounts.len(), 5);
    let iat = raw["iat"].as_i64().unwrap();
    assert_eq!(claims.exp, Some(iat + 86_399));
    for claim in ["iss", "sub", "jti"] {
        assert!(raw[claim].is_string(), "{claim}");
    }
}

#[tokio::test]
async fn data_calls_need_a_live_id_token_of_their_provider() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let answer = tokens(&url, consent.refresh_token.expose()).await;
    let path = format!("/accounts-info/v2/{PROVIDER}");

    for id_token in [None, Some("not-a-jwt"), answer.access_token.as_deref()] {
        let (status, body) = get(&url, &path, id_token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{id_token:?}");
        assert_eq!(body, not_authorized());
    }
    let (status, body) = get(&url, "/balances/v2/other", Some(&answer.id_token)).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, not_authorized()),
        "another provider"
    );

    // An older id token keeps working after a refresh, until it expires.
    let next = answer.refresh_token.clone().unwrap();
    sim.set_akoya_id_token_lifetime(Duration::ZERO);
    let expired = tokens(&url, &next).await;
    assert_eq!(expired.expires_in, Some(0));
    let (status, body) = get(&url, &path, Some(&expired.id_token)).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, not_authorized()),
        "expired"
    );
    let (status, _) = get(&url, &path, Some(&answer.id_token)).await;
    assert_eq!(status, StatusCode::OK, "the older, longer-lived token");
    assert_eq!(sim.calls("/accounts-info"), 5);
    assert_eq!(sim.calls("/balances"), 1);
}

#[tokio::test]
async fn accounts_and_balances_have_akoyas_shapes() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let id_token = tokens(&url, consent.refresh_token.expose()).await.id_token;

    let (_, raw) = get(
        &url,
        &format!("/accounts-info/v2/{PROVIDER}"),
        Some(&id_token),
    )
    .await;
    let checking = &raw["accounts"][0]["depositAccount"];
    assert_eq!(checking["accountType"], "CHECKING");
    let display = checking["accountNumberDisplay"].as_str().unwrap();
    assert!(
        display.len() == 7 && display.starts_with("xxx"),
        "{display}"
    );
    assert_eq!(checking["nickname"], "Everyday");
    assert_eq!(checking["status"], "OPEN");
    assert_eq!(checking["balanceType"], "ASSET");
    assert_eq!(checking["currency"], json!({"currencyCode": "USD"}));
    let card = &raw["accounts"][3]["locAccount"];
    assert_eq!(
        (card["accountType"].as_str(), card["balanceType"].as_str()),
        (Some("CREDITCARD"), Some("LIABILITY"))
    );
    let info: AccountsInfoResponse = serde_json::from_value(raw).unwrap();
    let types: Vec<_> = info
        .accounts
        .iter()
        .map(|a| a.value.account_type.clone().unwrap())
        .collect();
    assert_eq!(
        types,
        ["CHECKING", "SAVINGS", "CD", "CREDITCARD", "MONEYMARKET"]
    );
    let ids: Vec<_> = info
        .accounts
        .iter()
        .map(|a| a.value.account_id.clone())
        .collect();
    assert_eq!(ids, sim.akoya_account_ids(&consent.consent_id));

    let path = format!("/balances/v2/{PROVIDER}");
    let balances: BalancesResponse = read(&url, &path, &id_token).await;
    assert_eq!(balances.accounts.len(), 5);
    for (balance, account) in balances.accounts.iter().zip(&info.accounts) {
        assert_eq!(balance.kind, account.kind, "wrapped as its account");
        assert_eq!(balance.value.account_id, account.value.account_id);
        let as_of = balance.value.balance_as_of.as_deref().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(as_of).is_ok(),
            "{as_of}"
        );
        let current = balance.value.current_balance.as_ref().unwrap();
        let text = current.0.to_plain_string();
        assert!(
            text.split('.').nth(1).is_none_or(|d| d.len() <= 2),
            "{text}"
        );
    }
    let [checking, _, cd, card, _] = &balances.accounts[..] else {
        panic!("five balances");
    };
    assert!(checking.value.available_balance.is_some());
    assert!(cd.value.available_balance.is_none(), "a CD has none");
    assert!(card.value.available_credit.is_some() && card.value.available_balance.is_none());

    let only = format!("{path}?accountIds={},{}", ids[1], ids[3]);
    let narrowed: BalancesResponse = read(&url, &only, &id_token).await;
    let listed: Vec<_> = narrowed
        .accounts
        .iter()
        .map(|b| b.value.account_id.clone())
        .collect();
    assert_eq!(listed, [ids[1].clone(), ids[3].clone()]);

    let path = format!("/customers/v2/{PROVIDER}/current");
    let (_, raw) = get(&url, &path, Some(&id_token)).await;
    assert_eq!(raw["customer"]["accounts"], Value::Null);
    let customer: CurrentCustomerResponse = serde_json::from_value(raw).unwrap();
    let name = customer.customer.name.unwrap();
    assert!(!name.first.unwrap().is_empty() && !name.last.unwrap().is_empty());
    let address = &customer.customer.addresses.unwrap()[0];
    assert!(address.line1.is_some() && address.postal_code.is_some());
    assert_eq!(customer.customer.email.unwrap().len(), 1);
    assert_eq!(sim.calls("/customers"), 1);
}

#[tokio::test]
async fn paging_by_next_links_covers_every_transaction_once() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    sim.set_history(&consent.item_id, 1_200);
    let id_token = tokens(&url, consent.refresh_token.expose()).await.id_token;

    // No historical update at Akoya: the whole history comes at once.
    let visible_before = sim.visible_transaction_ids(&consent.item_id).unwrap();
    sim.complete_historical(&consent.item_id);
    let every = sim.visible_transaction_ids(&consent.item_id).unwrap();
    assert!(visible_before.len() < every.len());

    let mut served = BTreeSet::new();
    let mut most_pages = 0;
    for account_id in sim.akoya_account_ids(&consent.consent_id) {
        let (ids, pages) = all_pages(&url, &id_token, &account_id, &everything()).await;
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "none twice");
        served.extend(ids);
        most_pages = most_pages.max(pages);
    }
    assert!(most_pages >= 3, "several pages: {most_pages}");
    assert_eq!(served, every, "every transaction, on its account");
}

#[tokio::test]
async fn transactions_are_served_oldest_first_in_their_window() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let id_token = tokens(&url, consent.refresh_token.expose()).await.id_token;
    let checking = sim.akoya_account_ids(&consent.consent_id)[0].clone();

    let path = format!("/transactions/v2/{PROVIDER}/{checking}?{}", everything());
    let (_, raw) = get(&url, &path, Some(&id_token)).await;
    let next = raw["links"]["next"]["href"].as_str().unwrap();
    let start = (Utc::now().date_naive() - Days::new(900)).to_string();
    assert!(
        next.starts_with(&format!("/transactions/v2/{PROVIDER}/{checking}?endTime=")),
        "{next}"
    );
    assert!(
        next.ends_with(&format!(
            "&limit=100&offset=100&startTime={start}T00%3A00%3A00Z"
        )),
        "{next}"
    );
    let page: TransactionsResponse = serde_json::from_value(raw).unwrap();
    assert_eq!(page.transactions.len(), 100);
    let days: Vec<_> = page
        .transactions
        .iter()
        .map(|t| {
            let value = &t.value;
            assert_eq!(t.kind, "depositTransaction");
            assert_eq!(value.account_id, checking);
            assert!(!value.amount.0.to_plain_string().starts_with('-'));
            let memo = value.debit_credit_memo.as_deref().unwrap();
            assert!(memo == "DEBIT" || memo == "CREDIT");
            let when = value.posted_timestamp.clone().unwrap_or_else(|| {
                assert_eq!(value.status.as_deref(), Some("PENDING"));
                value.transaction_timestamp.clone().unwrap()
            });
            when[..10].to_owned()
        })
        .collect();
    assert!(days.windows(2).all(|w| w[0] <= w[1]), "oldest first");

    // The default window is the last 15 days, today included.
    let path = format!("/transactions/v2/{PROVIDER}/{checking}");
    let (default, _) = all_pages(&url, &id_token, &checking, "").await;
    let today = Utc::now().date_naive();
    let explicit = format!("startTime={}&endTime={today}", today - Days::new(15));
    let (fifteen_days, _) = all_pages(&url, &id_token, &checking, &explicit).await;
    assert_eq!(default, fifteen_days);

    let calls = sim.calls("/transactions");
    let only_start = format!("{path}?startTime=2026-11-01T00:00:00Z");
    let (status, body) = get(&url, &only_start, Some(&id_token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"code": 703, "message": "Invalid date range"}));

    let plain_dates = format!("{path}?startTime=2020-01-01&endTime=2030-01-01&limit=100");
    let all: TransactionsResponse = read(&url, &plain_dates, &id_token).await;
    assert_eq!(all.transactions.len(), 100, "plain dates work too");
    assert_eq!(
        sim.calls("/transactions"),
        calls + 2,
        "refused calls count too"
    );
}

#[tokio::test]
async fn a_revoked_consent_refuses_its_tokens() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let answer = tokens(&url, consent.refresh_token.expose()).await;
    sim.revoke_akoya_consent(&consent.consent_id);
    assert!(sim.akoya_refresh_token(&consent.consent_id).is_none());

    let (status, body) = refresh(&url, answer.refresh_token.as_deref().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": STALE})
    );
    assert_eq!(sim.akoya_refused_refreshes(), 1);
    for path in [
        format!("/accounts-info/v2/{PROVIDER}"),
        format!("/balances/v2/{PROVIDER}"),
        format!("/customers/v2/{PROVIDER}/current"),
    ] {
        let (status, body) = get(&url, &path, Some(&answer.id_token)).await;
        assert_eq!((status, body), (StatusCode::UNAUTHORIZED, not_authorized()));
    }
}

#[tokio::test]
async fn dropped_and_added_accounts_show_at_once() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let id_token = tokens(&url, consent.refresh_token.expose()).await.id_token;
    let ids = sim.akoya_account_ids(&consent.consent_id);
    let accounts_path = format!("/accounts-info/v2/{PROVIDER}");
    let listed = |info: AccountsInfoResponse| -> Vec<String> {
        info.accounts
            .into_iter()
            .map(|a| a.value.account_id)
            .collect()
    };

    sim.drop_akoya_account(&consent.consent_id, &ids[0]);
    let after: Vec<_> = listed(read(&url, &accounts_path, &id_token).await);
    assert_eq!(after, ids[1..]);
    let dropped = format!("/transactions/v2/{PROVIDER}/{}", ids[0]);
    let (status, body) = get(&url, &dropped, Some(&id_token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"code": 701, "message": "Account not found"}));
    let balances: BalancesResponse =
        read(&url, &format!("/balances/v2/{PROVIDER}"), &id_token).await;
    assert_eq!(balances.accounts.len(), 4);

    let added = sim.add_akoya_account(&consent.consent_id);
    assert!(!ids.contains(&added));
    let now: Vec<_> = listed(read(&url, &accounts_path, &id_token).await);
    assert_eq!(now.last(), Some(&added));
    assert_eq!(sim.akoya_account_ids(&consent.consent_id), now);
    let path = format!("/transactions/v2/{PROVIDER}/{added}");
    let recent: TransactionsResponse = read(&url, &path, &id_token).await;
    assert_eq!(recent.transactions.len(), 5, "a few recent transactions");
    assert!(recent.links.unwrap().next.is_none(), "one page");
}

#[tokio::test]
async fn mutations_reach_akoyas_transactions() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let id_token = tokens(&url, consent.refresh_token.expose()).await.id_token;
    let before = sim.visible_transaction_ids(&consent.item_id).unwrap();
    let outcome = sim.mutate(
        &consent.item_id,
        Mutation {
            add: 4,
            modify: 2,
            remove: 2,
        },
    );
    assert_eq!(outcome.added.len(), 4);

    let mut served = BTreeSet::new();
    for account_id in sim.akoya_account_ids(&consent.consent_id) {
        served.extend(
            all_pages(&url, &id_token, &account_id, &everything())
                .await
                .0,
        );
    }
    assert!(outcome.added.iter().all(|id| served.contains(id)));
    assert!(outcome.removed.iter().all(|id| !served.contains(id)));
    assert!(outcome.modified.iter().all(|id| served.contains(id)));
    assert!(
        before.len() < served.len(),
        "the held-back history is served too"
    );
}

#[tokio::test]
async fn injected_errors_answer_as_told() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    let answer = tokens(&url, consent.refresh_token.expose()).await;
    let checking = sim.akoya_account_ids(&consent.consent_id)[0].clone();
    let path = format!("/transactions/v2/{PROVIDER}/{checking}");

    let internal = json!({"code": 500, "message": "Internal server error"});
    sim.inject_akoya_error(AkoyaErrorRule {
        path_prefix: "/transactions/v2".into(),
        http_status: 500,
        body: internal.clone(),
        times: Some(1),
    });
    let (status, _) = get(&url, &path, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "authentication comes first"
    );
    let (status, body) = get(&url, &path, Some(&answer.id_token)).await;
    assert_eq!(
        (status, body),
        (StatusCode::INTERNAL_SERVER_ERROR, internal)
    );
    let (status, _) = get(&url, &path, Some(&answer.id_token)).await;
    assert_eq!(status, StatusCode::OK, "once only");

    let too_many = json!({"code": 1207, "message": "Too many requests"});
    sim.inject_akoya_error(AkoyaErrorRule {
        path_prefix: "/balances".into(),
        http_status: 429,
        body: too_many.clone(),
        times: None,
    });
    let balances = format!("/balances/v2/{PROVIDER}");
    for _ in 0..2 {
        let (status, body) = get(&url, &balances, Some(&answer.id_token)).await;
        assert_eq!(
            (status, body),
            (StatusCode::TOO_MANY_REQUESTS, too_many.clone())
        );
    }
    sim.clear_errors();
    let (status, _) = get(&url, &balances, Some(&answer.id_token)).await;
    assert_eq!(status, StatusCode::OK);

    // On /token the rule comes before anything, so the token is not spent.
    let unavailable = json!({"error": "temporarily_unavailable"});
    sim.inject_akoya_error(AkoyaErrorRule {
        path_prefix: "/token".into(),
        http_status: 503,
        body: unavailable.clone(),
        times: Some(1),
    });
    let token = answer.refresh_token.unwrap();
    let (status, body) = refresh(&url, &token).await;
    assert_eq!(
        (status, body),
        (StatusCode::SERVICE_UNAVAILABLE, unavailable)
    );
    tokens(&url, &token).await;
    assert_eq!(sim.akoya_refused_refreshes(), 0);
}

#[tokio::test]
async fn latency_slows_akoya_too() {
    let (sim, url) = start().await;
    let consent = sim.create_akoya_consent(PROVIDER);
    sim.set_latency(Duration::from_millis(50));
    let started = Instant::now();
    let answer = tokens(&url, consent.refresh_token.expose()).await;
    read::<AccountsInfoResponse>(
        &url,
        &format!("/accounts-info/v2/{PROVIDER}"),
        &answer.id_token,
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn controls_make_and_revoke_consents_over_http() {
    let (sim, url) = start().await;
    let response = http()
        .post(format!("{url}/sim/akoya/consents"))
        .json(&json!({"providerId": PROVIDER}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["providerId"], PROVIDER);
    let consent_id = created["consentId"].as_str().unwrap().to_owned();
    assert!(created["itemId"].is_string());
    let answer = tokens(&url, created["refreshToken"].as_str().unwrap()).await;
    assert_eq!(claims(&answer.id_token).0.grant_id, consent_id);

    let rule = json!({"pathPrefix": "/accounts-info", "httpStatus": 503,
                      "body": {"code": 503, "message": "System is down for maintenance"},
                      "times": 1});
    let response = http()
        .post(format!("{url}/sim/akoya/errors"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let path = format!("/accounts-info/v2/{PROVIDER}");
    let (status, body) = get(&url, &path, Some(&answer.id_token)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], 503);

    let revoke = |consent_id: String| {
        let url = url.clone();
        async move {
            http()
                .post(format!("{url}/sim/akoya/consents/{consent_id}/revoke"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(revoke(consent_id.clone()).await, StatusCode::NO_CONTENT);
    assert_eq!(revoke("unknown".into()).await, StatusCode::NOT_FOUND);
    let (status, _) = get(&url, &path, Some(&answer.id_token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(sim.akoya_refresh_token(&consent_id).is_none());
}

#[tokio::test]
async fn notifications_arrive_as_posted() {
    let (sim, _) = start().await;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let receiver = axum::Router::new().route(
        "/akoya",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sender = sender.clone();
            async move {
                let _ = sender.send((headers, body));
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let body = Simulator::akoya_notification("CONSENT", "CONSENT_REVOKED", "grant-1", PROVIDER);
    sim.send_akoya_notification(&format!("http://{address}/akoya"), &body);
    let (headers, delivered) = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&delivered).unwrap(), body);
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        headers.get("plaid-verification").is_none(),
        "nothing signs it"
    );
    let notification: Notification = serde_json::from_str(&delivered).unwrap();
    assert_eq!(notification.category, "CONSENT");
    assert_eq!(notification.provider(), Some(PROVIDER));
    assert_eq!(notification.subject_id(), Some("grant-1"));
}
