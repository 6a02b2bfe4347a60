//! The sandbox-only endpoints that make things happen to an Item: a webhook on demand, a broken
//! login.

use super::errors::SimError;
use super::state::SimState;
use super::webhooks;
use linkstate_wire::plaid::*;

/// `/sandbox/item/fire_webhook`: sends the Item a webhook of this code. `ERROR` breaks the login
/// as `/sandbox/item/reset_login` does; `LOGIN_REPAIRED` mends it.
pub fn sandbox_item_fire_webhook(
    state: &mut SimState,
    request: SandboxItemFireWebhookRequest,
    request_id: &str,
) -> Result<SandboxItemFireWebhookResponse, SimError> {
    let item = state.item_mut(request.access_token.expose())?;
    let Some(url) = item.webhook.clone() else {
        return Err(SimError::sandbox_webhook_invalid());
    };
    let code = request.webhook_code.as_str();
    let error = match code {
        "ERROR" => Some(SimError::item_login_required().body().clone()),
        _ => None,
    };
    let first_account = item.accounts.first().map(|a| a.account_id.as_str());
    let body = webhooks::sandbox(
        code,
        request.webhook_type.as_deref(),
        &item.item_id,
        item.ledger.historical_complete(),
        first_account.unwrap_or_default(),
        error.as_ref(),
    )
    .ok_or_else(|| {
        SimError::invalid_field(&format!(
            "webhook_code {code} cannot be fired in the simulator"
        ))
    })?;
    match code {
        "ERROR" => item.error = error,
        "LOGIN_REPAIRED" => item.error = None,
        _ => {}
    }
    state.outbox.push(Some(&url), &body);
    Ok(SandboxItemFireWebhookResponse {
        webhook_fired: true,
        request_id: request_id.to_owned(),
    })
}

/// `/sandbox/item/reset_login`: the Item now needs a new login; product calls answer
/// `ITEM_LOGIN_REQUIRED` and an ITEM `ERROR` webhook goes out.
pub fn sandbox_item_reset_login(
    state: &mut SimState,
    request: SandboxItemResetLoginRequest,
    request_id: &str,
) -> Result<SandboxItemResetLoginResponse, SimError> {
    let item = state.item_mut(request.access_token.expose())?;
    let error = SimError::item_login_required().body().clone();
    let body = webhooks::item_error(&item.item_id, &error);
    item.error = Some(error);
    let url = item.webhook.clone();
    state.outbox.push(url.as_deref(), &body);
    Ok(SandboxItemResetLoginResponse {
        reset_login: true,
        request_id: request_id.to_owned(),
    })
}
