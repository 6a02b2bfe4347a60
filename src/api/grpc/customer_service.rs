//! `linkstate.v1.CustomerService`.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

use super::{auth, convert, request, status};
use crate::context::Context;
use crate::customers;
use crate::domain::ids::CustomerId;
use crate::proto;
use crate::proto::customer_service_server::CustomerService;
use crate::store::{self, customers as customer_store};

/// Serves customer reads and deletes.
pub struct Customers {
    ctx: Context,
}

impl Customers {
    /// A service over the shared context.
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CustomerPageToken {
    created_at: DateTime<Utc>,
    id: CustomerId,
}

/// The customer a request names: INVALID_ARGUMENT when unset; a malformed id is NOT_FOUND,
/// like any id this tenant has no customer for.
fn customer_id(raw: &str) -> Result<CustomerId, Status> {
    if raw.is_empty() {
        return Err(Status::invalid_argument("customerId is required"));
    }
    raw.parse().map_err(|_| status::not_found("customer", raw))
}

#[tonic::async_trait]
impl CustomerService for Customers {
    async fn get_customer(
        &self,
        request: Request<proto::GetCustomerRequest>,
    ) -> Result<Response<proto::Customer>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let id = customer_id(&request.into_inner().customer_id)?;
        let customer = customers::get(&self.ctx, account_id, id).await?;
        Ok(Response::new(convert::customer(&customer)))
    }

    async fn list_customers(
        &self,
        request: Request<proto::ListCustomersRequest>,
    ) -> Result<Response<proto::ListCustomersResponse>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let limit = request::page_size(request.page_size)?;
        let after = request::decode_token::<CustomerPageToken>(&request.page_token)?
            .map(|token| {
                request::token_date(token.created_at.date_naive())?;
                Ok::<_, Status>((token.created_at, token.id))
            })
            .transpose()?;
        let external = request::optional_text("externalCustomerId", &request.external_customer_id)?;
        let mut conn = store::connect(self.ctx.pool())
            .await
            .map_err(Status::from)?;
        let page =
            customer_store::list(&mut conn, account_id, external.as_deref(), after, limit + 1)
                .await
                .map_err(Status::from)?;
        let has_more = page.len() as i64 > limit;
        let page = &page[..page.len().min(limit as usize)];
        let next_page_token = match page.last() {
            Some(last) if has_more => request::encode_token(&CustomerPageToken {
                created_at: last.created_at,
                id: last.id,
            }),
            _ => String::new(),
        };
        Ok(Response::new(proto::ListCustomersResponse {
            customers: page.iter().map(convert::customer).collect(),
            next_page_token,
        }))
    }

    async fn delete_customer(
        &self,
        request: Request<proto::DeleteCustomerRequest>,
    ) -> Result<Response<proto::Customer>, Status> {
        let account_id = auth::account(&self.ctx, request.metadata()).await?;
        let request = request.into_inner();
        let id = customer_id(&request.customer_id)?;
        let deleted = customers::delete(&self.ctx, account_id, id, request.erase_data).await?;
        Ok(Response::new(convert::customer(&deleted)))
    }
}
