//! The simulator's memory: Items with their accounts and transactions, the tokens that reach
//! them (Plaid's access tokens, Akoya's consents), the injected faults, the webhook signing key
//! and the webhooks waiting to go out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};

use super::consents::{Consent, Consents};
use super::delivery::Outbox;
use super::errors::SimError;
use super::faults::Faults;
use super::history::{DEFAULT_TRANSACTIONS, Generator};
use super::institutions::{self, InstitutionSeed};
use super::keys::WebhookKey;
use super::ledger::Ledger;
use super::merchants::Kind;
use super::{accounts, ids};
use linkstate_wire::plaid::{AccountBase, Item, PlaidApiError};

/// How long a public token can be exchanged, as in Plaid.
const PUBLIC_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Everything the simulator holds.
pub struct SimState {
    items: HashMap<String, SimItem>,
    /// access token → item id.
    access_tokens: HashMap<String, String>,
    public_tokens: HashMap<String, PublicToken>,
    /// Injected latency and errors.
    pub faults: Faults,
    /// The key that signs webhooks.
    pub webhook_key: WebhookKey,
    /// Webhooks to send once the current request is done with the state.
    pub outbox: Outbox,
    /// Whether an Item's history completes by itself after its first full sync.
    pub auto_historical: bool,
    /// Requests received per endpoint (whatever they were answered), for tests to count calls.
    pub calls: HashMap<String, usize>,
    /// Akoya's consents, each opening an Item of its own.
    pub consents: Consents,
}

/// One Item: what Plaid knows about a login at an institution.
pub struct SimItem {
    /// Plaid's id of the Item.
    pub item_id: String,
    /// Its institution.
    pub institution: &'static InstitutionSeed,
    /// The products it was created with (billed).
    pub products: Vec<String>,
    /// The login that made it: Items of one login show the same accounts.
    pub login: String,
    /// Its accounts.
    pub accounts: Vec<AccountBase>,
    /// Its transactions and their changes.
    pub ledger: Ledger,
    /// The URL its webhooks go to.
    pub webhook: Option<String>,
    /// Its error, e.g. `ITEM_LOGIN_REQUIRED`; `None` while healthy.
    pub error: Option<PlaidApiError>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A public token waiting to be exchanged.
struct PublicToken {
    item_id: String,
    expires_at: Instant,
}

impl SimState {
    /// An empty simulator with a fresh signing key.
    pub fn new() -> Self {
        Self {
            items: HashMap::new(),
            access_tokens: HashMap::new(),
            public_tokens: HashMap::new(),
            faults: Faults::default(),
            webhook_key: WebhookKey::generate(),
            outbox: Outbox::default(),
            auto_historical: true,
            calls: HashMap::new(),
            consents: Consents::new(),
        }
    }

    /// Creates an Item and answers a public token for it, as `/sandbox/public_token/create` does.
    pub fn create_item(
        &mut self,
        institution: &'static InstitutionSeed,
        products: Vec<String>,
        webhook: Option<String>,
    ) -> String {
        let item_id = self.add_item(institution, products, webhook, None);
        self.public_token_for(item_id)
    }

    /// A second Item of the login that made `item_id` (the customer linked the same bank
    /// again): the same institution and account shapes, its own ids; answers a public token.
    pub fn create_twin_item(&mut self, item_id: &str) -> Option<String> {
        let original = self.items.get(item_id)?;
        let (institution, products, login) = (
            original.institution,
            original.products.clone(),
            original.login.clone(),
        );
        let twin = self.add_item(institution, products, None, Some(login));
        Some(self.public_token_for(twin))
    }

    /// A new public token that exchanges for `item_id`.
    fn public_token_for(&mut self, item_id: String) -> String {
        let public_token = ids::public_token();
        let expires_at = Instant::now() + PUBLIC_TOKEN_LIFETIME;
        let pending = PublicToken {
            item_id,
            expires_at,
        };
        self.public_tokens.insert(public_token.clone(), pending);
        public_token
    }

    /// Creates an Item that no token reaches yet; answers its id.
    fn add_item(
        &mut self,
        institution: &'static InstitutionSeed,
        products: Vec<String>,
        webhook: Option<String>,
        login: Option<String>,
    ) -> String {
        let item_id = ids::item_id();
        let login = login.unwrap_or_else(|| item_id.clone());
        let accounts = accounts::generate_for_login(&item_id, &login);
        let today = Utc::now().date_naive();
        let item = SimItem {
            item_id: item_id.clone(),
            institution,
            products,
            ledger: Ledger::new(&item_id, &accounts, DEFAULT_TRANSACTIONS, today),
            login,
            accounts,
            webhook,
            error: None,
            created_at: Utc::now().trunc_subsecs(0),
        };
        self.items.insert(item_id.clone(), item);
        item_id
    }

    /// Creates an Akoya consent at `provider_id` sharing every account of a new Item. The Item
    /// has no webhook URL (Akoya sends no data webhooks) and no Plaid token reaches it. Its
    /// institution is the catalog's first: Akoya's providers are not Plaid institutions, and
    /// nothing reads it.
    pub fn create_consent(&mut self, provider_id: &str) -> &Consent {
        let institution = &institutions::all()[0];
        let item_id = self.add_item(institution, vec!["transactions".to_owned()], None, None);
        let accounts = self.items[&item_id]
            .accounts
            .iter()
            .map(|account| account.account_id.clone())
            .collect();
        self.consents.create(provider_id, &item_id, accounts)
    }

