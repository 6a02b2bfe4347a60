//! Hand-written statements that PostgreSQL keeps prepared.
//!
//! Diesel never caches a `sql_query`, since its text could be built at run time: each call
//! then costs an extra round trip to prepare it and a fresh parse and plan. The statements on
//! hot paths (recording a webhook, claiming jobs, tailing the log) have fixed text, so they are
//! wrapped in [`Prepared`] and prepared once per connection.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// A statement with fixed text (binds aside), safe to prepare once and reuse.
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(Q);

/// Marks `query` as one whose text never changes; see the module's doc.
pub fn prepared<Q>(query: Q) -> Prepared<Q> {
    Prepared(query)
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    // Not a static id: the cache keys it by its text and bind types instead.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}
