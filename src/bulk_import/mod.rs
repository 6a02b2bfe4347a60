//! `linkstate import`: a migration's worth of connections from a JSON-lines file, through the
//! gRPC API of a running linkstate (contract section 5).
//!
//! The file is read twice and never held: once to count its lines (and to check them against
//! the state file of an earlier run), once to send them. A reader thread groups lines into
//! batches; `--concurrency` of them are in flight; as each finishes, its lines' outcomes are
//! appended to the state file and synced, then reported. A kill loses only the batches in
//! flight, and since an import of the same item answers the same connection, sending those
//! again is harmless.

mod lines;
mod report;
mod send;
mod state;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::ImportSettings;
use crate::progress::Progress;
use lines::{LineHash, Lines};
use report::{Report, Summary};
use send::{Pending, RETRYABLE, Sender};
use state::{Entry, Ledger, StateFile};

/// Lines decided without the server (bad, or done before) carried in one unit of work, so
/// that a file of them moves in a few large steps rather than a million small ones.
const SETTLED_PER_WORK: usize = 1000;

/// What one line came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Imported: the connection that holds it.
    Imported {
        /// The connection.
        connection_id: Uuid,
        /// It was imported before: the server answered the connection it had.
        already_imported: bool,
    },
    /// A dry run found it importable.
    Valid,
    /// It failed, with a gRPC code name and a message (never a credential).
    Failed {
        /// The code, such as `UNAUTHENTICATED`.
        code: String,
        /// Why.
        message: String,
    },
}

impl Outcome {
    /// True when a later run should send the line again.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Failed { code, .. } if RETRYABLE.contains(&code.as_str()))
    }
}

/// A line whose outcome is known.
#[derive(Clone, Debug)]
pub struct Finished {
    /// Its number in the file.
    pub line: u64,
    /// Its hash.
    pub hash: LineHash,
    /// The customer it names, if any.
    pub external_customer_id: Option<String>,
    /// What it came to.
    pub outcome: Outcome,
    /// Decided by an earlier run (already in the state file, not sent again).
    pub from_earlier_run: bool,
}

/// Why a run could not start or had to stop: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

