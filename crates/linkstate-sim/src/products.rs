//! The product endpoints that describe accounts: fresh balances, account numbers and owners.
//! Each answers the Item's error while it has one (e.g. `ITEM_LOGIN_REQUIRED`).

use super::accounts;
use super::errors::SimError;
use super::numbers::numbers;
use super::owners::owners;
use super::state::SimState;
use linkstate_wire::plaid::*;

/// `/accounts/balance/get`: the accounts, each balance having moved a little since last time.
pub fn accounts_balance_get(
    state: &mut SimState,
    request: AccountsBalanceGetRequest,
    request_id: &str,
) -> Result<AccountsGetResponse, SimError> {
    let item = state.product_item_mut(request.access_token.expose())?;
    accounts::drift(&mut item.accounts);
    Ok(AccountsGetResponse {
        accounts: item.accounts.clone(),
        item: item.to_item(),
        request_id: request_id.to_owned(),
    })
}

/// `/auth/get`: the accounts and the ACH numbers of the depository ones.
pub fn auth_get(
    state: &mut SimState,
    request: AuthGetRequest,
    request_id: &str,
) -> Result<AuthGetResponse, SimError> {
    let item = state.product_item_mut(request.access_token.expose())?;
    Ok(AuthGetResponse {
        accounts: item.accounts.clone(),
        numbers: numbers(item.institution, &item.accounts),
        item: item.to_item(),
        request_id: request_id.to_owned(),
    })
}

/// `/identity/get`: the accounts with their owners.
pub fn identity_get(
    state: &mut SimState,
    request: IdentityGetRequest,
    request_id: &str,
) -> Result<IdentityGetResponse, SimError> {
    let item = state.product_item_mut(request.access_token.expose())?;
    let owners = owners(&item.item_id, &item.accounts);
    let accounts = item
        .accounts
        .iter()
        .cloned()
        .zip(owners)
        .map(|(account, owners)| AccountIdentity { account, owners })
        .collect();
    Ok(IdentityGetResponse {
        accounts,
        item: item.to_item(),
        request_id: request_id.to_owned(),
    })
}
