//! Progress of a long command (`import`, `reseal`) on standard error: an `indicatif` bar on a
//! terminal; elsewhere (CI, `nohup`, a pipe) a plain line every few seconds, which a log keeps
//! readable.

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
    label: Label,
    failed: Arc<AtomicU64>,
    plain: Option<tokio::task::JoinHandle<()>>,
}

/// What the plain line names: the command, and what it counts.
#[derive(Clone, Copy)]
struct Label {
    command: &'static str,
    unit: &'static str,
}

impl Progress {
    /// Starts showing `command`'s progress over `total` `unit`s ("lines", "values").
    pub fn start(command: &'static str, unit: &'static str, total: u64) -> Self {
        let label = Label { command, unit };
        let failed = Arc::new(AtomicU64::new(0));
        if std::io::stderr().is_terminal() {
            let template = format!(
                "{{spinner}} {{elapsed_precise}} [{{wide_bar}}] {{pos}}/{{len}} {unit}, {{msg}} failed, {{per_sec}}, ETA {{eta}}"
            );
            let style = ProgressStyle::with_template(&template)
                .expect("a valid template")
                .progress_chars("=> ");
            let bar = ProgressBar::new(total).with_style(style).with_message("0");
            bar.enable_steady_tick(Duration::from_millis(200));
            return Self {
                bar,
                label,
                failed,
                plain: None,
            };
        }
        let bar = ProgressBar::hidden();
        bar.set_length(total);
        bar.reset_eta();
        eprintln!("{}", plain_line(label, &bar, 0));
        let ticker = tokio::spawn({
            let (bar, failed) = (bar.clone(), failed.clone());
            async move {
                let mut every = tokio::time::interval(PLAIN_EVERY);
                every.tick().await;
                loop {
                    every.tick().await;
                    eprintln!(
                        "{}",
                        plain_line(label, &bar, failed.load(Ordering::Relaxed))
                    );
                }
            }
        });
        Self {
            bar,
            label,
            failed,
            plain: Some(ticker),
        }
    }

    /// Counts `done` finished units, `failed` of them failed.
    pub fn advance(&self, done: u64, failed: u64) {
        if failed > 0 {
            let failed = self.failed.fetch_add(failed, Ordering::Relaxed) + failed;
            self.bar.set_message(failed.to_string());
        }
        self.bar.inc(done);
    }

    /// Stops drawing, leaving the last figures on the screen.
    pub fn finish(self) {
        match self.plain {
            Some(ticker) => {
                ticker.abort();
                let failed = self.failed.load(Ordering::Relaxed);
                eprintln!("{}", plain_line(self.label, &self.bar, failed));
            }
            None => self.bar.abandon(),
        }
    }
}

/// `import: 420/1000 lines, 3 failed, 85/s, ETA 7s`.
fn plain_line(label: Label, bar: &ProgressBar, failed: u64) -> String {
    let (done, total) = (bar.position(), bar.length().unwrap_or(0));
    // Before the first unit is done there is no rate to guess the rest from.
    let eta = if done == 0 && total > 0 {
        "unknown".to_string()
    } else {
        humantime::format_duration(Duration::from_secs(bar.eta().as_secs())).to_string()
    };
    let Label { command, unit } = label;
    format!(
        "{command}: {done}/{total} {unit}, {failed} failed, {:.0}/s, ETA {eta}",
        bar.per_sec(),
    )
}
