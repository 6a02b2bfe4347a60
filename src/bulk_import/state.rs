//! The state file: what each line came to, by line number and line hash (never the line), so
//! that a second run skips what succeeded and knows when the file changed under it.
//!
//! One JSON object per line, appended and synced to disk as each batch finishes: a header,
//! then records; a later record of a line supersedes an earlier one. A kill can tear only the
//! last record, which the next run drops.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::Outcome;
use super::lines::LineHash;

/// The first line of every state file, so that no other file is taken for one.
const HEADER: &str = r#"{"linkstateImportState":1}"#;

/// What a line came to in an earlier run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The hash of the line as it was then.
    pub hash: LineHash,
    /// Its outcome.
    pub outcome: Outcome,
}

/// Every line's latest recorded outcome, sorted by line number.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: Vec<(u64, Entry)>,
}

impl Ledger {
    /// The latest outcome of `line`, if one was recorded.
    pub fn get(&self, line: u64) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&line, |(number, _)| *number)
            .ok()
            .map(|at| &self.entries[at].1)
    }

    /// How many lines have a recorded outcome.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The highest line number recorded.
    pub fn last_line(&self) -> u64 {
        self.entries.last().map_or(0, |(number, _)| *number)
    }

    fn from_records(mut records: Vec<(u64, Entry)>) -> Self {
        // Stable: among records of one line, the last written stays last.
        records.sort_by_key(|(number, _)| *number);
        let mut entries: Vec<(u64, Entry)> = Vec::with_capacity(records.len());
        for record in records {
            match entries.last_mut() {
                Some(last) if last.0 == record.0 => *last = record,
                _ => entries.push(record),
            }
        }
        entries.shrink_to_fit();
        Self { entries }
    }
}

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// It could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The state file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// It is not a state file, or a record in its middle is damaged.
    #[error("{path} line {line}: not a linkstate import state record; remove it to start over")]
    Damaged {
        /// The state file.
        path: PathBuf,
        /// The damaged line.
        line: u64,
    },
}

/// One record as the file holds it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Record {
    line: u64,
    hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    already_imported: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<RecordedError>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedError {
    code: String,
    message: String,
}

impl Record {
    fn new(line: u64, entry: &Entry) -> Self {
        let mut record = Self {
            line,
            hash: entry.hash.to_hex(),
            connection_id: None,
            already_imported: false,
            error: None,
        };
        match &entry.outcome {
            Outcome::Imported {
                connection_id,
                already_imported,
            } => {
                record.connection_id = Some(*connection_id);
                record.already_imported = *already_imported;
            }
            Outcome::Failed { code, message } => {
                record.error = Some(RecordedError {
                    code: code.clone(),
                    message: message.clone(),
                });
            }
            // A dry run keeps no state.
            Outcome::Valid => {}
        }
        record
    }

    fn entry(self) -> Option<(u64, Entry)> {
        let hash = LineHash::from_hex(&self.hash)?;
        let outcome = match (self.connection_id, self.error) {
            (Some(connection_id), None) => Outcome::Imported {
                connection_id,
                already_imported: self.already_imported,
            },
            (None, Some(error)) => Outcome::Failed {
                code: error.code,
                message: error.message,
            },
            _ => return None,
        };
        Some((self.line, Entry { hash, outcome }))
    }
}

/// An open state file, appended to as batches finish.
pub struct StateFile {
    path: PathBuf,
    file: File,
}

impl StateFile {
    /// Opens (or creates) the state file at `path` and reads what it holds. A torn last record,
    /// left by a kill in the middle of a write, is cut off.
    pub fn open(path: &Path) -> Result<(Self, Ledger), StateError> {
        let io_error = |source| StateError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error)?;
        let (records, good_len) = read_records(&file, path)?;
        if good_len == 0 {
            file.set_len(0).map_err(io_error)?;
            writeln!(file, "{HEADER}").map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
        } else if good_len < file.metadata().map_err(io_error)?.len() {
            // Opened for appending: the next write lands right after the cut.
            file.set_len(good_len).map_err(io_error)?;
        }
        let state = Self {
            path: path.to_path_buf(),
            file,
        };
        Ok((state, Ledger::from_records(records)))
    }

    /// Appends the outcomes of finished lines and syncs them to disk.
    pub fn append<'a>(
        &mut self,
        finished: impl IntoIterator<Item = (u64, &'a Entry)>,
    ) -> Result<(), StateError> {
        let mut text = Vec::new();
        for (line, entry) in finished {
            serde_json::to_writer(&mut text, &Record::new(line, entry)).expect("a record");
            text.push(b'\n');
        }
        if text.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&text)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| StateError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// The records of a state file, and the length of its undamaged part.
