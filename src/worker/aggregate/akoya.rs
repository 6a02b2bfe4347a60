//! Akoya behind the aggregation seam: accounts-info with balances, the current customer as
//! owner, and transactions pulled by date window (Akoya has no cursor and sends no data
//! webhooks), paged by `links.next.href`. Every call carries the consent's id token, refreshed
//! under the connection's lease when it is about to expire.

use std::collections::{BTreeSet, HashSet};

use chrono::{Days, NaiveDate, Utc};

use super::{Accounts, Failed, Pulled, Since};
use crate::context::Context;
use crate::domain::connection::Connection;
use crate::domain::financial_account::{AccountOwner, ProviderAccount};
use crate::domain::secret::Secret;
use crate::domain::transaction_window::{self, FIRST_PULL_DAYS, Window};
use crate::domain::transactions::ProviderTransaction;
use crate::providers::akoya::tokens::{self, TokenFailure};
use crate::providers::akoya::{
    AccountInfo, AkoyaError, AkoyaErrorKind, TransactionsResponse, Wrapped, mapping, retrying,
};
use crate::store::{self, credentials};
use crate::worker::JobError;

/// How far back the historical load reaches: two years, as Plaid's.
const HISTORY_DAYS: u64 = 730;

/// Most transactions one pull holds in memory; a window beyond it is a provider gone wrong.
const MAX_PULLED: usize = 500_000;

/// Most pages followed for one account in one pull.
const MAX_PAGES: usize = 20_000;

/// An Akoya consent being aggregated.
pub(crate) struct AkoyaSource<'a> {
    ctx: &'a Context,
    connection: &'a Connection,
    provider_id: String,
    id_token: Option<Secret>,
    /// The accounts-info answer of this run, read once.
    listed: Option<Vec<Wrapped<AccountInfo>>>,
}

impl<'a> AkoyaSource<'a> {
    /// The consent's provider id, from the store; no token is refreshed yet.
    pub async fn open(ctx: &'a Context, connection: &'a Connection) -> Result<Self, JobError> {
        let mut conn = store::connect(ctx.pool()).await?;
        let tokens = credentials::akoya_tokens(&mut conn, ctx.cipher(), connection.id).await?;
        Ok(Self {
            ctx,
            connection,
            provider_id: tokens.provider_id,
            id_token: None,
            listed: None,
        })
    }

    /// The id token for this run's calls.
    async fn token(&mut self) -> Result<Secret, Failed> {
        if let Some(token) = &self.id_token {
            return Ok(token.clone());
        }
        let ctx = self.ctx;
        let token = tokens::id_token(ctx.akoya(), ctx.pool(), ctx.cipher(), self.connection.id)
            .await
            .map_err(|failure| match failure {
                TokenFailure::Akoya(error) => Failed::from(error),
                TokenFailure::Store(error) => Failed::Store(error),
            })?;
        self.id_token = Some(token.clone());
        Ok(token)
    }

    /// The consent's accounts as accounts-info lists them now.
    async fn account_list(&mut self) -> Result<Vec<Wrapped<AccountInfo>>, Failed> {
        if let Some(listed) = &self.listed {
            return Ok(listed.clone());
        }
        let token = self.token().await?;
        let akoya = self.ctx.akoya();
        let listed = retrying(|| akoya.accounts_info(&token, &self.provider_id))
            .await?
            .accounts;
        self.listed = Some(listed.clone());
        Ok(listed)
    }

    /// accounts-info with balances: the consent's whole list.
    pub async fn accounts(&mut self) -> Result<Accounts, Failed> {
        let listed = self.account_list().await?;
        let token = self.token().await?;
        let akoya = self.ctx.akoya();
        let balances = retrying(|| akoya.balances(&token, &self.provider_id)).await?;
        Ok(Accounts {
            accounts: mapping::accounts(&listed, &balances.accounts),
            complete: true,
            closed: listed
                .iter()
                .filter(|a| !mapping::is_open(&a.value))
                .map(|a| a.value.account_id.clone())
                .collect(),
        })
    }

