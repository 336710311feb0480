//! Progress of a running job, shared between the engine's workers and any front end.
//!
//! Workers bump atomic counters (cheap, lock-free); a front end takes a
//! [`ProgressSnapshot`] whenever it draws a frame and never waits on the job. Warnings
//! are queued for the front end to drain. Cancellation goes the other way: the front end
//! sets the flag and workers stop at their next check.
//!
//! A progress can watch the repository's [`StoreStatus`] ([`Progress::watch_store`]):
//! its snapshots then say when the job waits for the object store
//! ([`ProgressSnapshot::waiting`]), and the store's notices arrive as warnings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::backend::StoreStatus;
pub use super::backend::StoreWait;

/// The phase a job is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    LoadingIndex = 1,
    Scanning = 2,
    Transferring = 3,
    Finishing = 4,
    Verifying = 5,
    Done = 6,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::LoadingIndex,
            2 => Phase::Scanning,
            3 => Phase::Transferring,
            4 => Phase::Finishing,
            5 => Phase::Verifying,
            6 => Phase::Done,
            _ => Phase::Starting,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::LoadingIndex => "loading index",
            Phase::Scanning => "scanning",
            Phase::Transferring => "transferring",
            Phase::Finishing => "finishing",
            Phase::Verifying => "verifying",
            Phase::Done => "done",
        }
    }
}

#[derive(Debug)]
pub struct Progress {
    started: Instant,
    phase: AtomicU8,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    totals_final: AtomicBool,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    bytes_new: AtomicU64,
    bytes_stored: AtomicU64,
    warnings: AtomicU64,
    cancelled: AtomicBool,
    /// Data paths wait in [`Progress::add_done`] while this is set.
    paused: AtomicBool,
    /// Rounds waited while paused (so a paused job does not look stalled).
    paused_waits: AtomicU64,
    current: Mutex<String>,
    queue: Mutex<Vec<String>>,
    /// The store this job uses, and how many of its notices were taken.
    store: Mutex<Option<(Arc<StoreStatus>, usize)>>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// A consistent-enough copy of the counters at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressSnapshot {
    pub phase: Phase,
    pub elapsed: Duration,
    pub files_total: u64,
    pub bytes_total: u64,
    /// False while the totals are still being counted.
    pub totals_final: bool,
    pub files_done: u64,
    pub bytes_done: u64,
    /// Content bytes that were new to the repository (after deduplication).
    pub bytes_new: u64,
    /// Bytes written to storage for them (after compression and encryption).
    pub bytes_stored: u64,
    pub warnings: u64,
    pub current: String,
    /// Set while operations wait for the object store (retrying after failures).
    pub waiting: Option<StoreWait>,
}

