//! Customers: the tenant's people, found or made by their external id.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::schema::customers;
use crate::domain::ids::{AccountId, CustomerId};

/// The customer with this external id, made on first use; a customer without one is always new.
///
/// DO NOTHING and then a read, rather than a no-op DO UPDATE: an update would lock the row, and
/// concurrent aggregations of the customer's connections hold key-share locks on it.
pub async fn find_or_create_customer(
    conn: &mut AsyncPgConnection,
    account_id: AccountId,
    external_customer_id: Option<&str>,
) -> Result<CustomerId, StoreError> {
    let inserted = diesel::insert_into(customers::table)
        .values((
            customers::id.eq(CustomerId::generate().0),
            customers::account_id.eq(account_id.0),
            customers::external_customer_id.eq(external_customer_id),
        ))
        .on_conflict_do_nothing()
        .returning(customers::id)
        .get_result::<Uuid>(conn)
        .await
        .optional()?;
    let id = match inserted {
        Some(id) => id,
        None => {
            customers::table
                .filter(customers::account_id.eq(account_id.0))
                .filter(customers::external_customer_id.eq(external_customer_id))
                .select(customers::id)
                .first::<Uuid>(conn)
                .await?
        }
    };
    Ok(CustomerId(id))
}
