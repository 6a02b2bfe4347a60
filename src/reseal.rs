//! `linkstate reseal`: moves every sealed value to the current key, so that the old keys of
//! `LINKSTATE_ENCRYPTION_OLD_KEYS` can be dropped.
//!
//! Each sealed column is walked in id order, a page at a time, while the service runs. A value
//! the current key opens is left alone; one an old key opens is sealed again with the current
//! key and written back only while its row still holds what was read, since a concurrent write
//! (an Akoya token rotation, a secret rotation) has sealed with the current key already. Stopped
//! anywhere, a run loses nothing, and the next one skips what is current: resuming is running
//! again. Each page is one short transaction, so no row stays locked for long.

use diesel_async::AsyncConnection;

use crate::cipher::{Cipher, Resealed};
use crate::progress::Progress;
use crate::store::sealed::{SEALED_COLUMNS, SealedColumn};
use crate::store::{self, DbPool, StoreError};

/// Values read per page.
const PAGE: i64 = 500;
/// Unopenable values named in the report; the count goes on past them.
const NAMED_AT_MOST: usize = 20;

/// What a run found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Values sealed with the current key already.
    pub current: u64,
    /// Values moved from an old key to the current one.
    pub moved: u64,
    /// Values a writer replaced while the run read them (sealed with the current key).
    pub changed_meanwhile: u64,
    /// Values no configured key opens.
    pub unopenable: u64,
    /// Some of them, as `table.column of id`.
    pub unopenable_named: Vec<String>,
}

impl ResealReport {
    /// True when nothing sealed under an old key (or no key) is left.
    pub fn done(&self) -> bool {
        self.unopenable == 0
    }

    /// The summary table for standard output.
    pub fn table(&self) -> String {
        let rows = [
            ("already under the current key", self.current),
            ("moved to the current key", self.moved),
            ("rewritten by the service meanwhile", self.changed_meanwhile),
            ("opened by no configured key", self.unopenable),
        ];
        let mut table = format!("{:<36}{:>10}\n", "values", "count");
        for (name, count) in rows {
            table.push_str(&format!("{name:<36}{count:>10}\n"));
        }
        table
    }
}

/// Reseals every sealed value under `cipher`'s current key, showing progress on standard error.
pub async fn run(pool: &DbPool, cipher: &Cipher) -> Result<ResealReport, StoreError> {
    let mut conn = store::connect(pool).await?;
    let mut total = 0;
    for column in &SEALED_COLUMNS {
        total += column.count(&mut conn).await?;
    }
    let progress = Progress::start("reseal", "values", total);
    let mut report = ResealReport::default();
    for column in &SEALED_COLUMNS {
        let mut after = None;
        loop {
            let page = column.page(&mut conn, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let (read, before) = (page.len() as u64, report.unopenable);
            reseal_page(&mut conn, cipher, column, page, &mut report).await?;
            progress.advance(read, report.unopenable - before);
        }
    }
    progress.finish();
    Ok(report)
}

async fn reseal_page(
    conn: &mut diesel_async::AsyncPgConnection,
    cipher: &Cipher,
    column: &SealedColumn,
    page: Vec<store::sealed::SealedValue>,
    report: &mut ResealReport,
) -> Result<(), StoreError> {
    let mut moves = Vec::new();
    for value in page {
        match cipher.reseal(&value.sealed, value.id.as_bytes()) {
            Ok(Resealed::Current) => report.current += 1,
            Ok(Resealed::Moved(new)) => moves.push((value, new)),
            Err(_) => {
                report.unopenable += 1;
                if report.unopenable_named.len() < NAMED_AT_MOST {
                    let SealedColumn { table, column } = column;
                    report
                        .unopenable_named
                        .push(format!("{table}.{column} of {}", value.id));
                }
            }
        }
    }
    if moves.is_empty() {
        return Ok(());
    }
    let replaced = conn
        .transaction::<_, StoreError, _>(async |conn| {
            let mut replaced = Vec::with_capacity(moves.len());
            for (value, new) in &moves {
                replaced.push(column.replace(conn, value.id, &value.sealed, new).await?);
            }
            Ok(replaced)
        })
        .await?;
    for replaced in replaced {
        match replaced {
            true => report.moved += 1,
            false => report.changed_meanwhile += 1,
        }
    }
    Ok(())
}
