//! Akoya's HTTP API: Dex's `POST /token` and the FDX data paths. Every request is counted by
//! its kind (`/token`, `/accounts-info`, ...) and waits the injected latency. `/token` applies
//! injected errors before anything else; a data call checks its id token first, then injected
//! errors, then reads the consent's Item.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Days, Utc};
use serde::Serialize;
use serde_json::Value;

use super::consents::Consent;
use super::faults::AkoyaErrorRule;
use super::state::{SimItem, SimState};
use super::{Simulator, fdx, form, owners};
use linkstate_wire::akoya::{
    AccountsInfoResponse, BalancesResponse, CurrentCustomerResponse, FdxError, Link, Links,
    TokenError, TokenResponse, TransactionsResponse,
};
use linkstate_wire::plaid::AccountBase;

/// How many days a transactions call without a window covers, ending today.
const DEFAULT_WINDOW_DAYS: u64 = 15;
/// The page size when the call names none.
const DEFAULT_LIMIT: usize = 50;
/// The largest page served, whatever the call asks for.
const MAX_LIMIT: usize = 100;

/// The Akoya endpoints.
pub fn routes() -> Router<Simulator> {
    Router::new()
        .route("/token", post(token))
        .route("/revoke", post(revoke))
        .route("/accounts-info/v2/{provider_id}", get(accounts_info))
        .route("/balances/v2/{provider_id}", get(balances))
        .route("/customers/v2/{provider_id}/current", get(customer))
        .route(
            "/transactions/v2/{provider_id}/{account_id}",
            get(transactions),
        )
}

/// An error answer: a status and a JSON body (Dex's, FDX's, or an injected one).
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    body: Value,
}

impl Refusal {
    /// Dex's `{"error", "error_description"}`.
    fn dex(status: StatusCode, error: &str, description: &str) -> Self {
        let body = TokenError {
            error: error.to_owned(),
            error_description: Some(description.to_owned()),
        };
        Self::json(status, &body)
    }

    /// FDX's `{"code", "message"}`.
    fn fdx(status: StatusCode, code: i64, message: &str) -> Self {
        let body = FdxError {
            code,
            message: Some(message.to_owned()),
            debug_message: None,
        };
        Self::json(status, &body)
    }

    /// A missing, unknown, expired or revoked id token, or one of another provider.
    fn not_authorized() -> Self {
        Self::fdx(StatusCode::UNAUTHORIZED, 602, "Customer not authorized")
    }

    /// The answer an injected rule asks for.
    fn injected(rule: &AkoyaErrorRule) -> Self {
        let status =
            StatusCode::from_u16(rule.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            status,
            body: rule.body.clone(),
        }
    }

