//! A job of the console: its progress, clock (pauses left out) and end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_k8s::JobProgress;
use ferry_k8s::apply::Report;
use ferry_repo::progress::RateMeter;

use crate::error::TaskError;

/// How a job ended.
#[derive(Debug, Clone)]
pub enum JobEnd {
    Captured {
        snapshot: String,
        summary: String,
        warnings: Vec<String>,
    },
    /// A restore (or the restore of a migration or clone) ended with `report`, saved
    /// at `saved` (or why not) for `ferry restore --retry`; `context` is the target's
    /// kubeconfig context.
    Restored {
        report: Report,
        saved: Result<std::path::PathBuf, TaskError>,
        context: String,
    },
    /// Files of a snapshot restored into a folder of this machine.
    Downloaded {
        target: std::path::PathBuf,
        files: u64,
        dirs: u64,
        bytes: u64,
        warnings: Vec<String>,
    },
    Failed(TaskError),
    Cancelled,
}

/// Which way a job's data goes: what its byte counters count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read from a cluster into the repository (a backup, a clone's capture): some of
    /// it is new, the rest saved by deduplication.
    In,
    /// Written from the repository into a cluster or a folder (a restore).
    Out,
}

/// A background backup, restore or migration.
#[derive(Debug)]
pub struct Job {
    pub id: usize,
    pub title: String,
    pub progress: Arc<JobProgress>,
    pub flow: Flow,
    pub started: Instant,
    /// When it ended (its elapsed time stops there).
    pub ended: Option<Instant>,
    /// When it was paused, while it is.
    pub paused_since: Option<Instant>,
    /// The time it spent paused before that.
    pub paused_for: Duration,
    pub end: Option<JobEnd>,
    pub rate: f64,
    pub(crate) meter: RateMeter,
}

impl Job {
    pub fn running(&self) -> bool {
        self.end.is_none()
    }

    /// The time it has been working (pauses left out), up to its end.
    pub fn elapsed(&self) -> Duration {
        let until = self.ended.unwrap_or_else(Instant::now);
        let paused = self.paused_for
            + self
                .paused_since
                .map(|p| until.saturating_duration_since(p))
                .unwrap_or_default();
        until
            .saturating_duration_since(self.started)
            .saturating_sub(paused)
    }

    /// Its elapsed time in words: `12s elapsed`, `12s elapsed, paused`, `took 12s`.
    pub fn elapsed_text(&self) -> String {
        let d = crate::format::duration(self.elapsed());
        match (self.running(), self.paused_since.is_some()) {
            (false, _) => format!("took {d}"),
            (true, true) => format!("{d} elapsed, paused"),
            (true, false) => format!("{d} elapsed"),
        }
    }

    /// Pauses or resumes it; true if it is paused now.
    pub fn toggle_pause(&mut self) -> bool {
        match self.paused_since.take() {
            Some(p) => {
                self.paused_for += p.elapsed();
                self.progress.resume();
                false
            }
            None => {
                self.paused_since = Some(Instant::now());
                self.progress.pause();
                true
            }
        }
    }

    /// Notes its end.
    pub(crate) fn finish(&mut self, end: JobEnd) {
        let now = Instant::now();
        if let Some(p) = self.paused_since.take() {
            self.paused_for += now.saturating_duration_since(p);
        }
        self.ended = Some(now);
        self.end = Some(end);
    }
}
