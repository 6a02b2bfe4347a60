//! Every column that holds a value sealed by the cipher, walked for `linkstate reseal`.
//!
//! Each value's associated data is its row's id (see `cipher`), so a row is read as its id and
//! its sealed bytes, and written back only while it still holds the bytes that were read.

use diesel::sql_types::{BigInt, Bytea, Nullable, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::StoreError;

/// A sealed column: its table and name. Every table here has a `uuid` primary key `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedColumn {
    /// The table.
    pub table: &'static str,
    /// The column.
    pub column: &'static str,
}

/// Every sealed column: provider credentials, account numbers, webhook signing secrets.
pub const SEALED_COLUMNS: [SealedColumn; 4] = [
    SealedColumn {
        table: "connections",
        column: "credentials",
    },
    SealedColumn {
        table: "financial_accounts",
        column: "identifiers",
    },
    SealedColumn {
        table: "webhook_profiles",
        column: "secret",
    },
    SealedColumn {
        table: "webhook_profiles",
        column: "previous_secret",
    },
];

/// One sealed value and the id of its row.
#[derive(Debug, diesel::QueryableByName)]
pub struct SealedValue {
    /// The row's id (the value's associated data).
    #[diesel(sql_type = Uuid)]
    pub id: uuid::Uuid,
    /// The sealed bytes.
    #[diesel(sql_type = Bytea)]
    pub sealed: Vec<u8>,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl SealedColumn {
    /// Rows whose column holds a value.
    pub async fn count(&self, conn: &mut AsyncPgConnection) -> Result<u64, StoreError> {
        let SealedColumn { table, column } = self;
        let count: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM {table} WHERE {column} IS NOT NULL"
        ))
        .get_result(conn)
        .await?;
        Ok(count.n.max(0) as u64)
    }

    /// Up to `limit` values, in id order, of rows after `after`.
    pub async fn page(
        &self,
        conn: &mut AsyncPgConnection,
        after: Option<uuid::Uuid>,
        limit: i64,
    ) -> Result<Vec<SealedValue>, StoreError> {
        let SealedColumn { table, column } = self;
        Ok(diesel::sql_query(format!(
            "SELECT id, {column} AS sealed FROM {table} \
             WHERE {column} IS NOT NULL AND ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind::<Nullable<Uuid>, _>(after)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?)
    }

    /// Replaces the value of row `id` with `new`, only if it still holds `old`; false when a
    /// writer changed it meanwhile (and sealed it with the current key, as every write does).
    pub async fn replace(
        &self,
        conn: &mut AsyncPgConnection,
        id: uuid::Uuid,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let SealedColumn { table, column } = self;
        let updated = diesel::sql_query(format!(
            "UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3"
        ))
        .bind::<Bytea, _>(new)
        .bind::<Uuid, _>(id)
        .bind::<Bytea, _>(old)
        .execute(conn)
        .await?;
        Ok(updated == 1)
    }
}