    fn json(status: StatusCode, body: &impl Serialize) -> Self {
        let body = serde_json::to_value(body).expect("error bodies serialize");
        Self { status, body }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// `POST /token`: a refresh, answered after the injected latency.
async fn token(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    count(&sim, "/token");
    if let Some(broken) = sim.misbehave().await {
        return broken;
    }
    answer(refresh(&sim, &headers, &body))
}

/// `POST {idp}/revoke` (`token_type_hint=refresh_token`, `token`, the client's credentials):
/// 200 with an empty body, after which the consent's tokens are refused; 400 `invalid_request`
/// for a token that works nowhere, 401 `unauthorized_client` for wrong credentials.
async fn revoke(State(sim): State<Simulator>, body: Bytes) -> Response {
    count(&sim, "/revoke");
    if let Some(broken) = sim.misbehave().await {
        return broken;
    }
    let form = form::parse(&String::from_utf8_lossy(&body));
    let field = |name: &str| form.get(name).map(String::as_str);
    let refuse = |status: StatusCode, error: &str| {
        (status, axum::Json(serde_json::json!({ "error": error }))).into_response()
    };
    if !sim.accepts(field("client_id"), field("client_secret")) {
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized_client");
    }
    if field("token_type_hint") != Some("refresh_token") {
        return refuse(StatusCode::BAD_REQUEST, "unsupported_token_type");
    }
    let token = field("token").unwrap_or_default();
    if sim.lock().consents.revoke_by_token(token) {
        StatusCode::OK.into_response()
    } else {
        refuse(StatusCode::BAD_REQUEST, "invalid_request")
    }
}

/// Checks the request in Dex's order (grant type, token present, client, token valid) and
/// rotates the token. Injected errors come first, so they leave the token as it was.
fn refresh(sim: &Simulator, headers: &HeaderMap, body: &[u8]) -> Result<TokenResponse, Refusal> {
    let mut state = sim.lock();
    if let Some(rule) = state.faults.take_akoya("/token") {
        return Err(Refusal::injected(&rule));
    }
    // Dex reads a body that is not a form as an empty one.
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = if is_form {
        form::parse(&String::from_utf8_lossy(body))
    } else {
        HashMap::new()
    };
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("refresh_token") {
        return Err(Refusal::dex(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Missing or incorrect grant_type field. Must be refresh_token",
        ));
    }
    let Some(refresh_token) = field("refresh_token").filter(|token| !token.is_empty()) else {
        return Err(Refusal::dex(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "No refresh token in request",
        ));
    };
    if !sim.accepts(field("client_id"), field("client_secret")) {
        return Err(Refusal::dex(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client credentials.",
        ));
    }
    state
        .consents
        .refresh(refresh_token, Utc::now())
        .ok_or_else(|| {
            Refusal::dex(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Refresh token is invalid or has already been claimed by another client.",
            )
        })
}

/// What a data call may read once its id token is checked: the consent, its Item, and the
/// request's path and query.
struct Access<'a> {
    consent: &'a Consent,
    item: &'a SimItem,
    path: &'a str,
    query: HashMap<String, String>,
}

impl Access<'_> {
    /// The accounts the consent shares, in the Item's order, narrowed to those of `accountIds`
    /// when the query names some.
    fn accounts(&self) -> Vec<&AccountBase> {
        let wanted: Option<Vec<&str>> = self
            .query
            .get("accountIds")
            .map(|ids| ids.split(',').map(str::trim).collect());
        self.item
            .accounts
            .iter()
            .filter(|account| self.consent.shared.contains(&account.account_id))
            .filter(|account| {
                wanted
                    .as_ref()
                    .is_none_or(|wanted| wanted.contains(&account.account_id.as_str()))
            })
            .collect()
    }

    /// The shared account with this id.
    fn account(&self, account_id: &str) -> Option<&AccountBase> {
        self.item
            .accounts
            .iter()
            .find(|account| account.account_id == account_id)
            .filter(|account| self.consent.shared.contains(&account.account_id))
    }
}

/// `GET /accounts-info/v2/{providerId}`.
async fn accounts_info(
    State(sim): State<Simulator>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    data(
        &sim,
        "/accounts-info",
        &provider_id,
        &headers,
        &uri,
        |access| {
            let accounts = access.accounts().into_iter().map(fdx::account_info);
            Ok(AccountsInfoResponse {
                accounts: accounts.collect(),
            })
        },
    )
    .await
}

/// `GET /balances/v2/{providerId}`: the balances as they stand, taken now.
async fn balances(
    State(sim): State<Simulator>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    data(&sim, "/balances", &provider_id, &headers, &uri, |access| {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let balances = access
            .accounts()
            .into_iter()
            .map(|account| fdx::balance(account, &now));
        Ok(BalancesResponse {
            accounts: balances.collect(),
        })
    })
    .await
}

/// `GET /customers/v2/{providerId}/current`: the holder of the Item's accounts.
async fn customer(
    State(sim): State<Simulator>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    data(&sim, "/customers", &provider_id, &headers, &uri, |access| {
        let item = access.item;
        let owners = owners::owners(&item.item_id, &item.accounts);
        let holder = owners
            .first()
            .and_then(|owners| owners.first())
            .ok_or_else(|| Refusal::fdx(StatusCode::NOT_FOUND, 601, "Customer not found"))?;
        Ok(CurrentCustomerResponse {
            customer: fdx::customer(&access.consent.customer_id, holder),
        })
    })
    .await
}