    /// The consenting customer as owner of the accounts; None where the institution does not
    /// serve customers.
    pub async fn owners(
        &mut self,
        accounts: &[ProviderAccount],
    ) -> Result<Option<Vec<(String, Vec<AccountOwner>)>>, Failed> {
        let token = self.token().await?;
        let akoya = self.ctx.akoya();
        match retrying(|| akoya.current_customer(&token, &self.provider_id)).await {
            Ok(answer) => {
                let ids: Vec<String> = accounts
                    .iter()
                    .map(|a| a.provider_account_id.clone())
                    .collect();
                Ok(Some(mapping::owners(&answer.customer, &ids)))
            }
            Err(error) if error.kind() == AkoyaErrorKind::Refused => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The recent window: the last 30 days the first time, then from the last pull less the
    /// overlap that catches late postings.
    pub async fn transactions(&mut self, since: &Since) -> Result<Pulled, Failed> {
        let today = Utc::now().date_naive();
        let last = since
            .cursor
            .as_deref()
            .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok());
        let from = transaction_window::pull_from(last, today);
        let (window, transactions) = self.pull(from, today).await?;
        Ok(Pulled::Window {
            window,
            transactions,
            next_cursor: Some(today.format("%Y-%m-%d").to_string()),
        })
    }

    /// The historical load: two years up to the first pull's window.
    pub async fn historical(&mut self) -> Result<Pulled, Failed> {
        let today = Utc::now().date_naive();
        let to = today - Days::new(FIRST_PULL_DAYS + 1);
        let (window, transactions) = self.pull(today - Days::new(HISTORY_DAYS), to).await?;
        Ok(Pulled::Window {
            window,
            transactions,
            next_cursor: None,
        })
    }

    /// Every open account's transactions from `from` to `to`; the window names the accounts
    /// read in full (an account Akoya no longer finds is left out, not emptied).
    async fn pull(
        &mut self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<(Window, Vec<ProviderTransaction>), Failed> {
        let listed = self.account_list().await?;
        let token = self.token().await?;
        let mut read = BTreeSet::new();
        let mut pulled = Vec::new();
        for account in listed.iter().filter(|a| mapping::is_open(&a.value)) {
            match self
                .pull_account(&token, account, (from, to), &mut pulled)
                .await
            {
                Ok(()) => {
                    read.insert(account.value.account_id.clone());
                }
                Err(error) if error.http_status() == Some(404) => {
                    tracing::info!(connection = %self.connection.id, "an account is gone at Akoya; left as it is");
                }
                Err(error) => return Err(error.into()),
            }
        }
        let window = Window {
            accounts: read,
            from,
            to,
        };
        Ok((window, pulled))
    }

    /// One account's pages, in order, into `pulled`.
    async fn pull_account(
        &self,
        token: &Secret,
        account: &Wrapped<AccountInfo>,
        (from, to): (NaiveDate, NaiveDate),
        pulled: &mut Vec<ProviderTransaction>,
    ) -> Result<(), AkoyaError> {
        let akoya = self.ctx.akoya();
        let liability = mapping::is_liability(account);
        let account_id = &account.value.account_id;
        let mut page: TransactionsResponse =
            retrying(|| akoya.transactions(token, &self.provider_id, account_id, from, to)).await?;
        let mut followed = HashSet::new();
        for _ in 0..MAX_PAGES {
            pulled.extend(
                page.transactions
                    .iter()
                    // Only what belongs to the account asked for: an answer cannot write elsewhere.
                    .filter(|t| &t.value.account_id == account_id)
                    .filter_map(|t| mapping::transaction(&t.value, liability)),
            );
            if pulled.len() > MAX_PULLED {
                return Err(AkoyaError::Decode(format!(
                    "more than {MAX_PULLED} transactions in one pull"
                )));
            }
            let Some(next) = page
                .links
                .and_then(|links| links.next)
                .map(|link| link.href)
            else {
                return Ok(());
            };
            if !followed.insert(next.clone()) {
                return Err(AkoyaError::Decode(
                    "links.next.href goes round in a loop".into(),
                ));
            }
            page = retrying(|| akoya.follow(token, &next)).await?;
        }
        Err(AkoyaError::Decode(format!(
            "more than {MAX_PAGES} pages for one account"
        )))
    }
}
