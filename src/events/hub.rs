//! One tail reader per process that fans new events out to every live stream.
//!
//! Streams do not each poll the database: the hub reads the log once and broadcasts batches, so
//! database load does not grow with the number of subscribers. The table stays the truth: a
//! stream that falls behind the broadcast, or starts from an old cursor, reads the table itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::domain::cursor::Cursor;
use crate::domain::event_filter::EventFilter;
use crate::store::events::{self as event_store, LoggedEvent};
use crate::store::{self, DbPool};

/// How many batches a slow stream may fall behind before it reads the table instead.
const BROADCAST_CAPACITY: usize = 256;

/// Events read per query while tailing.
const TAIL_PAGE: i64 = 1000;

/// A contiguous stretch of the log: every event after `from` up to `to`, for all tenants.
#[derive(Debug)]
pub struct Batch {
    /// The position the stretch starts after.
    pub from: Cursor,
    /// The position the stretch ends at (scanned, whether or not an event sits there).
    pub to: Cursor,
    /// The events in the stretch, in log order.
    pub events: Vec<LoggedEvent>,
}

/// The hub's handle, cloned into every stream and writer.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

struct Inner {
    wake: Notify,
    batches: broadcast::Sender<Arc<Batch>>,
    poll_interval: Duration,
    shutdown: CancellationToken,
}

impl EventHub {
    /// A hub that also polls every `poll_interval`, for writes that no wake-up announced, and
    /// whose streams end when `shutdown` is cancelled.
    pub fn new(poll_interval: Duration, shutdown: CancellationToken) -> Self {
        let (batches, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                wake: Notify::new(),
                batches,
                poll_interval,
                shutdown,
            }),
        }
    }

    /// Says that events were committed, so the tail reader looks now rather than at its next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Receives every batch read from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.inner.batches.subscribe()
    }

    /// Resolves when the process shuts down; streams then end so clients reconnect elsewhere.
    pub async fn closed(&self) {
        self.inner.shutdown.cancelled().await
    }

    /// Tails the log until shutdown, broadcasting what it reads.
    pub async fn run(self, pool: DbPool) {
        let shutdown = self.inner.shutdown.clone();
        let mut position = None;
        loop {
            match self.tail_once(&pool, &mut position).await {
                Ok(()) => {}
                Err(error) => tracing::warn!(%error, "event hub could not read the log"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(self.inner.poll_interval) => {}
            }
        }
    }

    /// Reads everything settled after `position` and broadcasts it.
    async fn tail_once(
        &self,
        pool: &DbPool,
        position: &mut Option<Cursor>,
    ) -> Result<(), store::StoreError> {
        let mut conn = store::connect(pool).await?;
        let mut from = match *position {
            Some(cursor) => cursor,
            None => event_store::head(&mut conn).await?,
        };
        loop {
            let page =
                event_store::read_after(&mut conn, None, from, &EventFilter::default(), TAIL_PAGE)
                    .await?;
            let full = page.events.len() as i64 == TAIL_PAGE;
            if page.scanned_to > from {
                let batch = Batch {
                    from,
                    to: page.scanned_to,
                    events: page.events,
                };
                // No receivers is fine: nobody is streaming right now.
                let _ = self.inner.batches.send(Arc::new(batch));
                from = page.scanned_to;
            }
            *position = Some(from);
            if !full {
                return Ok(());
            }
        }
    }
}