/// `GET /transactions/v2/{providerId}/{accountId}`: one page of the account's transactions in
/// the window, oldest first, linking to the next while more remain.
async fn transactions(
    State(sim): State<Simulator>,
    Path((provider_id, account_id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    data(
        &sim,
        "/transactions",
        &provider_id,
        &headers,
        &uri,
        |access| transactions_page(access, &account_id),
    )
    .await
}

/// Reads one page of the account's transactions.
fn transactions_page(
    access: &Access<'_>,
    account_id: &str,
) -> Result<TransactionsResponse, Refusal> {
    let account = access
        .account(account_id)
        .ok_or_else(|| Refusal::fdx(StatusCode::NOT_FOUND, 701, "Account not found"))?;
    let window = window(&access.query)?;
    let (offset, limit) = paging(&access.query)?;

    let mut listed: Vec<_> = access
        .item
        .ledger
        .all()
        .filter(|t| t.account_id == account.account_id && window.contains(t.date))
        .collect();
    listed.sort_by(|a, b| (a.date, &a.transaction_id).cmp(&(b.date, &b.transaction_id)));
    let kind = fdx::transaction_kind(account);
    let transactions = listed
        .iter()
        .skip(offset)
        .take(limit)
        .map(|transaction| fdx::transaction(transaction, kind))
        .collect();
    let link = |offset: usize| Link {
        href: href(access.path, window, offset, limit),
    };
    let links = Links {
        next: (offset.saturating_add(limit) < listed.len()).then(|| link(offset + limit)),
        prev: (offset > 0).then(|| link(offset.saturating_sub(limit))),
    };
    Ok(TransactionsResponse {
        links: Some(links),
        transactions,
    })
}

/// The window a transactions call asks for: both ends or neither (the last 15 days).
fn window(query: &HashMap<String, String>) -> Result<fdx::Window, Refusal> {
    let invalid_date = || Refusal::fdx(StatusCode::BAD_REQUEST, 702, "Invalid start or end date");
    let today = Utc::now().date_naive();
    let window = match (query.get("startTime"), query.get("endTime")) {
        (None, None) => fdx::Window {
            start: today - Days::new(DEFAULT_WINDOW_DAYS),
            end: today,
        },
        (Some(start), Some(end)) => fdx::Window {
            start: fdx::day(start).ok_or_else(invalid_date)?,
            end: fdx::day(end).ok_or_else(invalid_date)?,
        },
        _ => return Err(invalid_range()),
    };
    if window.start > window.end {
        return Err(invalid_range());
    }
    Ok(window)
}

fn invalid_range() -> Refusal {
    Refusal::fdx(StatusCode::BAD_REQUEST, 703, "Invalid date range")
}

/// The `offset` (a numeric string, default 0) and `limit` (default 50, at most 100) of a call.
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), Refusal> {
    let invalid = || Refusal::fdx(StatusCode::BAD_REQUEST, 400, "Invalid input");
    let offset = match query.get("offset") {
        None => 0,
        Some(offset) => offset.parse().map_err(|_| invalid())?,
    };
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(limit) => limit
            .parse::<usize>()
            .ok()
            .filter(|limit| *limit > 0)
            .ok_or_else(invalid)?,
    };
    Ok((offset, limit.min(MAX_LIMIT)))
}

/// A page link as Akoya writes it: the relative path, then the query with sorted keys.
fn href(path: &str, window: fdx::Window, offset: usize, limit: usize) -> String {
    let query = BTreeMap::from([
        ("startTime", fdx::midnight(window.start)),
        ("endTime", fdx::midnight(window.end)),
        ("offset", offset.to_string()),
        ("limit", limit.to_string()),
    ]);
    format!("{path}?{}", form::encode(&query))
}

