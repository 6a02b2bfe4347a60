//! Plaid behind the aggregation seam: `/accounts/balance/get`, `/auth/get`, `/identity/get`
//! and `/transactions/sync` paged from the stored cursor. Each call retries transient failures.

use super::{Accounts, Failed, Pulled, Since};
use crate::context::Context;
use crate::domain::connection::Connection;
use crate::domain::financial_account::{AccountIdentifiers, AccountOwner};
use crate::domain::import::ProviderCredentials;
use crate::domain::secret::Secret;
use crate::domain::transactions::SyncChange;
use crate::providers::plaid::{PlaidError, mapping, retrying};
use crate::store::{self, connections, credentials};
use crate::worker::JobError;

/// Transactions per `/transactions/sync` page (Plaid's maximum).
const SYNC_PAGE: u32 = 500;

/// Times a sync restarts from its old cursor when Plaid's data moved under the pagination.
const SYNC_RESTARTS: usize = 3;

/// A Plaid item being aggregated.
pub(crate) struct PlaidSource<'a> {
    ctx: &'a Context,
    connection: &'a Connection,
    access_token: Secret,
    /// The webhook URL Plaid was last told.
    webhook_url: Option<String>,
}

impl<'a> PlaidSource<'a> {
    /// The item's access token and webhook, from the store.
    pub async fn open(ctx: &'a Context, connection: &'a Connection) -> Result<Self, JobError> {
        let mut conn = store::connect(ctx.pool()).await?;
        let credentials = credentials::get(&mut conn, ctx.cipher(), connection.id).await?;
        let webhook_url = connections::webhook_url(&mut conn, connection.id).await?;
        let ProviderCredentials::Plaid { access_token } = credentials else {
            return Err(JobError::Permanent(format!(
                "connection {} holds no Plaid access token",
                connection.id
            )));
        };
        Ok(Self {
            ctx,
            connection,
            access_token,
            webhook_url,
        })
    }

    /// Has Plaid send the item's webhooks to linkstate, and remembers that it does.
    async fn point_webhook(&mut self) -> Result<(), Failed> {
        let ours = self.ctx.plaid_webhook_url();
        retrying(|| {
            self.ctx
                .plaid()
                .item_webhook_update(&self.access_token, ours)
        })
        .await?;
        let mut conn = store::connect(self.ctx.pool()).await?;
        connections::set_webhook_url(&mut conn, self.connection.id, ours).await?;
        self.webhook_url = Some(ours.to_owned());
        Ok(())
    }

    /// Balances fetched from the institution now; repairs the item's webhook on the way.
    pub async fn accounts(&mut self) -> Result<Accounts, Failed> {
        let ours = self.ctx.plaid_webhook_url();
        // Seed step 3 (the import did it; this repairs a changed public URL).
        if self.webhook_url.as_deref() != Some(ours) {
            self.point_webhook().await?;
        }
        let plaid = self.ctx.plaid();
        let balances = retrying(|| plaid.accounts_balance_get(&self.access_token)).await?;
        // The Item as Plaid has it: a webhook changed elsewhere since (an old integration, the
        // dashboard) is pointed back, or its notices would stop reaching us.
        if balances.item.webhook.as_deref() != Some(ours) {
            tracing::info!(connection = %self.connection.id, "the item's webhook was changed elsewhere; pointing it back");
            self.point_webhook().await?;
        }
        Ok(Accounts {
            accounts: balances.accounts.iter().map(mapping::account).collect(),
            complete: false,
            closed: Vec::new(),
        })
    }

    /// `/auth/get`, when the item has the product.
    pub async fn identifiers(&mut self) -> Result<Option<Vec<AccountIdentifiers>>, Failed> {
        let answer =
            optional_product(retrying(|| self.ctx.plaid().auth_get(&self.access_token)).await)?;
        Ok(answer.map(|response| mapping::identifiers(&response)))
    }

    /// `/identity/get`, when the item has the product.
    pub async fn owners(&mut self) -> Result<Option<Vec<(String, Vec<AccountOwner>)>>, Failed> {
        let answer =
            optional_product(retrying(|| self.ctx.plaid().identity_get(&self.access_token)).await)?;
        Ok(answer.map(|response| mapping::owners(&response)))
    }

    /// Pages `/transactions/sync` to the end, restarting from the stored cursor if the data
    /// moved under the pagination.
    pub async fn transactions(&mut self, since: &Since) -> Result<Pulled, Failed> {
        let plaid = self.ctx.plaid();
        let mut restarts = 0;
        'restart: loop {
            let mut changes = Vec::new();
            let mut position = since.cursor.clone();
            loop {
                let page = retrying(|| {
                    plaid.transactions_sync(&self.access_token, position.as_deref(), SYNC_PAGE)
                })
                .await;
                let page = match page {
                    Err(error)
                        if error.error_code()
                            == Some("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION")
                            && restarts < SYNC_RESTARTS =>
                    {
                        restarts += 1;
                        continue 'restart;
                    }
                    other => other?,
                };
                changes.extend(
                    page.added
                        .iter()
                        .map(|t| SyncChange::Added(mapping::transaction(t))),
                );
                changes.extend(
                    page.modified
                        .iter()
                        .map(|t| SyncChange::Modified(mapping::transaction(t))),
                );
                changes.extend(
                    page.removed.iter().map(|r| {
                        SyncChange::Removed(r.transaction_id.clone(), r.account_id.clone())
                    }),
                );
                position = Some(page.next_cursor.clone());
                if !page.has_more {
                    return Ok(Pulled::Changes {
                        changes,
                        next_cursor: page.next_cursor,
                        historical_complete: page.transactions_update_status
                            == "HISTORICAL_UPDATE_COMPLETE",
                    });
                }
            }
        }
    }
}

/// A product the item does not have is skipped, not a failure.
fn optional_product<T>(result: Result<T, PlaidError>) -> Result<Option<T>, PlaidError> {
    match result {
        Ok(response) => Ok(Some(response)),
        Err(error) if mapping::product_unavailable(&error) => Ok(None),
        Err(error) => Err(error),
    }
}
