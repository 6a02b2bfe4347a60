//! Group commit of provider webhooks: request handlers verify and parse in parallel, then hand
//! the verified delivery to this process's one writer, which records whatever has gathered in
//! one statement (one transaction, one WAL flush) and answers every waiting request.
//!
//! No timer: a batch is what queued while the writer committed the previous one, so a delivery
//! arriving alone is written at once, and under load the batches grow by themselves. A batch
//! holds at most [`MAX_BATCH`] deliveries and [`MAX_BATCH_BYTES`] of bodies; the queue holds at
//! most [`QUEUE`] requests, each a body the HTTP listener already bounds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::store::webhooks::{self, NewDelivery};
use crate::store::{self, DbPool, StoreError};

/// Most deliveries in one batch.
pub const MAX_BATCH: usize = 512;

/// Most body bytes in one batch (a larger body still goes, alone).
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Requests waiting for the writer at most; more wait to be queued.
pub const QUEUE: usize = 4096;

/// What recording one delivery answered: its id (the first copy's, for a duplicate), and
/// whether it was new.
pub type Outcome = Result<(Uuid, bool), StoreError>;

/// A delivery handed to the writer, and where its answer goes.
struct Request {
    delivery: NewDelivery,
    answer: oneshot::Sender<Outcome>,
}

/// This process's webhook writer.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Request>,
    stats: Arc<Stats>,
}

/// What the writer has committed so far: batches and deliveries.
#[derive(Debug, Default)]
pub struct Stats {
    batches: AtomicU64,
    deliveries: AtomicU64,
    largest: AtomicU64,
}

impl Stats {
    /// Batches committed (or failed), deliveries in them, and the largest batch.
    pub fn read(&self) -> (u64, u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.deliveries.load(Ordering::Relaxed),
            self.largest.load(Ordering::Relaxed),
        )
    }

    fn count(&self, size: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.deliveries.fetch_add(size as u64, Ordering::Relaxed);
        self.largest.fetch_max(size as u64, Ordering::Relaxed);
        crate::metrics::METRICS
            .webhook_batch_size
            .observe(size as f64);
    }
}

impl GroupCommit {
    /// Starts the writer on `pool`; it stops when every handle is dropped.
    pub fn start(pool: DbPool) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        tokio::spawn(write(pool, requests, stats.clone()));
        Self { queue, stats }
    }

    /// Records `delivery` with the next batch; answers once that batch is committed.
    pub async fn record(&self, delivery: NewDelivery) -> Outcome {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the webhook writer stopped".into());
        self.queue
            .send(Request { delivery, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Requests waiting for the writer now.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// What the writer has committed so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// The writer's loop: take what has queued, commit it, answer; repeat.
async fn write(pool: DbPool, mut requests: mpsc::Receiver<Request>, stats: Arc<Stats>) {
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => match requests.recv().await {
                Some(request) => request,
                None => return,
            },
        };
        let mut batch = Batch::new(first);
        while !batch.is_full() {
            let Ok(request) = requests.try_recv() else {
                break;
            };
            if let Some(request) = batch.add(request) {
                carried = Some(request);
                break;
            }
        }
        stats.count(batch.len());
        batch.commit(&pool).await;
    }
}

/// Deliveries to record together: each source once (its copies wait for its answer).
struct Batch {
    /// One delivery per source, in arrival order.
    leaders: Vec<NewDelivery>,
    /// Where each leader's answer goes.
    answers: Vec<oneshot::Sender<Outcome>>,
    /// Copies of a leader's body from the same source: answered as its duplicates.
    copies: Vec<(usize, oneshot::Sender<Outcome>)>,
    /// The leader of each source.
    by_source: HashMap<(&'static str, String), usize>,
    bytes: usize,
}

impl Batch {
    fn new(first: Request) -> Self {
        let mut batch = Self {
            leaders: Vec::new(),
            answers: Vec::new(),
            copies: Vec::new(),
            by_source: HashMap::new(),
            bytes: 0,
        };
        batch.lead(first);
        batch
    }

    fn len(&self) -> usize {
        self.leaders.len() + self.copies.len()
    }

    fn is_full(&self) -> bool {
        self.len() >= MAX_BATCH || self.bytes >= MAX_BATCH_BYTES
    }

    /// Takes the request, or gives it back when it must wait for the next batch: its source
    /// sent another body in this one (one statement writes a source once), or it would pass
    /// the byte bound.
    fn add(&mut self, request: Request) -> Option<Request> {
        let (provider, source) = request.delivery.source();
        match self.by_source.get(&(provider, source.to_string())) {
            Some(&leader) if self.leaders[leader].body_sha256 == request.delivery.body_sha256 => {
                self.copies.push((leader, request.answer));
                None
            }
            Some(_) => Some(request),
            None if self.bytes + request.delivery.body.len() > MAX_BATCH_BYTES => Some(request),
            None => {
                self.lead(request);
                None
            }
        }
    }

    fn lead(&mut self, request: Request) {
        let (provider, source) = request.delivery.source();
        self.by_source
            .insert((provider, source.to_string()), self.leaders.len());
        self.bytes += request.delivery.body.len();
        self.leaders.push(request.delivery);
        self.answers.push(request.answer);
    }

    /// Records the batch and answers every request in it: all succeed or all fail together.
    async fn commit(self, pool: &DbPool) {
        let recorded = async {
            let mut conn = store::connect(pool).await?;
            webhooks::record_batch(&mut conn, &self.leaders).await
        }
        .await;
        match recorded {
            Ok(outcomes) => {
                for (leader, answer) in self.copies {
                    let (id, _) = outcomes[leader];
                    let _ = answer.send(Ok((id, false)));
                }
                for (answer, outcome) in self.answers.into_iter().zip(outcomes) {
                    let _ = answer.send(Ok(outcome));
                }
            }
            Err(error) => {
                // Nothing of the batch was written: every request is told so, and retried by
                // its sender.
                let answers = self
                    .answers
                    .into_iter()
                    .chain(self.copies.into_iter().map(|(_, answer)| answer));
                for answer in answers {
                    let _ = answer.send(Err(copy(&error)));
                }
            }
        }
    }
}

/// The same failure for each request of a failed batch: unavailable stays unavailable (the
/// sender retries), anything else is an internal error with the same text.
fn copy(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(reason) => StoreError::Unavailable(reason.clone()),
        other => StoreError::Query(diesel::result::Error::QueryBuilderError(
            other.to_string().into(),
        )),
    }
}