impl UsageError {
    fn new(message: impl std::fmt::Display) -> Self {
        Self(message.to_string())
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The counts, as the table shows them.
    pub summary: Summary,
    /// The run had to stop for a reason that is the caller's to fix (a refused key).
    pub stopped_by: Option<UsageError>,
}

impl RunOutcome {
    /// 0 when every line was imported, 1 when some were not, 2 when the run was refused.
    pub fn exit_code(&self) -> i32 {
        match (&self.stopped_by, self.summary.all_succeeded()) {
            (Some(_), _) => 2,
            (None, true) => 0,
            (None, false) => 1,
        }
    }
}

/// Runs an import: progress on standard error, the summary table on standard output.
pub async fn run(settings: ImportSettings) -> Result<RunOutcome, UsageError> {
    let file = open_input(&settings.file)?;
    let (mut state, ledger) = match settings.dry_run {
        true => (None, Ledger::default()),
        false => {
            let path = state_path(&settings);
            let (state, ledger) = StateFile::open(&path).map_err(UsageError::new)?;
            (Some(state), ledger)
        }
    };
    if !ledger.is_empty() {
        eprintln!(
            "import: resuming: {} lines were decided by an earlier run",
            ledger.len()
        );
    }
    let (total, ledger) = count_and_check(&settings, file, ledger).await?;
    let sender = Sender::connect(&settings.server, &settings.api_key, settings.dry_run)
        .await
        .map_err(UsageError::new)?;
    let mut report = match &settings.report {
        Some(path) => Some(
            Report::create(path)
                .map_err(|error| UsageError::new(format!("{}: {error}", path.display())))?,
        ),
        None => None,
    };
    let stop = CancellationToken::new();
    stop_on_signals(stop.clone());
    let progress = Progress::start("import", "lines", total);
    let (works, producer) = produce(&settings, ledger, stop.clone())?;
    let mut summary = Summary::default();
    let mut stopped_by = None;
    let mut finished_lines = 0u64;
    let mut processed = ReceiverStream::new(works)
        .map(|work| process(&sender, work, &stop))
        .buffer_unordered(usize::from(settings.concurrency));
    while let Some((finished, refused)) = processed.next().await {
        if let Some(refused) = refused {
            stop.cancel();
            stopped_by.get_or_insert(UsageError::new(refused));
        }
        if let Some(state) = &mut state {
            let new = finished.iter().filter(|line| !line.from_earlier_run);
            let entries: Vec<(u64, Entry)> = new.map(|line| (line.line, entry(line))).collect();
            if let Err(error) = state.append(entries.iter().map(|(line, entry)| (*line, entry))) {
                // Without a state file a rerun would not know what this run did: stop.
                stop.cancel();
                stopped_by.get_or_insert(UsageError::new(error));
                continue;
            }
        }
        let mut failed = 0;
        for line in &finished {
            summary.add(line);
            failed += u64::from(matches!(line.outcome, Outcome::Failed { .. }));
            if let Some(report) = &mut report
                && let Err(error) = report.write(line)
            {
                stop.cancel();
                stopped_by.get_or_insert(UsageError::new(error));
            }
        }
        finished_lines += finished.len() as u64;
        progress.advance(finished.len() as u64, failed);
    }
    let read = producer.await.expect("the reader thread does not panic");
    progress.finish();
    if let Err(error) = read {
        stopped_by.get_or_insert(UsageError::new(format!(
            "{}: {error}",
            settings.file.display()
        )));
    }
    if let Some(report) = report
        && let Err(error) = report.finish()
    {
        stopped_by.get_or_insert(UsageError::new(error));
    }
    summary.not_sent = total.saturating_sub(finished_lines);
    print!("{}", summary.table(settings.dry_run));
    Ok(RunOutcome {
        summary,
        stopped_by,
    })
}

/// The state file: `--state`, or the input file's name with `.state` added.
fn state_path(settings: &ImportSettings) -> PathBuf {
    settings.state.clone().unwrap_or_else(|| {
        let mut name = settings.file.as_os_str().to_owned();
        name.push(".state");
        PathBuf::from(name)
    })
}

fn open_input(path: &Path) -> Result<File, UsageError> {
    let file = File::open(path)
        .map_err(|error| UsageError::new(format!("--file {}: {error}", path.display())))?;
    if file.metadata().is_ok_and(|meta| meta.is_dir()) {
        return Err(UsageError::new(format!(
            "--file {}: is a directory",
            path.display()
        )));
    }
    Ok(file)
}

/// Counts the lines to import and checks that every line an earlier run recorded is still
/// the line it was: a file changed under its state file is refused before anything is sent.
async fn count_and_check(
    settings: &ImportSettings,
    file: File,
    ledger: Ledger,
) -> Result<(u64, Ledger), UsageError> {
    let name = settings.file.display().to_string();
    let state = state_path(settings).display().to_string();
    tokio::task::spawn_blocking(move || {
        let mut lines = Lines::new(BufReader::with_capacity(256 * 1024, file));
        let mut total = 0u64;
        let mut last = 0u64;
        while let Some(line) = lines
            .next_line()
            .map_err(|error| UsageError::new(format!("{name}: {error}")))?
        {
            last = line.number;
            if let Some(entry) = ledger.get(line.number)
                && entry.hash != line.hash
            {
                return Err(changed(
                    &name,
                    &state,
                    &format!("line {} is not the line it was", line.number),
                ));
            }
            total += u64::from(!line.is_blank());
        }
        if ledger.last_line() > last {
            return Err(changed(
                &name,
                &state,
                &format!("line {} is gone", ledger.last_line()),
            ));
        }
        Ok((total, ledger))
    })
    .await
    .expect("counting does not panic")
}

fn changed(file: &str, state: &str, what: &str) -> UsageError {
    UsageError::new(format!(
        "{file} changed since {state} was written ({what}): import it with a new --state, or remove {state} to start over (what was imported is answered as already imported)"
    ))
}

/// Lines grouped for sending, with the lines decided without the server.
#[derive(Default)]
struct Work {
    send: Vec<Pending>,
    settled: Vec<Finished>,
}

/// Starts the reader thread: it reads the file again and hands out work until the end, or
/// until `stop`.
fn produce(
    settings: &ImportSettings,
    ledger: Ledger,
    stop: CancellationToken,
) -> Result<
    (
        mpsc::Receiver<Work>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ),
    UsageError,
> {
    let file = open_input(&settings.file)?;
    let batch_size = usize::from(settings.batch_size);
    let (tx, rx) = mpsc::channel(usize::from(settings.concurrency));
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = Lines::new(BufReader::with_capacity(256 * 1024, file));
        let mut work = Work::default();
        while let Some(line) = lines.next_line()? {
            if stop.is_cancelled() {
                return Ok(());
            }
            if line.is_blank() {
                continue;
            }
            sort_line(&line, &ledger, &mut work);
            let full = work.send.len() >= batch_size || work.settled.len() >= SETTLED_PER_WORK;
            if full && !hand_out(&tx, &mut work) {
                return Ok(());
            }
        }
        hand_out(&tx, &mut work);
        Ok(())
    });
    Ok((rx, reader))
}