/// Answers a data call of `kind` after the injected latency, with what `read` makes of it.
async fn data<T: Serialize>(
    sim: &Simulator,
    kind: &str,
    provider_id: &str,
    headers: &HeaderMap,
    uri: &Uri,
    read: impl FnOnce(&Access<'_>) -> Result<T, Refusal>,
) -> Response {
    count(sim, kind);
    if let Some(broken) = sim.misbehave().await {
        return broken;
    }
    let mut state = sim.lock();
    answer(serve(&mut state, provider_id, headers, uri, read))
}

/// Checks the id token, applies injected errors, then reads.
fn serve<T>(
    state: &mut SimState,
    provider_id: &str,
    headers: &HeaderMap,
    uri: &Uri,
    read: impl FnOnce(&Access<'_>) -> Result<T, Refusal>,
) -> Result<T, Refusal> {
    let id_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(Refusal::not_authorized)?;
    let consent = state
        .consents
        .authorize(id_token.trim(), provider_id, Utc::now())
        .ok_or_else(Refusal::not_authorized)?;
    if let Some(rule) = state.faults.take_akoya(uri.path()) {
        return Err(Refusal::injected(&rule));
    }
    let item = state
        .item(&consent.item_id)
        .ok_or_else(Refusal::not_authorized)?;
    let access = Access {
        consent,
        item,
        path: uri.path(),
        query: form::parse(uri.query().unwrap_or_default()),
    };
    read(&access)
}

/// Counts a request of `kind`, whatever it is answered, for [`Simulator::calls`].
fn count(sim: &Simulator, kind: &str) {
    *sim.lock().calls.entry(kind.to_owned()).or_default() += 1;
}

/// The JSON answer, or the refusal.
fn answer<T: Serialize>(outcome: Result<T, Refusal>) -> Response {
    match outcome {
        Ok(body) => Json(body).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn windows_need_both_ends_in_order() {
        let both = query(&[
            ("startTime", "2026-11-01"),
            ("endTime", "2026-12-01T00:00:00Z"),
        ]);
        let asked = window(&both).unwrap();
        assert_eq!(asked.start.to_string(), "2026-11-01");
        assert_eq!(asked.end.to_string(), "2026-12-01");
        let default = window(&query(&[])).unwrap();
        assert_eq!((default.end - default.start).num_days(), 15);

        let refused = |pairs: &[(&str, &str)]| window(&query(pairs)).err().unwrap().body;
        assert_eq!(refused(&[("startTime", "2026-11-01")])["code"], 703);
        assert_eq!(refused(&[("endTime", "2026-11-01")])["code"], 703);
        let backwards = [("startTime", "2026-12-01"), ("endTime", "2026-11-01")];
        assert_eq!(refused(&backwards)["code"], 703);
        let garbled = [("startTime", "soon"), ("endTime", "2026-11-01")];
        assert_eq!(refused(&garbled)["code"], 702);
    }

    #[test]
    fn paging_defaults_and_caps() {
        assert_eq!(paging(&query(&[])).unwrap(), (0, 50));
        let asked = query(&[("offset", "200"), ("limit", "500")]);
        assert_eq!(paging(&asked).unwrap(), (200, 100));
        assert!(paging(&query(&[("limit", "0")])).is_err());
        assert!(paging(&query(&[("offset", "abc")])).is_err());
    }

    #[test]
    fn links_look_like_akoyas() {
        let window = fdx::Window {
            start: fdx::day("2024-12-01").unwrap(),
            end: fdx::day("2026-12-01").unwrap(),
        };
        assert_eq!(
            href("/transactions/v2/mikomo/acct", window, 100, 100),
            "/transactions/v2/mikomo/acct?endTime=2026-12-01T00%3A00%3A00Z&limit=100\
             &offset=100&startTime=2024-12-01T00%3A00%3A00Z"
        );
    }

    #[test]
    fn refusals_have_dex_and_fdx_bodies() {
        let refusal = Refusal::not_authorized();
        assert_eq!(refusal.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            refusal.body,
            serde_json::json!({"code": 602, "message": "Customer not authorized"})
        );
        let refusal = Refusal::dex(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client credentials.",
        );
        assert_eq!(
            refusal.body,
            serde_json::json!({"error": "invalid_client", "error_description": "Invalid client credentials."})
        );
    }
}
