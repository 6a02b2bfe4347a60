//! The provider simulator: a Plaid-sandbox compatible HTTP API for `dev`, `simulate` and tests,
//! and an Akoya-compatible one on the same port.
//!
//! It keeps Items in memory with two years of generated transactions, answers Plaid's shapes
//! (the types of `linkstate-wire`, which linkstate's client uses too), sends webhooks signed as Plaid signs them, and can be told to be
//! slow or to fail, in process ([`Simulator::set_latency`], [`Simulator::inject_error`]) or over
//! HTTP (`/sim/latency`, `/sim/errors`). Tests drive an Item's transactions with
//! [`Simulator::set_history`], [`Simulator::mutate`] and [`Simulator::complete_historical`].
//!
//! An Akoya consent ([`Simulator::create_akoya_consent`]) is an Item too, reached by rotating
//! refresh tokens and id tokens instead of an access token: the same accounts and transactions,
//! served in Akoya's shapes (all of them at once, as Akoya has no historical update).

#![warn(missing_docs)]

mod accounts;
mod akoya;
mod consents;
mod control;
mod delivery;
mod dice;
mod endpoints;
mod errors;
mod faults;
mod fdx;
mod form;
mod history;
mod ids;
mod institutions;
mod keys;
pub use keys::WebhookKey;
mod ledger;
mod merchants;
mod money;
mod numbers;
mod owners;
mod plaid;
mod products;
mod sandbox;
mod state;
mod sync;
mod webhooks;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use serde_json::Value;

pub use faults::{AkoyaErrorRule, ErrorRule};
pub use history::DEFAULT_TRANSACTIONS;
use ledger::Ledger;
pub use ledger::{Mutation, MutationOutcome};
use linkstate_wire::Secret;
use linkstate_wire::plaid::{
    AccountBase, ItemPublicTokenExchangeRequest, SandboxPublicTokenCreateRequest,
};
use state::{SimItem, SimState};

/// The API keys the simulator accepts; others get Plaid's `INVALID_API_KEYS`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The accepted `client_id`.
    pub client_id: String,
    /// The accepted `secret`.
    pub secret: String,
}

/// A running simulator's handle; clones share the same state.
#[derive(Clone)]
pub struct Simulator {
    config: Arc<SimConfig>,
    state: Arc<Mutex<SimState>>,
    /// Posts webhooks.
    webhooks: reqwest::Client,
}

/// An Item made by [`Simulator::create_item`].
#[derive(Debug, Clone)]
pub struct SandboxItem {
    /// Its access token.
    pub access_token: Secret,
    /// Its id.
    pub item_id: String,
}

/// An Akoya consent made by [`Simulator::create_akoya_consent`].
#[derive(Debug, Clone)]
pub struct AkoyaConsent {
    /// Its first refresh token, as a connect flow hands it over.
    pub refresh_token: Secret,
    /// Its id, the `grant_id` of its id tokens.
    pub consent_id: String,
    /// Akoya's provider id (the institution).
    pub provider_id: String,
    /// The Item holding its accounts and transactions, for [`Simulator::mutate`] and the like.
    pub item_id: String,
}

