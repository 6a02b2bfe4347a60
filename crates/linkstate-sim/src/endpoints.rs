//! What each Plaid endpoint does to the simulator's state, once the request is accepted.

use super::errors::SimError;
use super::institutions::{self, InstitutionSeed};
use super::state::SimState;
use super::webhooks;
use linkstate_wire::Secret;
use linkstate_wire::plaid::*;

/// An endpoint: the state, the parsed request and the request id in; the response out.
pub type Handler<Req, Resp> = fn(&mut SimState, Req, &str) -> Result<Resp, SimError>;

/// `/sandbox/public_token/create`: a new Item at a known institution.
pub fn sandbox_public_token_create(
    state: &mut SimState,
    request: SandboxPublicTokenCreateRequest,
    request_id: &str,
) -> Result<SandboxPublicTokenCreateResponse, SimError> {
    let institution =
        institutions::find(&request.institution_id).ok_or_else(SimError::invalid_institution)?;
    let products = supported_products(institution, request.initial_products)?;
    let webhook = request.options.and_then(|options| options.webhook);
    let public_token = state.create_item(institution, products, webhook);
    Ok(SandboxPublicTokenCreateResponse {
        public_token,
        request_id: request_id.to_owned(),
    })
}

/// `/item/public_token/exchange`: the access token of a public token's Item.
pub fn item_public_token_exchange(
    state: &mut SimState,
    request: ItemPublicTokenExchangeRequest,
    request_id: &str,
) -> Result<ItemPublicTokenExchangeResponse, SimError> {
    let (access_token, item_id) = state.exchange(&request.public_token)?;
    Ok(ItemPublicTokenExchangeResponse {
        access_token: Secret::new(access_token),
        item_id,
        request_id: request_id.to_owned(),
    })
}

/// `/item/get`.
pub fn item_get(
    state: &mut SimState,
    request: ItemGetRequest,
    request_id: &str,
) -> Result<ItemGetResponse, SimError> {
    let item = state.item_mut(request.access_token.expose())?;
    Ok(ItemGetResponse {
        item: item.to_item_with_consent_fields(),
        status: None,
        request_id: request_id.to_owned(),
    })
}

/// `/accounts/get`: the cached balances; the Item's error while it has one.
pub fn accounts_get(
    state: &mut SimState,
    request: AccountsGetRequest,
    request_id: &str,
) -> Result<AccountsGetResponse, SimError> {
    let item = state.product_item_mut(request.access_token.expose())?;
    Ok(AccountsGetResponse {
        accounts: item.accounts.clone(),
        item: item.to_item(),
        request_id: request_id.to_owned(),
    })
}

/// `/item/webhook/update`: remembers the Item's new webhook URL and, as Plaid, acknowledges it
/// with a `WEBHOOK_UPDATE_ACKNOWLEDGED` webhook to that URL.
pub fn item_webhook_update(
    state: &mut SimState,
    request: ItemWebhookUpdateRequest,
    request_id: &str,
) -> Result<ItemWebhookUpdateResponse, SimError> {
    let item = state.item_mut(request.access_token.expose())?;
    item.webhook = request.webhook;
    let response = ItemWebhookUpdateResponse {
        item: item.to_item(),
        request_id: request_id.to_owned(),
    };
    if let Some(url) = item.webhook.clone() {
        let body = webhooks::webhook_update_acknowledged(&item.item_id, &url);
        state.outbox.push(Some(&url), &body);
    }
    Ok(response)
}

/// `/item/remove`: the Item is gone; its access token answers `ITEM_NOT_FOUND` from now on.
pub fn item_remove(
    state: &mut SimState,
    request: ItemRemoveRequest,
    request_id: &str,
) -> Result<ItemRemoveResponse, SimError> {
    let item_id = state
        .item_mut(request.access_token.expose())?
        .item_id
        .clone();
    state.remove_item(&item_id);
    Ok(ItemRemoveResponse {
        request_id: request_id.to_owned(),
    })
}

/// `/institutions/get_by_id`.
pub fn institutions_get_by_id(
    _state: &mut SimState,
    request: InstitutionsGetByIdRequest,
    request_id: &str,
) -> Result<InstitutionsGetByIdResponse, SimError> {
    let institution = institutions::find(&request.institution_id)
        .filter(|seed| request.country_codes.iter().any(|code| seed.serves(code)))
        .ok_or_else(SimError::invalid_institution)?;
    Ok(InstitutionsGetByIdResponse {
        institution: institution.to_institution(),
        request_id: request_id.to_owned(),
    })
}

/// `/webhook_verification_key/get`: the public key of the simulator's signing key.
pub fn webhook_verification_key_get(
    state: &mut SimState,
    request: WebhookVerificationKeyGetRequest,
    request_id: &str,
) -> Result<WebhookVerificationKeyGetResponse, SimError> {
    if request.key_id != state.webhook_key.kid {
        return Err(SimError::invalid_key_id());
    }
    Ok(WebhookVerificationKeyGetResponse {
        key: state.webhook_key.jwk(),
        request_id: request_id.to_owned(),
    })
}

/// The requested products, once each, if the institution offers them all.
fn supported_products(
    institution: &InstitutionSeed,
    requested: Vec<String>,
) -> Result<Vec<String>, SimError> {
    if requested.is_empty() {
        return Err(SimError::invalid_field(
            "initial_products must contain at least 1 product",
        ));
    }
    let unsupported: Vec<String> = requested
        .iter()
        .filter(|product| !institution.products.contains(&product.as_str()))
        .cloned()
        .collect();
    if !unsupported.is_empty() {
        return Err(SimError::invalid_product(&unsupported));
    }
    let mut products: Vec<String> = Vec::new();
    for product in requested {
        if !products.contains(&product) {
            products.push(product);
        }
    }
    Ok(products)
}
