//! `/transactions/sync` and `/transactions/refresh`. A cursor is an opaque base64 string naming
//! the Item and a position in its change log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::errors::SimError;
use super::state::SimState;
use super::webhooks;
use linkstate_wire::plaid::*;

/// Plaid's page size when the request has no `count`.
const DEFAULT_COUNT: u32 = 100;
/// Plaid's largest page.
const MAX_COUNT: u32 = 500;

/// `/transactions/sync`: the changes after the cursor, `count` at a time. When a pagination ends
/// and the history is still held back, the historical update completes right away (unless
/// turned off), and a `SYNC_UPDATES_AVAILABLE` webhook says so.
pub fn transactions_sync(
    state: &mut SimState,
    request: TransactionsSyncRequest,
    request_id: &str,
) -> Result<TransactionsSyncResponse, SimError> {
    let count = page_size(request.count)?;
    let auto_historical = state.auto_historical;
    let item = state.product_item_mut(request.access_token.expose())?;
    let from = match request.cursor.as_deref() {
        None | Some("") => 0,
        Some("now") => item.ledger.end(),
        Some(cursor) => position(cursor, &item.item_id, item.ledger.end())?,
    };
    if item.ledger.take_pagination_fault() {
        return Err(SimError::mutation_during_pagination());
    }
    let page = item.ledger.page(from, count);
    item.ledger.served(&page);
    let response = TransactionsSyncResponse {
        transactions_update_status: item.ledger.status().to_owned(),
        accounts: item.transaction_accounts(),
        next_cursor: cursor(&item.item_id, page.next),
        has_more: page.has_more,
        added: page.added,
        modified: page.modified,
        removed: page.removed,
        request_id: request_id.to_owned(),
    };
    let released = auto_historical && !response.has_more && item.ledger.complete_historical();
    if released {
        let body = webhooks::sync_updates_available(&item.item_id, true);
        let url = item.webhook.clone();
        state.outbox.push(url.as_deref(), &body);
    }
    Ok(response)
}

/// `/transactions/refresh`: answers at once; a `SYNC_UPDATES_AVAILABLE` webhook follows.
pub fn transactions_refresh(
    state: &mut SimState,
    request: TransactionsRefreshRequest,
    request_id: &str,
) -> Result<TransactionsRefreshResponse, SimError> {
    let item = state.product_item_mut(request.access_token.expose())?;
    let body = webhooks::sync_updates_available(&item.item_id, item.ledger.historical_complete());
    let url = item.webhook.clone();
    state.outbox.push(url.as_deref(), &body);
    Ok(TransactionsRefreshResponse {
        request_id: request_id.to_owned(),
    })
}

/// The page size asked for, within Plaid's bounds.
fn page_size(count: Option<u32>) -> Result<usize, SimError> {
    match count.unwrap_or(DEFAULT_COUNT) {
        count @ 1..=MAX_COUNT => Ok(count as usize),
        _ => Err(SimError::invalid_field("count must be between 1 and 500")),
    }
}

/// The cursor for position `position` of the Item's log.
fn cursor(item_id: &str, position: usize) -> String {
    STANDARD.encode(format!("{item_id}:{position}"))
}

/// The log position a cursor names, if it is one of this Item's and not past `end`.
fn position(cursor: &str, item_id: &str, end: usize) -> Result<usize, SimError> {
    let invalid = || SimError::invalid_field("cursor is not valid for this item");
    let bytes = STANDARD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (owner, position) = text.split_once(':').ok_or_else(invalid)?;
    let position: usize = position.parse().map_err(|_| invalid())?;
    if owner != item_id || position > end {
        return Err(invalid());
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_with_their_item() {
        let token = cursor("item-a", 42);
        assert_eq!(position(&token, "item-a", 42).unwrap(), 42);
        assert!(position(&token, "item-b", 42).is_err());
        assert!(position(&token, "item-a", 41).is_err(), "past the end");
        assert!(position("not base64!", "item-a", 100).is_err());
        assert!(token.len() < 256);
    }

    #[test]
    fn page_sizes_follow_plaid() {
        assert_eq!(page_size(None).unwrap(), 100);
        assert_eq!(page_size(Some(500)).unwrap(), 500);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(501)).is_err());
    }
}
