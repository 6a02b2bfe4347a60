//! Settling duplicate connections after an import, a completion or a repair wrote a
//! connection's accounts: the rule is [`crate::domain::duplicates`], this applies it.

use diesel_async::AsyncPgConnection;

use crate::domain::connection::Connection;
use crate::domain::connection_events;
use crate::domain::connection_state::Effect;
use crate::domain::connection_status::ConnectionStatus;
use crate::domain::duplicates::resolve;
use crate::domain::event::NewEvent;
use crate::store::{StoreError, connections, duplicates};

/// Applies the duplicate rule to `subject`'s group and answers the events that say what
/// changed. The caller's transaction holds the customer's duplicate lock
/// ([`duplicates::lock_customer`]), taken before any connection row.
pub async fn settle(
    conn: &mut AsyncPgConnection,
    subject: &Connection,
) -> Result<Vec<NewEvent>, StoreError> {
    let linked = duplicates::linked(conn, subject).await?;
    let Some(me) = linked.iter().find(|l| l.id == subject.id) else {
        return Ok(Vec::new());
    };
    let Some(resolution) = resolve(me, &linked) else {
        return Ok(Vec::new());
    };
    let account_id = subject.account_id;
    let mut events = Vec::new();
    if resolution.promote_active {
        let active = connections::get(conn, account_id, resolution.active).await?;
        duplicates::promote(conn, active.id).await?;
        let effect = Effect::StatusChanged {
            old: active.status,
            new: ConnectionStatus::Active,
            reason: None,
        };
        let facts = active.facts();
        events.extend(connection_events::transition_events(
            &facts,
            &[effect],
            &facts.provider_details(),
            &[],
        ));
    }
    for id in resolution.demote {
        let demoted = connections::get(conn, account_id, id).await?;
        duplicates::demote(conn, id, resolution.active).await?;
        tracing::info!(connection = %id, active = %resolution.active, "inactive duplicate");
        events.push(connection_events::became_duplicate(
            &demoted.facts(),
            demoted.status,
            resolution.active,
        ));
    }
    Ok(events)
}