fn read_records(file: &File, path: &Path) -> Result<(Vec<(u64, Entry)>, u64), StateError> {
    let damaged = |line| StateError::Damaged {
        path: path.to_path_buf(),
        line,
    };
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut text = String::new();
    let mut good_len = 0u64;
    let mut number = 0u64;
    loop {
        text.clear();
        let read = reader
            .read_line(&mut text)
            .map_err(|source| StateError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            return Ok((records, good_len));
        }
        number += 1;
        let complete = text.ends_with('\n');
        let parsed = if number == 1 {
            (text.trim_end() == HEADER).then_some(None)
        } else {
            serde_json::from_str::<Record>(&text)
                .ok()
                .and_then(Record::entry)
                .map(Some)
        };
        match parsed {
            Some(record) if complete => {
                records.extend(record);
                good_len += read as u64;
            }
            // Only the last line can be torn by a kill; anything else is damage.
            _ if at_end(&mut reader) && number > 1 => return Ok((records, good_len)),
            _ => return Err(damaged(number)),
        }
    }
}

fn at_end(reader: &mut impl BufRead) -> bool {
    reader.fill_buf().is_ok_and(<[u8]>::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imported(hash: u64, id: u128) -> Entry {
        Entry {
            hash: LineHash(hash),
            outcome: Outcome::Imported {
                connection_id: Uuid::from_u128(id),
                already_imported: false,
            },
        }
    }

    #[test]
    fn records_survive_a_reopen_and_the_latest_of_a_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.state");
        let (mut state, ledger) = StateFile::open(&path).unwrap();
        assert!(ledger.is_empty());
        let failed = Entry {
            hash: LineHash(7),
            outcome: Outcome::Failed {
                code: "UNAVAILABLE".into(),
                message: "later".into(),
            },
        };
        state.append([(2, &failed), (1, &imported(5, 1))]).unwrap();
        state.append([(2, &imported(7, 2))]).unwrap();
        drop(state);
        let (_, ledger) = StateFile::open(&path).unwrap();
        assert_eq!(ledger.len(), 2);
        assert_eq!(ledger.get(1), Some(&imported(5, 1)));
        assert_eq!(ledger.get(2), Some(&imported(7, 2)));
        assert_eq!(ledger.get(3), None);
        assert_eq!(ledger.last_line(), 2);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_writing_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.state");
        let (mut state, _) = StateFile::open(&path).unwrap();
        state.append([(1, &imported(5, 1))]).unwrap();
        drop(state);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"line":2,"hash":"00"#).unwrap();
        drop(file);
        let (mut state, ledger) = StateFile::open(&path).unwrap();
        assert_eq!(ledger.len(), 1);
        state.append([(2, &imported(6, 2))]).unwrap();
        drop(state);
        let (_, ledger) = StateFile::open(&path).unwrap();
        assert_eq!(ledger.get(2), Some(&imported(6, 2)));
    }

    #[test]
    fn another_file_or_damage_in_the_middle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-state");
        std::fs::write(&path, "{\"serviceProvider\":\"PLAID\"}\n").unwrap();
        assert!(matches!(
            StateFile::open(&path),
            Err(StateError::Damaged { line: 1, .. })
        ));
        std::fs::write(&path, format!("{HEADER}\nnonsense\n{HEADER}\n")).unwrap();
        assert!(matches!(
            StateFile::open(&path),
            Err(StateError::Damaged { line: 2, .. })
        ));
    }
}
