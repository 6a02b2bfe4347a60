//! `linkstate.v1.FinancialDataService`.

use tonic::{Request, Response, Status};

use super::{auth, convert, request};
use crate::context::Context;
use crate::domain::ids::FinancialAccountId;
use crate::domain::input::{self, excerpt};
use crate::proto;
use crate::proto::financial_data_service_server::FinancialDataService;
use crate::store::financial_accounts::{self, AccountScope, FinancialAccountRow};
use crate::store::transactions::{self, TransactionQuery, TransactionScope};
use crate::store::{self};
use chrono::NaiveDate;
use uuid::Uuid;

/// Serves aggregated financial data.
pub struct FinancialData {
    ctx: Context,
}

impl FinancialData {
    /// A service over the shared context.
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }
}

/// Exactly one of the three ways to name whose accounts to list.
fn scope(request: &proto::ListFinancialAccountsRequest) -> Result<AccountScope, Status> {
    let given = [
        &request.connection_id,
        &request.customer_id,
        &request.external_customer_id,
    ]
    .iter()
    .filter(|v| !v.is_empty())
    .count();
    if given != 1 {
        return Err(Status::invalid_argument(
            "give exactly one of connectionId, customerId, externalCustomerId",
        ));
    }
    if let Some(id) = request::optional_id("connectionId", &request.connection_id)? {
        return Ok(AccountScope::Connection(id));
    }
    if let Some(id) = request::optional_id("customerId", &request.customer_id)? {
        return Ok(AccountScope::Customer(id));
    }
    let external = request::optional_text("externalCustomerId", &request.external_customer_id)?;
    Ok(AccountScope::ExternalCustomer(
        external.expect("one of the three is given"),
    ))
}

#[tonic::async_trait]
impl FinancialDataService for FinancialData {
    async fn list_financial_accounts(
        &self,
        request: Request<proto::ListFinancialAccountsRequest>,
    ) -> Result<Response<proto::ListFinancialAccountsResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let scope = scope(&request)?;
        let limit = request::page_size(request.page_size)?;
        let after = request::decode_token::<FinancialAccountId>(&request.page_token)?;
        let mut conn = store::connect(self.ctx.pool())
            .await
            .map_err(Status::from)?;
        let page = financial_accounts::list(&mut conn, account_id, &scope, after, limit + 1)
            .await
            .map_err(Status::from)?;
        let has_more = page.len() as i64 > limit;
        let page = &page[..page.len().min(limit as usize)];
        let next_page_token = match page.last() {
            Some(last) if has_more => request::encode_token(&FinancialAccountId(last.id)),
            _ => String::new(),
        };
        let financial_accounts = page
            .iter()
            .map(|row| Ok(convert::financial_account(row, self.identifiers(row)?)))
            .collect::<Result<_, Status>>()?;
        Ok(Response::new(proto::ListFinancialAccountsResponse {
            financial_accounts,
            next_page_token,
        }))
    }

    async fn list_transactions(
        &self,
        request: Request<proto::ListTransactionsRequest>,
    ) -> Result<Response<proto::ListTransactionsResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let scope = transaction_scope(&request)?;
        let limit = match request.page_size {
            0 => DEFAULT_TRANSACTIONS_PAGE,
            n if n < 0 => return Err(Status::invalid_argument("pageSize must not be negative")),
            n => n.min(MAX_TRANSACTIONS_PAGE) as i64,
        };
        let status = match proto::transaction::Status::try_from(request.status) {
            Ok(proto::transaction::Status::Unspecified) => None,
            Ok(status) => Some(request::known_enum("status", Some(status.as_str_name()))?),
            Err(_) => return Err(Status::invalid_argument("status has an unknown value")),
        };
        let query = TransactionQuery {
            start_date: date("startDate", &request.start_date)?,
            end_date: date("endDate", &request.end_date)?,
            status,
            after: request::decode_token::<(NaiveDate, Uuid)>(&request.page_token)?
                .map(|(date, id)| Ok::<_, Status>((request::token_date(date)?, id)))
                .transpose()?,
        };
        let mut conn = store::connect(self.ctx.pool())
            .await
            .map_err(Status::from)?;
        let page = transactions::list(&mut conn, account_id, scope, &query, limit + 1)
            .await
            .map_err(Status::from)?;
        let has_more = page.len() as i64 > limit;
        let page = &page[..page.len().min(limit as usize)];
        let next_page_token = match page.last() {
            Some(last) if has_more => request::encode_token(&(last.transaction_date, last.id)),
            _ => String::new(),
        };
        Ok(Response::new(proto::ListTransactionsResponse {
            transactions: page.iter().map(convert::transaction).collect(),
            next_page_token,
        }))
    }
}

impl FinancialData {
    /// Opens an account's sealed identifiers for the response.
    fn identifiers(&self, row: &FinancialAccountRow) -> Result<Option<proto::Identifiers>, Status> {
        let Some(sealed) = &row.identifiers else {
            return Ok(None);
        };
        let (account, routing, wire) = financial_accounts::open_identifiers(
            self.ctx.cipher(),
            FinancialAccountId(row.id),
            sealed,
        )
        .map_err(Status::from)?;
        Ok(Some(proto::Identifiers {
            account_number: account.expose().to_string(),
            routing_number: routing,
            wire_routing_number: wire.unwrap_or_default(),
        }))
    }
}

/// Transactions in a page when the request does not say.
const DEFAULT_TRANSACTIONS_PAGE: i64 = 100;

/// Most transactions one page may hold.
const MAX_TRANSACTIONS_PAGE: i32 = 500;

/// Exactly one of the three ways to name whose transactions to list.
fn transaction_scope(request: &proto::ListTransactionsRequest) -> Result<TransactionScope, Status> {
    let given = [
        &request.financial_account_id,
        &request.connection_id,
        &request.customer_id,
    ]
    .iter()
    .filter(|v| !v.is_empty())
    .count();
    if given != 1 {
        return Err(Status::invalid_argument(
            "give exactly one of financialAccountId, connectionId, customerId",
        ));
    }
    if let Some(id) = request::optional_id("financialAccountId", &request.financial_account_id)? {
        return Ok(TransactionScope::FinancialAccount(id));
    }
    if let Some(id) = request::optional_id("connectionId", &request.connection_id)? {
        return Ok(TransactionScope::Connection(id));
    }
    Ok(TransactionScope::Customer(
        request::optional_id("customerId", &request.customer_id)?.expect("one id is given"),
    ))
}

/// An optional YYYY-MM-DD date field.
fn date(field: &str, value: &str) -> Result<Option<NaiveDate>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        Status::invalid_argument(format!(
            "{field} {} is not a YYYY-MM-DD date",
            excerpt(value)
        ))
    })?;
    input::date(field, date).map(Some).map_err(request::invalid)
}
