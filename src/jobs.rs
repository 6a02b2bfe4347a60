//! The jobs that use cases queue and the worker runs: what each carries, one named constructor
//! per reason to queue one, and the queue operations the use cases need.

use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};
use strum::IntoStaticStr;
use uuid::Uuid;

use crate::domain::ids::{AccountId, ConnectionId, RequestId};
use crate::domain::product::Product;
use crate::store::StoreError;
use crate::store::jobs::{self as queue, NewJob, OnDuplicate};

/// Why an aggregation runs; stored in its own column, so the scheduler counts its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Trigger {
    /// A connection was imported.
    #[default]
    Import,
    /// RefreshConnection asked for it (or a connect flow completed).
    Refresh,
    /// The background refresh's turn came.
    Schedule,
    /// A provider webhook said there is new data.
    Webhook,
}

/// Aggregate one connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateJob {
    /// The tenant.
    pub account_id: AccountId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// The request that asked for it, carried into the events.
    pub request_id: RequestId,
    /// Whether this run must send ACCOUNTS_UPDATING itself (an import already did, otherwise).
    pub announce: bool,
    /// The products to fetch; empty means all the connection has.
    #[serde(default)]
    pub products: Vec<Product>,
    /// Why it runs.
    #[serde(default)]
    pub trigger: Trigger,
    /// Whether the connection's accounts are compared with its customer's other connections
    /// when written (after a completion or a repair: an import compares them itself).
    #[serde(default)]
    pub settle_duplicates: bool,
}

/// Process one recorded provider webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookJob {
    /// The delivery.
    pub delivery_id: Uuid,
}

/// The jobs linkstate knows, as stored in `jobs.payload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Fetch a connection's data from its provider.
    Aggregate(AggregateJob),
    /// Act on a recorded provider webhook.
    Webhook(WebhookJob),
}

impl Job {
    /// The aggregation after an import: `announce` when the connection was known already (a
    /// new one's import sent ACCOUNTS_UPDATING itself).
    pub fn after_import(
        account_id: AccountId,
        connection_id: ConnectionId,
        request_id: &RequestId,
        announce: bool,
    ) -> Self {
        Self::aggregate(
            account_id,
            connection_id,
            request_id.clone(),
            Trigger::Import,
        )
        .announcing(announce)
    }

    /// The first aggregation of a completed connect flow, under the completion's request id.
    pub fn after_completion(
        account_id: AccountId,
        connection_id: ConnectionId,
        request_id: &RequestId,
    ) -> Self {
        Self::aggregate(
            account_id,
            connection_id,
            request_id.clone(),
            Trigger::Refresh,
        )
        .settling_duplicates()
    }

    /// The aggregation after a repair: ACCOUNTS_UPDATING marks the accounts not seen before.
    pub fn after_repair(
        account_id: AccountId,
        connection_id: ConnectionId,
        request_id: &RequestId,
    ) -> Self {
        // What follows a repair is what follows a completion: the accounts, announced, and
        // the duplicates settled.
        Self::after_completion(account_id, connection_id, request_id)
    }

    /// A refresh RefreshConnection asked for, of `products` (all when empty).
    pub fn refresh(
        account_id: AccountId,
        connection_id: ConnectionId,
        products: Vec<Product>,
    ) -> Self {
        let mut job = Self::aggregate(
            account_id,
            connection_id,
            RequestId::generate(),
            Trigger::Refresh,
        );
        if let Job::Aggregate(aggregate) = &mut job {
            aggregate.products = products;
        }
        job
    }

    /// The background refresh whose turn came.
    pub fn scheduled(account_id: AccountId, connection_id: ConnectionId) -> Self {
        Self::aggregate(
            account_id,
            connection_id,
            RequestId::generate(),
            Trigger::Schedule,
        )
    }

    /// A transactions sync a provider's "new data" webhook asked for; it leaves the accounts be.
    pub fn webhook_sync(account_id: AccountId, connection_id: ConnectionId) -> Self {
        Job::Aggregate(AggregateJob {
            account_id,
            connection_id,
            request_id: RequestId::generate(),
            announce: false,
            products: vec![Product::Transactions],
            trigger: Trigger::Webhook,
            settle_duplicates: false,
        })
    }

    /// Processing a recorded provider webhook.
    pub fn process_delivery(delivery_id: Uuid) -> Self {
        Job::Webhook(WebhookJob { delivery_id })
    }

    fn aggregate(
        account_id: AccountId,
        connection_id: ConnectionId,
        request_id: RequestId,
        trigger: Trigger,
    ) -> Self {
        Job::Aggregate(AggregateJob {
            account_id,
            connection_id,
            request_id,
            announce: true,
            products: Vec::new(),
            trigger,
            settle_duplicates: false,
        })
    }

    fn settling_duplicates(mut self) -> Self {
        if let Job::Aggregate(aggregate) = &mut self {
            aggregate.settle_duplicates = true;
        }
        self
    }

    fn announcing(mut self, announce: bool) -> Self {
        if let Job::Aggregate(aggregate) = &mut self {
            aggregate.announce = announce;
        }
        self
    }

    /// The request id an aggregation carries into its events.
    pub fn request_id(&self) -> Option<&RequestId> {
        match self {
            Job::Aggregate(job) => Some(&job.request_id),
            Job::Webhook(_) => None,
        }
    }

