//! Customers: reading them, and DeleteCustomer, which deletes each of a customer's
//! connections exactly as DeleteConnection does and then the customer itself.
//!
//! A delete that fails half way leaves what it deleted deleted, and says so: calling it again
//! deletes the rest. The customer is marked DELETED (and, when asked, its financial data
//! erased) only in the transaction that finds no connection of it left.

use diesel_async::AsyncConnection;

use crate::context::Context;
use crate::domain::connection::Connection;
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::customer::{Customer, CustomerStatus};
use crate::domain::ids::{AccountId, CustomerId};
use crate::domain::input::excerpt;
use crate::lifecycle::{self, LifecycleError};
use crate::store::connections::ConnectionQuery;
use crate::store::{self, StoreError, connections, customers};

/// Rounds of DeleteCustomer before it gives up on connections that keep appearing (an import
/// for the customer running at the same time).
const DELETE_ROUNDS: usize = 3;

/// Connections read per page while deleting.
const PAGE: i64 = 100;

/// Why a customer request was refused.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// No such customer for this tenant.
    #[error("customer {} not found", excerpt(&.0.to_string()))]
    NotFound(CustomerId),
    /// Deleting a deleted customer.
    #[error("customer is already DELETED")]
    AlreadyDeleted,
    /// Some connections could not be deleted (a provider could not be reached, or refused);
    /// the others stay deleted. Answered with the first failure's code.
    #[error(
        "{failed} of the customer's connections could not be deleted ({cause}); the others stay \
         deleted: call DeleteCustomer again to finish"
    )]
    Unfinished {
        /// How many are left.
        failed: usize,
        /// The first failure.
        cause: Box<LifecycleError>,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One customer of the tenant.
pub async fn get(
    ctx: &Context,
    account_id: AccountId,
    id: CustomerId,
) -> Result<Customer, CustomerError> {
    let mut conn = store::connect(ctx.pool()).await?;
    customers::get(&mut conn, account_id, id)
        .await
        .map_err(|error| not_found(error, id))
}

impl From<diesel::result::Error> for CustomerError {
    fn from(error: diesel::result::Error) -> Self {
        CustomerError::Store(error.into())
    }
}

fn not_found(error: StoreError, id: CustomerId) -> CustomerError {
    match error {
        StoreError::NotFound => CustomerError::NotFound(id),
        other => CustomerError::Store(other),
    }
}

/// Deletes the customer: every connection (at the provider first), then the customer, with
/// its financial data erased when `erase_data` asks for it.
pub async fn delete(
    ctx: &Context,
    account_id: AccountId,
    id: CustomerId,
    erase_data: bool,
) -> Result<Customer, CustomerError> {
    if get(ctx, account_id, id).await?.status == CustomerStatus::Deleted {
        return Err(CustomerError::AlreadyDeleted);
    }
    for _ in 0..DELETE_ROUNDS {
        delete_connections(ctx, account_id, id).await?;
        let mut conn = store::connect(ctx.pool()).await?;
        let finished = conn
            .transaction::<_, CustomerError, _>(async |conn| {
                let status = customers::lock_for_delete(conn, account_id, id)
                    .await
                    .map_err(|error| not_found(error, id))?;
                if status == CustomerStatus::Deleted {
                    return Err(CustomerError::AlreadyDeleted);
                }
                // A connection written since the list was read: another round deletes it.
                if customers::has_live_connections(conn, id).await? {
                    return Ok(false);
                }
                customers::mark_deleted(conn, id).await?;
                if erase_data {
                    customers::erase_data(conn, id).await?;
                }
                Ok(true)
            })
            .await?;
        if finished {
            tracing::info!(customer = %id, erase_data, "customer deleted");
            return get(ctx, account_id, id).await;
        }
    }
    Err(CustomerError::Store(StoreError::Conflict(
        "connections of the customer kept being made while it was deleted".into(),
    )))
}

/// Deletes every connection of the customer that is not DELETED, inactive duplicates first
/// (Meld deletes an active connection only after them). Each one that fails is left for the
/// next call; the first failure is the answer.
async fn delete_connections(
    ctx: &Context,
    account_id: AccountId,
    id: CustomerId,
) -> Result<(), CustomerError> {
    let mut live = live_connections(ctx, account_id, id).await?;
    live.sort_by_key(|connection| connection.active_duplicate_connection_id.is_none());
    let mut failures = Vec::new();
    for connection in live {
        match lifecycle::delete(ctx, account_id, connection.id).await {
            Ok(_) | Err(LifecycleError::AlreadyDeleted) => {}
            Err(error) => {
                tracing::warn!(connection = %connection.id, %error, "connection not deleted");
                failures.push(error);
            }
        }
    }
    let failed = failures.len();
    match failures.into_iter().next() {
        None => Ok(()),
        Some(first) => Err(CustomerError::Unfinished {
            failed,
            cause: Box::new(first),
        }),
    }
}

/// The customer's connections that are not DELETED, all pages of them.
async fn live_connections(
    ctx: &Context,
    account_id: AccountId,
    id: CustomerId,
) -> Result<Vec<Connection>, StoreError> {
    let mut conn = store::connect(ctx.pool()).await?;
    let mut query = ConnectionQuery {
        customer_id: Some(id),
        ..ConnectionQuery::default()
    };
    let mut all = Vec::new();
    loop {
        let page = connections::list(&mut conn, account_id, &query, PAGE).await?;
        let last = page.last().map(|c| (c.created_at, c.id));
        let full = page.len() as i64 == PAGE;
        all.extend(
            page.into_iter()
                .filter(|c| c.status != ConnectionStatus::Deleted),
        );
        match last {
            Some(after) if full => query.after = Some(after),
            _ => return Ok(all),
        }
    }
}
