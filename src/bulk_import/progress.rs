//! Progress on standard error: an `indicatif` bar on a terminal; elsewhere (CI, `nohup`, a
//! pipe) a plain line every few seconds, which a log keeps readable.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How often the plain line is written.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// A run's progress, drawn as it goes.
pub struct Progress {
    bar: ProgressBar,
    failed: Arc<AtomicU64>,
    plain: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts showing progress over `total` lines.
    pub fn start(total: u64) -> Self {
        let failed = Arc::new(AtomicU64::new(0));
        if std::io::stderr().is_terminal() {
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} lines, {msg} failed, {per_sec}, ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            let bar = ProgressBar::new(total).with_style(style).with_message("0");
            bar.enable_steady_tick(Duration::from_millis(200));
            return Self {
                bar,
                failed,
                plain: None,
            };
        }
        let bar = ProgressBar::hidden();
        bar.set_length(total);
        bar.reset_eta();
        eprintln!("{}", plain_line(&bar, 0));
        let ticker = tokio::spawn({
            let (bar, failed) = (bar.clone(), failed.clone());
            async move {
                let mut every = tokio::time::interval(PLAIN_EVERY);
                every.tick().await;
                loop {
                    every.tick().await;
                    eprintln!("{}", plain_line(&bar, failed.load(Ordering::Relaxed)));
                }
            }
        });
        Self {
            bar,
            failed,
            plain: Some(ticker),
        }
    }

    /// Counts finished lines, `failed` of them failed.
    pub fn advance(&self, lines: u64, failed: u64) {
        if failed > 0 {
            let failed = self.failed.fetch_add(failed, Ordering::Relaxed) + failed;
            self.bar.set_message(failed.to_string());
        }
        self.bar.inc(lines);
    }

    /// Stops drawing, leaving the last figures on the screen.
    pub fn finish(self) {
        match self.plain {
            Some(ticker) => {
                ticker.abort();
                eprintln!(
                    "{}",
                    plain_line(&self.bar, self.failed.load(Ordering::Relaxed))
                );
            }
            None => self.bar.abandon(),
        }
    }
}

/// `import: 420/1000 lines, 3 failed, 85/s, ETA 7s`.
fn plain_line(bar: &ProgressBar, failed: u64) -> String {
    let (done, total) = (bar.position(), bar.length().unwrap_or(0));
    // Before the first line is done there is no rate to guess the rest from.
    let eta = if done == 0 && total > 0 {
        "unknown".to_string()
    } else {
        humantime::format_duration(Duration::from_secs(bar.eta().as_secs())).to_string()
    };
    format!(
        "import: {done}/{total} lines, {failed} failed, {:.0}/s, ETA {eta}",
        bar.per_sec(),
    )
}