impl Simulator {
    /// A simulator with no Items and a fresh webhook signing key.
    ///
    /// # Panics
    /// If the TLS backend cannot be initialised, which only happens on a broken system.
    pub fn new(config: SimConfig) -> Self {
        Self {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(SimState::new())),
            webhooks: delivery::client(),
        }
    }

    /// The HTTP API: Plaid's endpoints, Akoya's and the `/sim` controls.
    pub fn router(&self) -> Router {
        plaid::routes()
            .merge(akoya::routes())
            .merge(control::routes())
            .with_state(self.clone())
    }

    /// How many requests `endpoint` (e.g. `/item/get`) has received so far; Akoya's count by
    /// kind, whatever the provider and account in the path: `/token`, `/accounts-info`,
    /// `/balances`, `/customers`, `/transactions`.
    pub fn calls(&self, endpoint: &str) -> usize {
        self.lock().calls.get(endpoint).copied().unwrap_or(0)
    }

    /// How many requests the simulator received, every endpoint together.
    pub fn all_calls(&self) -> usize {
        self.lock().calls.values().sum()
    }

    /// Serves the API on `listener` in a background task; answers the address it listens on.
    ///
    /// # Panics
    /// If the listener has no local address.
    pub async fn spawn(&self, listener: tokio::net::TcpListener) -> SocketAddr {
        let address = listener.local_addr().expect("a bound listener");
        let router = self.router();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "the simulator stopped serving");
            }
        });
        address
    }

    /// Creates an Item with transactions (a few hundred over two years), as
    /// `/sandbox/public_token/create` and `/item/public_token/exchange` would.
    ///
    /// # Panics
    /// If the simulator does not know `institution_id` (see [`Simulator::institutions`]).
    pub fn create_item(&self, institution_id: &str) -> SandboxItem {
        let request = SandboxPublicTokenCreateRequest {
            institution_id: institution_id.to_owned(),
            initial_products: vec!["transactions".to_owned()],
            options: None,
        };
        let mut state = self.lock();
        let created = endpoints::sandbox_public_token_create(&mut state, request, "")
            .unwrap_or_else(|_| panic!("the simulator does not know {institution_id}"));
        let request = ItemPublicTokenExchangeRequest {
            public_token: created.public_token,
        };
        let exchanged = endpoints::item_public_token_exchange(&mut state, request, "")
            .expect("a fresh public token exchanges");
        SandboxItem {
            access_token: exchanged.access_token,
            item_id: exchanged.item_id,
        }
    }

    /// A second Item of the login that made `item_id`: the customer linked the same bank again,
    /// so Plaid lists the same accounts (mask, name, subtype) under new ids.
    ///
    /// # Panics
    /// If the simulator has no Item `item_id`.
    pub fn create_twin_item(&self, item_id: &str) -> SandboxItem {
        let mut state = self.lock();
        let public_token = state
            .create_twin_item(item_id)
            .unwrap_or_else(|| panic!("the simulator has no Item {item_id}"));
        let request = ItemPublicTokenExchangeRequest { public_token };
        let exchanged = endpoints::item_public_token_exchange(&mut state, request, "")
            .expect("a fresh public token exchanges");
        SandboxItem {
            access_token: exchanged.access_token,
            item_id: exchanged.item_id,
        }
    }

    /// The customer shares one more account of the Item (a savings account with a few recent
    /// transactions); no webhook goes out. Answers the account's id.
    ///
    /// # Panics
    /// If the simulator has no Item `item_id`.
    pub fn add_account(&self, item_id: &str) -> String {
        self.change_item(item_id, |item| (item.add_account(), None))
    }

    /// The customer fixed the Item's login in Link's update mode: its error is gone, and, as
    /// in update mode, no webhook says so.
    ///
    /// # Panics
    /// If the simulator has no Item `item_id`.
    pub fn fix_login(&self, item_id: &str) {
        self.change_item(item_id, |item| {
            item.error = None;
            ((), None)
        });
    }

    /// Delays every Plaid and Akoya answer by `latency` (zero to stop).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().faults.latency = latency;
    }

    /// Breaks off every Plaid and Akoya answer (the connection closes before the answer is
    /// complete, as a reset would) while `enabled`.
    pub fn set_resets(&self, enabled: bool) {
        self.lock().faults.resets = enabled;
    }

    /// Answers an error on matching requests from now on.
    pub fn inject_error(&self, rule: ErrorRule) {
        self.lock().faults.add(rule);
    }

    /// Removes every injected error, Plaid's and Akoya's.
    pub fn clear_errors(&self) {
        self.lock().faults.clear();
    }

    /// The webhook URL of an Item, as set at creation or by `/item/webhook/update`.
    pub fn item_webhook(&self, item_id: &str) -> Option<String> {
        self.lock().item(item_id)?.webhook.clone()
    }

    /// Gives the Item a fresh history of `transactions_per_item` transactions spread over its
    /// accounts and two years; call it right after [`Simulator::create_item`], as it starts the
    /// Item's transactions (and cursors) over.
    ///
    /// # Panics
    /// If the simulator has no Item `item_id`.
    pub fn set_history(&self, item_id: &str, transactions_per_item: usize) {
        self.change_item(item_id, |item| {
            item.ledger = Ledger::new(item_id, &item.accounts, transactions_per_item, today());
            ((), None)
        });
    }

    /// Completes the Item's historical update: the transactions older than 30 days come as
    /// `added` in the next sync and a `SYNC_UPDATES_AVAILABLE` webhook says so. Does nothing
    /// if it has completed already.
    ///
    /// # Panics
    /// If the simulator has no Item `item_id`.
    pub fn complete_historical(&self, item_id: &str) {
        self.change_item(item_id, |item| {
            let released = item.ledger.complete_historical();
            let webhook = released.then(|| webhooks::sync_updates_available(item_id, true));
            ((), webhook)
        });
    }

    /// Whether the historical update completes by itself once an Item's first pagination ends
    /// (the default), or waits for [`Simulator::complete_historical`].
    pub fn set_auto_historical(&self, enabled: bool) {
        self.lock().auto_historical = enabled;
    }

    /// Changes the Item's transactions (see [`Mutation`]) and, if anything changed, sends a
    /// `SYNC_UPDATES_AVAILABLE` webhook. Answers the ids touched.
    ///
    /// # Panics
    /// If the simulator has no Item `item_id`.
    pub fn mutate(&self, item_id: &str, mutation: Mutation) -> MutationOutcome {
        self.change_item(item_id, |item| {
            let outcome = item.ledger.mutate(mutation, today());
            let changed = outcome != MutationOutcome::default();
            let historical = item.ledger.historical_complete();
            let webhook = changed.then(|| webhooks::sync_updates_available(item_id, historical));
            (outcome, webhook)
        })
    }

    /// Makes the Item's next pagination fail once, on its second page, with
    /// `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`; the data does not change, so starting
    /// over from the old cursor succeeds.
    ///
    /// # Panics
    /// If the simulator has no Item `item_id`.
    pub fn mutate_during_next_pagination(&self, item_id: &str) {
        self.change_item(item_id, |item| {
            item.ledger.arm_pagination_fault();
            ((), None)
        });
    }

    /// Sends `body` to the Item's webhook URL, signed; nothing happens without a URL.
    ///
    /// # Panics
    /// If the simulator has no Item `item_id`.
    pub fn fire_webhook(&self, item_id: &str, body: Value) {
        self.change_item(item_id, |_| ((), Some(body)));
    }

    /// The `Plaid-Verification` header for a webhook with this exact body: an ES256 JWT that
    /// the JWK of `/webhook_verification_key/get` verifies.
    pub fn sign_webhook(&self, body: &[u8]) -> String {
        self.lock().webhook_key.sign(body)
    }

    /// The same, signed as if at `iat` (Unix seconds), to test stale or reordered deliveries.
    pub fn sign_webhook_at(&self, body: &[u8], iat: i64) -> String {
        self.lock().webhook_key.sign_at(body, iat)
    }

    /// Marks the signing key expired (as Plaid does when it rotates keys); the simulator keeps
    /// signing with it, so receivers must refuse what it signs.
    pub fn expire_webhook_key(&self) {
        self.lock().webhook_key.expired_at = Some(chrono::Utc::now().timestamp() - 1);
    }

    /// The ids of an Item's transactions that a client may know of now.
    pub fn visible_transaction_ids(&self, item_id: &str) -> Option<BTreeSet<String>> {
        let state = self.lock();
        Some(
            state
                .item(item_id)?
                .ledger
                .visible()
                .keys()
                .cloned()
                .collect(),
        )
    }

    /// The id of the key the simulator signs with.
    pub fn webhook_key_id(&self) -> String {
        self.lock().webhook_key.kid.clone()
    }

    /// The known institutions: `(institution_id, name)`.
    pub fn institutions(&self) -> Vec<(String, String)> {
        institutions::all()
            .iter()
            .map(|seed| (seed.id.to_owned(), seed.name.to_owned()))
            .collect()
    }

    /// Creates an Akoya consent at `provider_id` (any name, e.g. `mikomo`) sharing the five
    /// accounts of a new Item, with its two years of transactions.
    ///
    /// # Panics
    /// If `provider_id` is empty.
    pub fn create_akoya_consent(&self, provider_id: &str) -> AkoyaConsent {
        assert!(!provider_id.is_empty(), "an Akoya provider id is not empty");
        let mut state = self.lock();
        let consent = state.create_consent(provider_id);
        AkoyaConsent {
            refresh_token: Secret::new(consent.refresh_token.clone()),
            consent_id: consent.consent_id.clone(),
            provider_id: consent.provider_id.clone(),
            item_id: consent.item_id.clone(),
        }
    }

    /// The refresh token that works now (the newest), `None` once revoked or unknown.
    pub fn akoya_refresh_token(&self, consent_id: &str) -> Option<Secret> {
        self.lock()
            .consents
            .refresh_token(consent_id)
            .map(Secret::new)
    }

    /// Refresh attempts refused because the token was stale (already rotated away), unknown or
    /// revoked.
    pub fn akoya_refused_refreshes(&self) -> usize {
        self.lock().consents.refused
    }

    /// Successful refreshes of this consent so far.
    pub fn akoya_refreshes(&self, consent_id: &str) -> usize {
        let state = self.lock();
        state.consents.get(consent_id).map_or(0, |c| c.refreshes)
    }

    /// Revokes the consent: its refresh token gets 400 `invalid_request`, its id tokens 401
    /// `{"code": 602, "message": "Customer not authorized"}`. Does nothing if unknown.
    pub fn revoke_akoya_consent(&self, consent_id: &str) {
        self.lock().consents.revoke(consent_id);
    }

    /// The consent stops sharing this account: accounts-info, balances and transactions no
    /// longer list it (and its transactions answer 404 701).
    pub fn drop_akoya_account(&self, consent_id: &str, account_id: &str) {
        if let Some(consent) = self.lock().consents.get_mut(consent_id) {
            consent.shared.retain(|shared| shared != account_id);
        }
    }

    /// The consent shares one more account (a new savings account with a few transactions of
    /// the last days); answers its id.
    ///
    /// # Panics
    /// If the simulator has no consent `consent_id`.
    pub fn add_akoya_account(&self, consent_id: &str) -> String {
        self.lock()
            .add_consent_account(consent_id)
            .unwrap_or_else(|| panic!("the simulator has no Akoya consent {consent_id}"))
    }

    /// The Item's accounts as Plaid lists them now; empty for an unknown Item.
    pub fn accounts(&self, item_id: &str) -> Vec<AccountBase> {
        let state = self.lock();
        state
            .item(item_id)
            .map(|item| item.accounts.clone())
            .unwrap_or_default()
    }

    /// The account ids the consent shares now.
    pub fn akoya_account_ids(&self, consent_id: &str) -> Vec<String> {
        let state = self.lock();
        let consent = state.consents.get(consent_id);
        consent.map(|c| c.shared.clone()).unwrap_or_default()
    }

    /// How long id tokens issued from now on live (by default 24 h, `expires_in: 86399` as Dex
    /// answers); those issued before keep their expiry.
    pub fn set_akoya_id_token_lifetime(&self, lifetime: Duration) {
        self.lock().consents.id_token_lifetime = lifetime;
    }

    /// Answers an error on matching Akoya requests from now on.
    pub fn inject_akoya_error(&self, rule: AkoyaErrorRule) {
        self.lock().faults.add_akoya(rule);
    }

    /// Posts a notification's JSON `body` to `url` with no authentication, as Akoya does, from
    /// a background task; answers at once.
    pub fn send_akoya_notification(&self, url: &str, body: &Value) {
        let body = serde_json::to_vec(body).expect("JSON values serialize");
        delivery::send_unsigned(&self.webhooks, url, body);
    }

    /// A notification body of Akoya's test-event shape: `category`, `type` (`kind`),
    /// `notificationPayload {id, idType, customFields [{PROVIDER: provider_id}]}`, `url`.
    pub fn akoya_notification(category: &str, kind: &str, id: &str, provider_id: &str) -> Value {
        webhooks::akoya_notification(category, kind, id, provider_id)
    }

    /// Runs `change` on the Item, then sends the webhook it answers, if any.
    fn change_item<T>(
        &self,
        item_id: &str,
        change: impl FnOnce(&mut SimItem) -> (T, Option<Value>),
    ) -> T {
        let result = {
            let mut state = self.lock();
            let item = state
                .item_by_id_mut(item_id)
                .unwrap_or_else(|| panic!("the simulator has no item {item_id}"));
            let (result, webhook) = change(item);
            let url = item.webhook.clone();
            if let Some(body) = webhook {
                state.outbox.push(url.as_deref(), &body);
            }
            result
        };
        self.deliver_webhooks();
        result
    }

    /// Signs and sends the queued webhooks, each from its own task.
    fn deliver_webhooks(&self) {
        let signed: Vec<_> = {
            let mut state = self.lock();
            let queued = state.outbox.take();
            queued
                .into_iter()
                .map(|outgoing| {
                    let verification = state.webhook_key.sign(&outgoing.body);
                    (outgoing, verification)
                })
                .collect()
        };
        for (outgoing, verification) in signed {
            delivery::send(&self.webhooks, outgoing, verification);
        }
    }

    /// The injected latency.
    /// Waits the injected latency; answers the broken-off response while resets are on.
    async fn misbehave(&self) -> Option<axum::response::Response> {
        let latency = self.lock().faults.latency;
        tokio::time::sleep(latency).await;
        self.lock().faults.resets.then(faults::broken_off)
    }

    /// Whether these are the accepted API keys.
    fn accepts(&self, client_id: Option<&str>, secret: Option<&str>) -> bool {
        client_id == Some(self.config.client_id.as_str())
            && secret == Some(self.config.secret.as_str())
    }

    /// The state; a panic in another request does not make it unusable.
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Today, in UTC: the day generated histories end.
fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}