    /// Shares one more account with the consent: a new account of its Item, with a few recent
    /// transactions. Answers its id; `None` if the consent is unknown.
    pub fn add_consent_account(&mut self, consent_id: &str) -> Option<String> {
        let consent = self.consents.get_mut(consent_id)?;
        let item = self.items.get_mut(&consent.item_id)?;
        let account_id = item.add_account();
        consent.shared.push(account_id.clone());
        Some(account_id)
    }

    /// Trades a public token, once, for a new access token: `(access_token, item_id)`.
    pub fn exchange(&mut self, public_token: &str) -> Result<(String, String), SimError> {
        let pending = self
            .public_tokens
            .remove(public_token)
            .ok_or_else(SimError::invalid_public_token)?;
        if pending.expires_at < Instant::now() {
            return Err(SimError::expired_public_token());
        }
        let access_token = ids::access_token();
        let item_id = pending.item_id;
        self.access_tokens
            .insert(access_token.clone(), item_id.clone());
        Ok((access_token, item_id))
    }

    /// The Item an access token opens: Plaid's `INVALID_ACCESS_TOKEN` for a token never issued,
    /// `ITEM_NOT_FOUND` once the Item is removed.
    pub fn item_mut(&mut self, access_token: &str) -> Result<&mut SimItem, SimError> {
        if !access_token.starts_with("access-") {
            return Err(SimError::malformed_access_token());
        }
        let item_id = self
            .access_tokens
            .get(access_token)
            .ok_or_else(SimError::invalid_access_token)?;
        self.items
            .get_mut(item_id)
            .ok_or_else(SimError::item_not_found)
    }

    /// The Item for a product call (accounts, balances, auth, identity, transactions): as
    /// [`SimState::item_mut`], and the Item's own error while it has one.
    pub fn product_item_mut(&mut self, access_token: &str) -> Result<&mut SimItem, SimError> {
        let item = self.item_mut(access_token)?;
        match &item.error {
            Some(error) => Err(SimError::from_item_error(error)),
            None => Ok(item),
        }
    }

    /// The Item with this id.
    pub fn item(&self, item_id: &str) -> Option<&SimItem> {
        self.items.get(item_id)
    }

    /// The Item with this id, to change.
    pub fn item_by_id_mut(&mut self, item_id: &str) -> Option<&mut SimItem> {
        self.items.get_mut(item_id)
    }

    /// Forgets an Item; its access tokens now answer `ITEM_NOT_FOUND`.
    pub fn remove_item(&mut self, item_id: &str) {
        self.items.remove(item_id);
    }
}

impl SimItem {
    /// The `Item` of `/accounts/get` and `/item/webhook/update`.
    pub fn to_item(&self) -> Item {
        Item {
            item_id: self.item_id.clone(),
            institution_id: Some(self.institution.id.to_owned()),
            institution_name: Some(self.institution.name.to_owned()),
            webhook: self.webhook.clone(),
            auth_method: None,
            // Plaid shows an Item's error only in `/item/get`.
            error: None,
            available_products: self.available_products(),
            billed_products: self.products.clone(),
            products: Some(self.products.clone()),
            consented_products: None,
            consent_expiration_time: None,
            update_type: "background".to_owned(),
            created_at: None,
            consented_use_cases: None,
            consented_data_scopes: None,
        }
    }

    /// The `Item` of `/item/get`, which adds its error and creation time.
    pub fn to_item_with_consent_fields(&self) -> Item {
        Item {
            error: self.error.clone(),
            created_at: Some(self.created_at),
            ..self.to_item()
        }
    }

    /// The accounts that have transactions, the ones `/transactions/sync` lists.
    pub fn transaction_accounts(&self) -> Vec<AccountBase> {
        self.accounts
            .iter()
            .filter(|account| Kind::of(account.subtype.as_deref()).is_some())
            .cloned()
            .collect()
    }

    /// Adds an account with a few transactions of the last days (some pending); answers its id.
    pub fn add_account(&mut self) -> String {
        /// Enough to see the account in a default window, few enough to read at a glance.
        const TRANSACTIONS: usize = 5;
        let extras = self
            .accounts
            .len()
            .saturating_sub(accounts::SANDBOX_ACCOUNTS);
        let account = accounts::extra(&self.item_id, extras);
        let account_id = account.account_id.clone();
        // Its own dice, so the Item's other transactions stay as they were.
        let seed = format!("{}:{account_id}", self.item_id);
        let mut generator = Generator::new(&seed, std::slice::from_ref(&account));
        let today = Utc::now().date_naive();
        let transactions = (0..TRANSACTIONS)
            .filter_map(|_| generator.fresh(today))
            .collect();
        self.accounts.push(account);
        self.ledger.insert(transactions);
        account_id
    }

    /// The institution's products the Item was not created with.
    fn available_products(&self) -> Vec<String> {
        self.institution
            .products
            .iter()
            .filter(|product| !self.products.iter().any(|billed| billed == *product))
            .map(|product| product.to_string())
            .collect()
    }
}
