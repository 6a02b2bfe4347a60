//! Wake-ups from other replicas: one connection per process LISTENs on the events channel and
//! wakes the hub at each notification. Notifications are only a shortcut (the hub also polls), so
//! a lost connection costs latency, never events: it is opened again, and the hub reads the log
//! after every reconnect for whatever was announced while nobody listened.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures::StreamExt;

use super::hub::EventHub;
use crate::store::StoreError;
use crate::store::events as event_store;

/// The first wait before opening a lost listener connection again; doubled up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// The longest wait between attempts.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Listens until the hub shuts down.
pub async fn run(hub: EventHub, database_url: String) {
    let mut retry = FIRST_RETRY;
    loop {
        let listened = tokio::select! {
            _ = hub.closed() => return,
            listened = listen(&hub, &database_url) => listened,
        };
        match listened {
            // It was up: the next failure starts the backoff again.
            Ok(()) => retry = FIRST_RETRY,
            Err(error) => {
                tracing::warn!(%error, ?retry, "event listener cannot listen; polling meanwhile");
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
        tokio::select! {
            _ = hub.closed() => return,
            _ = tokio::time::sleep(retry) => {}
        }
    }
}

/// One listening connection, until it breaks; Ok when it had been listening.
async fn listen(hub: &EventHub, database_url: &str) -> Result<(), StoreError> {
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|error| StoreError::Unavailable(error.to_string()))?;
    event_store::listen(&mut conn).await?;
    // Whatever committed while nobody listened.
    hub.wake_for_peer();
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    while let Some(notification) = notifications.next().await {
        match notification {
            // Our own hub sent it, after reading what it announces.
            Ok(notification) if notification.payload == hub.instance() => {}
            Ok(_) => hub.wake_for_peer(),
            Err(error) => {
                tracing::warn!(%error, "event listener lost its connection; opening it again");
                return Ok(());
            }
        }
    }
    tracing::warn!("event listener connection closed; opening it again");
    Ok(())
}