    /// The row that queues this job.
    pub fn to_new_job(&self) -> NewJob {
        let payload = serde_json::to_value(self).expect("jobs serialize");
        match self {
            Job::Aggregate(job) => NewJob {
                kind: "aggregate".into(),
                account_id: Some(job.account_id.0),
                connection_id: Some(job.connection_id.0),
                payload,
                dedupe_key: Some(aggregation_key(job.connection_id)),
                trigger: Some(<&str>::from(job.trigger).to_string()),
            },
            Job::Webhook(job) => NewJob {
                kind: "webhook".into(),
                account_id: None,
                connection_id: None,
                payload,
                dedupe_key: Some(format!("webhook:{}", job.delivery_id)),
                trigger: None,
            },
        }
    }
}

/// The dedupe key of a connection's aggregation: at most one is queued or running.
fn aggregation_key(connection_id: ConnectionId) -> String {
    format!("aggregate:{connection_id}")
}

/// Queues a job inside the caller's transaction; see [`OnDuplicate`].
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    job: &Job,
    on_duplicate: OnDuplicate,
) -> Result<bool, StoreError> {
    queue::enqueue(conn, job.to_new_job(), on_duplicate).await
}

/// Joins `requested` (an aggregation) to the connection's aggregation that is queued or
/// running, and answers that one's request id. One that fetches fewer products than requested
/// is widened to them, and if it is running (it may have passed them already) it runs once
/// more when it ends: joining never drops what was asked for. None when no aggregation is
/// live.
pub async fn join_live(
    conn: &mut AsyncPgConnection,
    requested: &AggregateJob,
) -> Result<Option<RequestId>, StoreError> {
    let key = aggregation_key(requested.connection_id);
    let Some(payload) = queue::live_payload(conn, &key).await? else {
        return Ok(None);
    };
    let live = match serde_json::from_value::<Job>(payload) {
        Ok(Job::Aggregate(live)) => live,
        Ok(Job::Webhook(_)) => {
            return Err(StoreError::Corrupt(format!("job {key} is no aggregation")));
        }
        Err(error) => {
            return Err(StoreError::Corrupt(format!(
                "the payload of job {key}: {error}"
            )));
        }
    };
    // A live aggregation that already fetches what was asked answers the request as it is:
    // running it again would only repeat its events.
    if live.covers(&requested.products) {
        return Ok(Some(live.request_id));
    }
    let products = union(&live.products, &requested.products);
    let widened = AggregateJob { products, ..live };
    let payload = serde_json::to_value(Job::Aggregate(widened.clone())).expect("jobs serialize");
    Ok(queue::replace_live_payload(conn, &key, payload)
        .await?
        .then_some(widened.request_id))
}

impl AggregateJob {
    /// Whether this aggregation fetches every product of `wanted` (empty: all of them).
    fn covers(&self, wanted: &[Product]) -> bool {
        self.products.is_empty()
            || (!wanted.is_empty() && wanted.iter().all(|p| self.products.contains(p)))
    }
}

/// The products of two aggregations together; empty (all products) when either is.
fn union(a: &[Product], b: &[Product]) -> Vec<Product> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut all: Vec<Product> = a.iter().chain(b).copied().collect();
    all.sort();
    all.dedup();
    all
}

/// Background refreshes queued or running now, across replicas.
pub async fn scheduled_count(conn: &mut AsyncPgConnection) -> Result<i64, StoreError> {
    queue::live_count_of(conn, "aggregate", Trigger::Schedule.into()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregations_carry_their_trigger_in_the_row_and_dedupe_per_connection() {
        let (account, connection) = (AccountId::generate(), ConnectionId::generate());
        let row = Job::scheduled(account, connection).to_new_job();
        assert_eq!(row.trigger.as_deref(), Some("schedule"));
        assert_eq!(row.dedupe_key, Some(format!("aggregate:{connection}")));
        let row = Job::webhook_sync(account, connection).to_new_job();
        assert_eq!(row.trigger.as_deref(), Some("webhook"));
        assert_eq!(row.payload["products"], serde_json::json!(["TRANSACTIONS"]));
        let row = Job::process_delivery(Uuid::nil()).to_new_job();
        assert_eq!(row.trigger, None);
    }

    #[test]
    fn a_narrower_live_aggregation_does_not_cover_a_wider_request() {
        let (account, connection) = (AccountId::generate(), ConnectionId::generate());
        let Job::Aggregate(sync) = Job::webhook_sync(account, connection) else {
            unreachable!()
        };
        assert!(
            !sync.covers(&[]),
            "a transactions sync does not cover a whole refresh"
        );
        assert!(sync.covers(&[Product::Transactions]));
        let Job::Aggregate(all) = Job::scheduled(account, connection) else {
            unreachable!()
        };
        assert!(all.covers(&[]) && all.covers(&[Product::Balances]));
        assert_eq!(union(&[Product::Transactions], &[]), Vec::<Product>::new());
        assert_eq!(
            union(
                &[Product::Transactions],
                &[Product::Balances, Product::Transactions]
            )
            .len(),
            2
        );
    }

    #[test]
    fn a_stored_payload_reads_back_as_its_job() {
        let request = RequestId::generate();
        let job = Job::after_import(
            AccountId::generate(),
            ConnectionId::generate(),
            &request,
            false,
        );
        let read: Job = serde_json::from_value(job.to_new_job().payload).unwrap();
        assert_eq!(read, job);
        assert_eq!(read.request_id(), Some(&request));
    }
}
