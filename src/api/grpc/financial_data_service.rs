//! `linkstate.v1.FinancialDataService`.

use tonic::{Request, Response, Status};

use super::{auth, convert, request, status};
use crate::context::Context;
use crate::domain::ids::FinancialAccountId;
use crate::proto;
use crate::proto::financial_data_service_server::FinancialDataService;
use crate::store::financial_accounts::{self, AccountScope};
use crate::store::{self};

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
    Ok(AccountScope::ExternalCustomer(
        request.external_customer_id.clone(),
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
            .map_err(status::store)?;
        let page = financial_accounts::list(&mut conn, account_id, &scope, after, limit + 1)
            .await
            .map_err(status::store)?;
        let has_more = page.len() as i64 > limit;
        let page = &page[..page.len().min(limit as usize)];
        let next_page_token = match page.last() {
            Some(last) if has_more => request::encode_token(&FinancialAccountId(last.id)),
            _ => String::new(),
        };
        Ok(Response::new(proto::ListFinancialAccountsResponse {
            financial_accounts: page.iter().map(convert::financial_account).collect(),
            next_page_token,
        }))
    }
}
