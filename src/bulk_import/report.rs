//! What a run tells: one JSON line per input line (`--report`), and the summary table.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::{Finished, Outcome};

/// The `--report` file: one JSON object per input line, in the order lines finished.
pub struct Report {
    out: BufWriter<File>,
}

impl Report {
    /// Creates (or empties) the report file.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            out: BufWriter::new(File::create(path)?),
        })
    }

    /// Writes one finished line.
    pub fn write(&mut self, finished: &Finished) -> io::Result<()> {
        let mut line = serde_json::json!({
            "line": finished.line,
            "externalCustomerId": finished.external_customer_id,
        });
        let fields = line.as_object_mut().expect("an object");
        match &finished.outcome {
            Outcome::Imported {
                connection_id,
                already_imported,
            } => {
                fields.insert("connectionId".into(), connection_id.to_string().into());
                if *already_imported {
                    fields.insert("alreadyImported".into(), true.into());
                }
            }
            Outcome::Valid => {
                fields.insert("valid".into(), true.into());
            }
            Outcome::Failed { code, message } => {
                fields.insert(
                    "error".into(),
                    serde_json::json!({"code": code, "message": message}),
                );
            }
        }
        if finished.from_earlier_run {
            fields.insert("fromEarlierRun".into(), true.into());
        }
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }

    /// Flushes the report and syncs it to disk.
    pub fn finish(self) -> io::Result<()> {
        let file = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()
    }
}

/// The counts of a run, by outcome.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Connections created by this run.
    pub imported: u64,
    /// Lines whose item was imported before: the server answered the connection it had.
    pub already_imported: u64,
    /// Lines a dry run found importable.
    pub valid: u64,
    /// Lines imported by an earlier run, skipped by this one.
    pub done_before: u64,
    /// Failed lines, by gRPC code.
    pub failed: BTreeMap<String, u64>,
    /// Lines not sent because the run was stopped.
    pub not_sent: u64,
}

impl Summary {
    /// Counts one finished line.
    pub fn add(&mut self, finished: &Finished) {
        match &finished.outcome {
            Outcome::Imported { .. } if finished.from_earlier_run => self.done_before += 1,
            Outcome::Imported {
                already_imported: true,
                ..
            } => self.already_imported += 1,
            Outcome::Imported { .. } => self.imported += 1,
            Outcome::Valid => self.valid += 1,
            Outcome::Failed { code, .. } => *self.failed.entry(code.clone()).or_default() += 1,
        }
    }

    /// How many lines failed.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// True when every line was imported (or, in a dry run, found importable).
    pub fn all_succeeded(&self) -> bool {
        self.failed_total() == 0 && self.not_sent == 0
    }

    /// The summary as a table for people.
    pub fn table(&self, dry_run: bool) -> String {
        let mut rows: Vec<(String, u64)> = Vec::new();
        if dry_run {
            rows.push(("valid".into(), self.valid));
        } else {
            rows.push(("imported".into(), self.imported));
            rows.push(("already imported".into(), self.already_imported));
            rows.push(("imported by an earlier run".into(), self.done_before));
        }
        rows.push(("failed".into(), self.failed_total()));
        rows.extend(
            self.failed
                .iter()
                .map(|(code, count)| (format!("  {code}"), *count)),
        );
        if self.not_sent > 0 {
            rows.push(("not sent (stopped)".into(), self.not_sent));
        }
        let total = rows
            .iter()
            .filter(|(name, _)| !name.starts_with(' '))
            .map(|(_, count)| count)
            .sum();
        rows.push(("total".into(), total));
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let mut table = format!("{:<width$}  {:>9}\n", "outcome", "lines");
        for (name, count) in rows {
            table.push_str(&format!("{name:<width$}  {count:>9}\n"));
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk_import::lines::LineHash;

    fn finished(outcome: Outcome, from_earlier_run: bool) -> Finished {
        Finished {
            line: 1,
            hash: LineHash(1),
            external_customer_id: Some("c-1".into()),
            outcome,
            from_earlier_run,
        }
    }

    fn imported(already_imported: bool) -> Outcome {
        Outcome::Imported {
            connection_id: uuid::Uuid::nil(),
            already_imported,
        }
    }

    fn failed(code: &str) -> Outcome {
        Outcome::Failed {
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn counts_each_outcome_and_totals_the_table() {
        let mut summary = Summary::default();
        for line in [
            finished(imported(false), false),
            finished(imported(false), false),
            finished(imported(true), false),
            finished(imported(false), true),
            finished(failed("UNAUTHENTICATED"), false),
            finished(failed("INVALID_ARGUMENT"), true),
        ] {
            summary.add(&line);
        }
        assert_eq!(summary.imported, 2);
        assert_eq!(summary.already_imported, 1);
        assert_eq!(summary.done_before, 1);
        assert_eq!(summary.failed_total(), 2);
        assert!(!summary.all_succeeded());
        let table = summary.table(false);
        let row = |name: &str| -> u64 {
            let line = table.lines().find(|line| line.starts_with(name)).unwrap();
            line[name.len()..].trim().parse().unwrap()
        };
        assert_eq!(row("imported "), 2, "{table}");
        assert_eq!(row("already imported "), 1, "{table}");
        assert_eq!(row("  UNAUTHENTICATED "), 1, "{table}");
        assert_eq!(row("failed "), 2, "{table}");
        assert_eq!(row("total "), 6, "{table}");
    }

    #[test]
    fn a_report_line_names_the_line_and_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.jsonl");
        let mut report = Report::create(&path).unwrap();
        report.write(&finished(imported(true), false)).unwrap();
        report
            .write(&finished(failed("UNAVAILABLE"), false))
            .unwrap();
        report.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"line": 1, "externalCustomerId": "c-1",
                "connectionId": uuid::Uuid::nil().to_string(), "alreadyImported": true})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"line": 1, "externalCustomerId": "c-1",
                "error": {"code": "UNAVAILABLE", "message": "m"}})
        );
    }
}
