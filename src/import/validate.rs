//! `validateOnly` imports (Google's AIP-163): every check of a real import, the provider's
//! included where it changes nothing (Plaid `/item/get`; an Akoya refresh would rotate the
//! token, so Akoya items are checked for shape only), and nothing written anywhere.

use futures::StreamExt;

use super::{CONCURRENCY, ImportError, ItemFailure, plaid_failure, require_configured, warnings};
use crate::context::Context;
use crate::domain::ids::AccountId;
use crate::domain::import::{ImportItem, ProviderCredentials};
use crate::domain::service_provider::ServiceProvider;
use crate::providers::plaid::describe_item;

/// What a real import of one item would write, as far as the provider says before anything
/// is written.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedItem {
    /// The provider.
    pub service_provider: ServiceProvider,
    /// The tenant's id for the customer, if given.
    pub external_customer_id: Option<String>,
    /// The institution's name (Akoya: its provider id, as an import names it).
    pub institution_name: String,
    /// The provider's id for the connection, where known without changing anything (Plaid's
    /// item id; an Akoya consent's grant is only known after a refresh).
    pub provider_connection_id: Option<String>,
}

/// The outcome of a validating import.
#[derive(Debug)]
pub struct ValidationOutcome {
    /// One result per item, in request order.
    pub results: Vec<Result<CheckedItem, ItemFailure>>,
    /// The warnings the import would give.
    pub warnings: Vec<String>,
}

/// Checks validated items as an import would, writing nothing.
pub async fn validate(
    ctx: &Context,
    account_id: AccountId,
    items: Vec<ImportItem>,
) -> Result<ValidationOutcome, ImportError> {
    require_configured(ctx, &items)?;
    let results = futures::stream::iter(items)
        .map(|item| check_one(ctx, item))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    Ok(ValidationOutcome {
        results,
        warnings: warnings(ctx, account_id).await,
    })
}

async fn check_one(ctx: &Context, item: ImportItem) -> Result<CheckedItem, ItemFailure> {
    let external_customer_id = item.external_customer_id;
    match item.credentials {
        ProviderCredentials::Plaid { access_token } => {
            let described = describe_item(ctx.plaid(), &access_token)
                .await
                .map_err(|error| plaid_failure(&error))?;
            let institution_id = described.institution_id.unwrap_or_else(|| "unknown".into());
            Ok(CheckedItem {
                service_provider: ServiceProvider::Plaid,
                external_customer_id,
                institution_name: described.institution_name.unwrap_or(institution_id),
                provider_connection_id: Some(described.item_id),
            })
        }
        ProviderCredentials::Akoya { provider_id, .. } => Ok(CheckedItem {
            service_provider: ServiceProvider::Akoya,
            external_customer_id,
            institution_name: provider_id,
            provider_connection_id: None,
        }),
    }
}
