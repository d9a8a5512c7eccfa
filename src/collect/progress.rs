//! Progress on stderr for long collections: a bar over account × region pairs with running
//! totals. Silent when stderr is not a terminal or with `--quiet`.

use crate::snapshot::RegionEvidence;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The progress display (or nothing).
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    keys: AtomicUsize,
    gaps: AtomicUsize,
}

impl Progress {
    /// A bar on stderr, unless `quiet` or stderr is not a terminal.
    pub fn stderr(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} collecting [{bar:30}] {pos}/{len} account-regions  {msg}  {elapsed}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress {
            bar,
            keys: AtomicUsize::new(0),
            gaps: AtomicUsize::new(0),
        }
    }

    /// No output at all.
    pub fn hidden() -> Progress {
        Progress {
            bar: None,
            keys: AtomicUsize::new(0),
            gaps: AtomicUsize::new(0),
        }
    }

    pub(crate) fn start(&self, pairs: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(pairs as u64);
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
    }

    pub(crate) fn region_done(&self, evidence: &RegionEvidence, gaps: usize) {
        let keys = self
            .keys
            .fetch_add(evidence.kms_keys.len(), Ordering::Relaxed)
            + evidence.kms_keys.len();
        let gaps = self.gaps.fetch_add(gaps, Ordering::Relaxed) + gaps;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{keys} keys, {gaps} gaps"));
            bar.inc(1);
        }
    }

    /// Clears the bar (before an early exit).
    pub fn hide(&self) {
        self.finish();
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