impl ProgressSnapshot {
    /// Average rate of `bytes_done` since the start, in bytes per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.bytes_done as f64 / s
        } else {
            0.0
        }
    }

    /// Estimated time left at `rate`, when the totals are known.
    pub fn eta(&self, rate: f64) -> Option<Duration> {
        if !self.totals_final || rate <= 0.0 || self.bytes_total < self.bytes_done {
            return None;
        }
        Some(Duration::from_secs_f64(
            (self.bytes_total - self.bytes_done) as f64 / rate,
        ))
    }

    /// Fraction of bytes done (0..=1).
    pub fn fraction(&self) -> f64 {
        if self.bytes_total == 0 {
            0.0
        } else {
            (self.bytes_done as f64 / self.bytes_total as f64).min(1.0)
        }
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            started: Instant::now(),
            phase: AtomicU8::new(0),
            files_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            totals_final: AtomicBool::new(false),
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            bytes_new: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            paused_waits: AtomicU64::new(0),
            current: Mutex::new(String::new()),
            queue: Mutex::new(Vec::new()),
            store: Mutex::new(None),
        }
    }

    /// Reports `status` with this job: its waits in snapshots, its notices (from now
    /// on) as warnings.
    pub fn watch_store(&self, status: Arc<StoreStatus>) {
        let (_, seen) = status.notices_since(usize::MAX);
        *self.store.lock() = Some((status, seen));
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Relaxed);
    }
    pub fn add_total(&self, files: u64, bytes: u64) {
        self.files_total.fetch_add(files, Relaxed);
        self.bytes_total.fetch_add(bytes, Relaxed);
    }
    pub fn set_totals_final(&self) {
        self.totals_final.store(true, Relaxed);
    }
    /// Counts work done; while the job is paused, first waits (on the calling thread:
    /// the engine's data paths run on blocking threads) until it is resumed or
    /// cancelled, so a paused job moves no more data.
    pub fn add_done(&self, files: u64, bytes: u64) {
        self.wait_while_paused();
        self.files_done.fetch_add(files, Relaxed);
        self.bytes_done.fetch_add(bytes, Relaxed);
    }
    pub fn add_new(&self, raw: u64, stored: u64) {
        self.bytes_new.fetch_add(raw, Relaxed);
        self.bytes_stored.fetch_add(stored, Relaxed);
    }
    /// Sets the item being worked on, unless another thread is doing so right now.
    pub fn set_current(&self, s: impl FnOnce() -> String) {
        if let Some(mut c) = self.current.try_lock() {
            *c = s();
        }
    }
    /// Records a warning (also logged).
    pub fn warn(&self, msg: String) {
        tracing::warn!("{msg}");
        self.warnings.fetch_add(1, Relaxed);
        self.queue.lock().push(msg);
    }
    /// Takes the warnings queued since the last call (the store's notices included).
    pub fn drain_warnings(&self) -> Vec<String> {
        let notices = match &mut *self.store.lock() {
            Some((status, seen)) => {
                let (new, now) = status.notices_since(*seen);
                *seen = now;
                new
            }
            None => Vec::new(),
        };
        let mut queue = self.queue.lock();
        self.warnings.fetch_add(notices.len() as u64, Relaxed);
        queue.extend(notices);
        std::mem::take(&mut *queue)
    }
    pub fn cancel(&self) {
        self.cancelled.store(true, Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Relaxed)
    }
    /// Holds the job's data paths at their next counted step.
    pub fn pause(&self) {
        self.paused.store(true, Relaxed);
    }
    pub fn resume(&self) {
        self.paused.store(false, Relaxed);
    }
    pub fn is_paused(&self) -> bool {
        self.paused.load(Relaxed)
    }
    /// Blocks the calling thread while the job is paused and not cancelled.
    pub fn wait_while_paused(&self) {
        while self.is_paused() && !self.is_cancelled() {
            self.paused_waits.fetch_add(1, Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    /// A number that changes while the job moves data or waits paused: what stall
    /// detection watches (a paused job is not a stalled connection).
    pub fn activity(&self) -> u64 {
        self.bytes_done
            .load(Relaxed)
            .wrapping_add(self.paused_waits.load(Relaxed))
    }
    /// `Err(Cancelled)` once the job has been cancelled.
    pub fn check(&self) -> super::Result<()> {
        if self.is_cancelled() {
            Err(super::Error::Cancelled)
        } else {
            Ok(())
        }
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            phase: Phase::from_u8(self.phase.load(Relaxed)),
            elapsed: self.started.elapsed(),
            files_total: self.files_total.load(Relaxed),
            bytes_total: self.bytes_total.load(Relaxed),
            totals_final: self.totals_final.load(Relaxed),
            files_done: self.files_done.load(Relaxed),
            bytes_done: self.bytes_done.load(Relaxed),
            bytes_new: self.bytes_new.load(Relaxed),
            bytes_stored: self.bytes_stored.load(Relaxed),
            warnings: self.warnings.load(Relaxed),
            current: self.current.lock().clone(),
            waiting: self
                .store
                .lock()
                .as_ref()
                .and_then(|(status, _)| status.waiting()),
        }
    }
}

/// A smoothed transfer rate for display: an exponentially weighted moving average of
/// the rate between successive snapshots.
#[derive(Debug, Default, Clone)]
pub struct RateMeter {
    last: Option<(Duration, u64)>,
    rate: f64,
}

impl RateMeter {
    /// Feeds a snapshot; returns the smoothed rate in bytes per second.
    pub fn update(&mut self, s: &ProgressSnapshot) -> f64 {
        if let Some((t, b)) = self.last {
            let dt = (s.elapsed - t.min(s.elapsed)).as_secs_f64();
            if dt >= 0.05 {
                let inst = s.bytes_done.saturating_sub(b) as f64 / dt;
                self.rate = if self.rate == 0.0 {
                    inst
                } else {
                    0.7 * self.rate + 0.3 * inst
                };
                self.last = Some((s.elapsed, s.bytes_done));
            }
        } else {
            self.last = Some((s.elapsed, s.bytes_done));
            self.rate = s.rate();
        }
        self.rate
    }
}