/// Hands out what `work` holds, the settled lines apart from the batch so that they count as
/// done at once rather than when the batch returns. False once nobody takes work any more.
fn hand_out(tx: &mpsc::Sender<Work>, work: &mut Work) -> bool {
    let Work { send, settled } = std::mem::take(work);
    let settled = Work {
        send: Vec::new(),
        settled,
    };
    let batch = Work {
        send,
        settled: Vec::new(),
    };
    [settled, batch]
        .into_iter()
        .filter(|part| !part.send.is_empty() || !part.settled.is_empty())
        .all(|part| tx.blocking_send(part).is_ok())
}

/// Puts a line where it belongs: settled (bad, or decided by an earlier run) or to send.
fn sort_line(line: &lines::RawLine<'_>, ledger: &Ledger, work: &mut Work) {
    let parsed = match line.bytes {
        Some(bytes) => lines::parse(bytes),
        None => Err(lines::BadLine {
            external_customer_id: None,
            message: format!("longer than {} bytes: not an item", lines::MAX_LINE_BYTES),
        }),
    };
    let settled = |external_customer_id, outcome, from_earlier_run| Finished {
        line: line.number,
        hash: line.hash,
        external_customer_id,
        outcome,
        from_earlier_run,
    };
    let earlier = ledger
        .get(line.number)
        .filter(|entry| !entry.outcome.is_retryable());
    match (parsed, earlier) {
        (Ok(item), Some(entry)) => work.settled.push(settled(
            Some(item.connection.external_customer_id).filter(|id| !id.is_empty()),
            entry.outcome.clone(),
            true,
        )),
        (Err(bad), Some(entry)) => {
            work.settled.push(settled(
                bad.external_customer_id,
                entry.outcome.clone(),
                true,
            ));
        }
        (Ok(item), None) => work.send.push(Pending {
            line: line.number,
            hash: line.hash,
            item,
        }),
        (Err(bad), None) => work.settled.push(settled(
            bad.external_customer_id,
            Outcome::Failed {
                code: "INVALID_ARGUMENT".into(),
                message: bad.message,
            },
            false,
        )),
    }
}

/// Sends one unit of work, unless the run is stopping: lines not sent are left out, so that
/// they count as not sent and stay unrecorded.
async fn process(
    sender: &Sender,
    work: Work,
    stop: &CancellationToken,
) -> (Vec<Finished>, Option<send::KeyRefused>) {
    let mut finished = work.settled;
    if work.send.is_empty() || stop.is_cancelled() {
        return (finished, None);
    }
    match sender.send(work.send).await {
        Ok(sent) => {
            finished.extend(sent);
            (finished, None)
        }
        Err(refused) => (finished, Some(refused)),
    }
}

fn entry(line: &Finished) -> Entry {
    Entry {
        hash: line.hash,
        outcome: line.outcome.clone(),
    }
}

/// Ctrl-C (or SIGTERM) stops the run after the requests in flight; a second one at once.
fn stop_on_signals(stop: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut terminate) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        for _ in 0..2 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            if stop.is_cancelled() {
                eprintln!("import: stopped at once; the state file has every finished batch");
                std::process::exit(130);
            }
            eprintln!("import: stopping after the requests in flight (again to stop at once)");
            stop.cancel();
        }
    });
}
