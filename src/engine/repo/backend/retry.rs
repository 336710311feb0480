//! Retries: the one place where storage failures are sorted into "try again" and "give
//! up", and where waiting for the store is made visible.
//!
//! [`Retrying`] wraps any backend. An operation that fails with a transient error
//! ([`BackendError::is_transient`]: 5xx answers, throttling, timeouts, dropped
//! connections, bodies cut off halfway) is tried again after an exponential, jittered
//! backoff until it succeeds, fails for good, or its retry budget
//! ([`RetryPolicy::budget`], the time since its first failure) is spent. Reads continue
//! where an interrupted one stopped ([`Backend::read_resumable`]), so a cut body costs
//! only the bytes that did not arrive. Backends themselves do not retry.
//!
//! [`StoreStatus`] is what a backend stack tells front ends: which operations are
//! waiting for the store right now (the "waiting for the object store" state), and
//! notices worth a warning (an upload whose parts could not be removed). A job's
//! [`Progress`](crate::progress::Progress) watches it
//! ([`Progress::watch_store`](crate::progress::Progress::watch_store)), so the
//! CLI's progress line and the console's jobs show it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{Backend, BackendError, BackendResult, DynBackend, FileInfo, FileKind, PartialRead};

/// The retry budget when none is configured: how long one operation may keep retrying.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(300);

/// How failed operations are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How long one operation may keep trying after its first failure. Zero: no retries.
    pub budget: Duration,
    /// The wait before the first retry; each further wait doubles, up to `max_delay`.
    pub first_delay: Duration,
    /// The longest wait between two tries (short enough to notice a store that is back).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            budget: DEFAULT_BUDGET,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The policy with `budget`, and backoff suited to it (a budget of a few seconds, as
    /// in tests, waits at most a second between tries).
    pub fn with_budget(budget: Duration) -> RetryPolicy {
        let default = RetryPolicy::default();
        RetryPolicy {
            budget,
            first_delay: default.first_delay.min(budget / 8),
            max_delay: default
                .max_delay
                .min(budget / 4)
                .max(default.first_delay.min(budget / 8)),
        }
    }

    /// The wait before try number `retry + 1` (`retry` from 1), with jitter: between
    /// half and all of the exponential step, so workers that failed together do not
    /// come back together.
    fn delay(&self, retry: u32) -> Duration {
        let step = self
            .first_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_delay);
        let jitter = getrandom::u64().unwrap_or(0) % 1000;
        step / 2 + step.mul_f64(jitter as f64 / 2000.0)
    }
}

/// Parses a duration as the user writes it: `300`, `90s`, `5m`, `2h`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration: write e.g. 90s, 5m, 1h or 1m30s");
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        total += Duration::from_secs(n.saturating_mul(unit));
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// What a backend stack reports to front ends: operations waiting for the store, and
/// notices. Shared by every job using the stack; cheap to read at a frame rate.
#[derive(Debug, Default)]
pub struct StoreStatus {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    waiting: Vec<Waiter>,
    /// Retries since the stack was built.
    retries: u64,
    notices: Vec<String>,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    since: Instant,
    budget: Duration,
    last_error: String,
}

/// Operations waiting for the store at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreWait {
    /// How long the longest-waiting operation has been retrying.
    pub waited: Duration,
    /// How long until that operation gives up.
    pub left: Duration,
    /// Operations retrying now.
    pub operations: usize,
    /// Retries since the repository was opened.
    pub retries: u64,
    /// The most recent failure.
    pub last_error: String,
}

impl StoreStatus {
    /// The operations waiting for the store now, if any.
    pub fn waiting(&self) -> Option<StoreWait> {
        let state = self.state.lock();
        let oldest = state.waiting.iter().min_by_key(|w| w.since)?;
        let newest = state.waiting.iter().max_by_key(|w| w.since)?;
        let waited = oldest.since.elapsed();
        Some(StoreWait {
            waited,
            left: oldest.budget.saturating_sub(waited),
            operations: state.waiting.len(),
            retries: state.retries,
            last_error: newest.last_error.clone(),
        })
    }

    /// Retries since the stack was built.
    pub fn retries(&self) -> u64 {
        self.state.lock().retries
    }

    /// Records something the user should hear about (also logged as a warning).
    pub fn notice(&self, message: String) {
        tracing::warn!("{message}");
        self.state.lock().notices.push(message);
    }

    /// The notices after the first `seen`, and the new count seen.
    pub fn notices_since(&self, seen: usize) -> (Vec<String>, usize) {
        let state = self.state.lock();
        let new = state.notices.get(seen..).unwrap_or_default().to_vec();
        (new, state.notices.len())
    }

    fn register(&self, since: Instant, budget: Duration, error: &BackendError) -> u64 {
        let mut state = self.state.lock();
        state.next_id += 1;
        state.retries += 1;
        let id = state.next_id;
        state.waiting.push(Waiter {
            id,
            since,
            budget,
            last_error: error.to_string(),
        });
        id
    }

    fn update(&self, id: u64, error: &BackendError) {
        let mut state = self.state.lock();
        state.retries += 1;
        if let Some(w) = state.waiting.iter_mut().find(|w| w.id == id) {
            w.last_error = error.to_string();
        }
    }

    fn done(&self, id: u64) {
        self.state.lock().waiting.retain(|w| w.id != id);
    }
}

/// One operation's tries. Dropping it (success, failure or cancellation) ends its wait.
struct Attempt<'a> {
    policy: &'a RetryPolicy,
    status: &'a StoreStatus,
    what: String,
    first_failure: Option<Instant>,
    retries: u32,
    waiter: Option<u64>,
}

impl Attempt<'_> {
    /// After a failure: waits and returns `Ok` when the operation should be tried
    /// again, or returns the error to report.
    async fn again(&mut self, error: BackendError) -> BackendResult<()> {
        if !error.is_transient() {
            return Err(error);
        }
        let now = Instant::now();
        let since = *self.first_failure.get_or_insert(now);
        let spent = now - since;
        let delay = self.policy.delay(self.retries + 1);
        if self.policy.budget.is_zero() || spent + delay > self.policy.budget {
            tracing::warn!(op = %self.what, retries = self.retries, error = %error, "giving up: the retry budget is spent");
            return Err(gave_up(error, self.retries, spent, self.policy.budget));
        }
        self.retries += 1;
        match self.waiter {
            None => self.waiter = Some(self.status.register(since, self.policy.budget, &error)),
            Some(id) => self.status.update(id, &error),
        }
        tracing::debug!(op = %self.what, retry = self.retries, ?delay, error = %error, "retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

impl Attempt<'_> {
    /// The operation moved forward (a read received bytes before it broke): what
    /// follows is a new wait, with a fresh backoff and budget. A read that keeps
    /// arriving in pieces is not an outage.
    fn progressed(&mut self) {
        self.first_failure = None;
        self.retries = 0;
        if let Some(id) = self.waiter.take() {
            self.status.done(id);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            self.status.done(id);
            if self.retries > 0 {
                tracing::debug!(op = %self.what, retries = self.retries, "operation ended after retries");
            }
        }
    }
}

/// The error of an operation that ran out of budget, saying so.
fn gave_up(error: BackendError, retries: u32, spent: Duration, budget: Duration) -> BackendError {
    match error {
        BackendError::Remote {
            location,
            detail,
            transient,
        } => BackendError::Remote {
            location,
            detail: format!(
                "{detail}; gave up after {} tries over {:.0?} (the retry budget is {:?}: raise it with --retry-budget or FERRY_RETRY_BUDGET to wait longer)",
                retries + 1,
                spent,
                budget
            ),
            transient,
        },
        other => other,
    }
}

/// A backend whose operations are retried (see the module documentation).
#[derive(Debug)]
pub struct Retrying {
    inner: DynBackend,
    policy: RetryPolicy,
    status: Arc<StoreStatus>,
    connections: Option<usize>,
}

impl Retrying {
    /// Wraps `inner`. `connections` overrides how many transfers jobs run at once.
    pub fn wrap(inner: DynBackend, policy: RetryPolicy, connections: Option<usize>) -> DynBackend {
        let status = inner.status().unwrap_or_default();
        Arc::new(Retrying {
            inner,
            policy,
            status,
            connections: connections.map(|n| n.max(1)),
        })
    }

    fn attempt(&self, op: &str, kind: FileKind, name: &str) -> Attempt<'_> {
        Attempt {
            policy: &self.policy,
            status: &self.status,
            what: format!("{op} {}", kind.path(name)),
            first_failure: None,
            retries: 0,
            waiter: None,
        }
    }

    async fn run<T, F, Fut>(&self, mut attempt: Attempt<'_>, mut op: F) -> BackendResult<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = BackendResult<T>> + Send,
        T: Send,
    {
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => attempt.again(e).await?,
            }
        }
    }

    async fn read_from(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: Option<u64>,
    ) -> BackendResult<Bytes> {
        let mut part = PartialRead::default();
        self.read_resumable(kind, name, offset, length, &mut part)
            .await?;
        Ok(part.data.freeze())
    }
}

#[async_trait]
impl Backend for Retrying {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn remote(&self) -> Option<super::RemoteStore> {
        self.inner.remote()
    }
    async fn remote_credentials(&self) -> BackendResult<Option<super::RemoteCredentials>> {
        self.inner.remote_credentials().await
    }
    fn connections(&self) -> usize {
        self.connections.unwrap_or_else(|| self.inner.connections())
    }
    fn staging_dir(&self) -> Option<PathBuf> {
        self.inner.staging_dir()
    }
    fn status(&self) -> Option<Arc<StoreStatus>> {
        Some(self.status.clone())
    }
    async fn create(&self) -> BackendResult<()> {
        let attempt = self.attempt("create", FileKind::Config, "config");
        self.run(attempt, || self.inner.create()).await
    }
    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        let attempt = self.attempt("list", kind, "");
        self.run(attempt, || self.inner.list(kind)).await
    }
    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        self.read_from(kind, name, 0, None).await
    }
    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Bytes> {
        if length == 0 {
            return Ok(Bytes::new());
        }
        self.read_from(kind, name, offset, Some(length)).await
    }
    async fn read_resumable(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: Option<u64>,
        part: &mut PartialRead,
    ) -> BackendResult<()> {
        let mut attempt = self.attempt("read", kind, name);
        loop {
            let before = part.data.len();
            match self
                .inner
                .read_resumable(kind, name, offset, length, part)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if part.data.len() > before {
                        attempt.progressed();
                    }
                    attempt.again(e).await?
                }
            }
        }
    }
    async fn write(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        let attempt = self.attempt("write", kind, name);
        self.run(attempt, || self.inner.write(kind, name, data.clone()))
            .await
    }
    async fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> BackendResult<()> {
        // A failed upload keeps the local file, so it can be sent again.
        let attempt = self.attempt("write", kind, name);
        self.run(attempt, || self.inner.write_file(kind, name, path))
            .await
    }
    async fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let attempt = self.attempt("remove", kind, name);
        self.run(attempt, || self.inner.remove(kind, name)).await
    }
    async fn size(&self, kind: FileKind, name: &str) -> BackendResult<u64> {
        let attempt = self.attempt("size", kind, name);
        self.run(attempt, || self.inner.size(kind, name)).await
    }
    async fn clean_incomplete_uploads(&self, older_than: Duration) -> BackendResult<usize> {
        let attempt = self.attempt("clean uploads", FileKind::Pack, "");
        self.run(attempt, || self.inner.clean_incomplete_uploads(older_than))
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::*;

    /// A backend whose reads fail `fail` times (transiently, after delivering part of
    /// the data the first time) before they succeed.
    #[derive(Debug)]
    struct Flaky {
        data: Bytes,
        fail: usize,
        calls: AtomicUsize,
        offsets: Mutex<Vec<u64>>,
        permanent: bool,
    }

    fn remote(transient: bool) -> BackendError {
        BackendError::Remote {
            location: "test".into(),
            detail: "HTTP 503, SlowDown".into(),
            transient,
        }
    }

    #[async_trait]
    impl Backend for Flaky {
        fn location(&self) -> String {
            "test".into()
        }
        fn connections(&self) -> usize {
            2
        }
        async fn create(&self) -> BackendResult<()> {
            Ok(())
        }
        async fn list(&self, _: FileKind) -> BackendResult<Vec<FileInfo>> {
            let n = self.calls.fetch_add(1, SeqCst);
            if n < self.fail {
                return Err(remote(!self.permanent));
            }
            Ok(Vec::new())
        }
        async fn read(&self, _: FileKind, _: &str) -> BackendResult<Bytes> {
            Ok(self.data.clone())
        }
        async fn read_range(&self, _: FileKind, _: &str, o: u64, l: u64) -> BackendResult<Bytes> {
            Ok(self.data.slice(o as usize..(o + l) as usize))
        }
        async fn read_resumable(
            &self,
            _: FileKind,
            _: &str,
            offset: u64,
            length: Option<u64>,
            part: &mut PartialRead,
        ) -> BackendResult<()> {
            let n = self.calls.fetch_add(1, SeqCst);
            let start = offset as usize + part.data.len();
            self.offsets.lock().push(start as u64);
            let end = length.map_or(self.data.len(), |l| (offset + l) as usize);
            if n < self.fail {
                // Half of what is left arrives, then the connection breaks.
                let half = start + (end - start) / 2;
                part.data.extend_from_slice(&self.data[start..half]);
                return Err(remote(true));
            }
            part.data.extend_from_slice(&self.data[start..end]);
            Ok(())
        }
        async fn write(&self, _: FileKind, _: &str, _: Bytes) -> BackendResult<()> {
            Ok(())
        }
        async fn write_file(&self, _: FileKind, _: &str, _: &Path) -> BackendResult<()> {
            Ok(())
        }
        async fn remove(&self, _: FileKind, _: &str) -> BackendResult<()> {
            Ok(())
        }
        async fn size(&self, _: FileKind, _: &str) -> BackendResult<u64> {
            Ok(self.data.len() as u64)
        }
    }

    fn flaky(fail: usize, permanent: bool) -> Arc<Flaky> {
        Arc::new(Flaky {
            data: Bytes::from((0..=255u8).cycle().take(1000).collect::<Vec<u8>>()),
            fail,
            calls: AtomicUsize::new(0),
            offsets: Mutex::new(Vec::new()),
            permanent,
        })
    }

    fn fast(budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            budget: Duration::from_millis(budget_ms),
            first_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(10),
        }
    }

    #[tokio::test]
    async fn interrupted_reads_continue_where_they_stopped() {
        let inner = flaky(3, false);
        let b = Retrying::wrap(inner.clone(), fast(5_000), None);
        let data = b.read_range(FileKind::Pack, "p", 100, 800).await.unwrap();
        assert_eq!(&data[..], &inner.data[100..900]);
        // Each try asks only for what had not arrived yet.
        assert_eq!(*inner.offsets.lock(), vec![100, 500, 700, 800]);
        assert_eq!(b.status().unwrap().retries(), 3);
        assert!(b.status().unwrap().waiting().is_none());

        let inner = flaky(2, false);
        let b = Retrying::wrap(inner.clone(), fast(5_000), Some(3));
        assert_eq!(b.read(FileKind::Index, "i").await.unwrap(), inner.data);
        assert_eq!(*inner.offsets.lock(), vec![0, 500, 750]);
        assert_eq!(b.connections(), 3);
    }

    #[tokio::test]
    async fn a_read_that_keeps_moving_is_not_held_to_one_budget() {
        // Eight breaks, each after some bytes: more tries than one budget allows at
        // this backoff, but each try moved the read forward.
        let inner = flaky(8, false);
        let policy = RetryPolicy {
            budget: Duration::from_millis(30),
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        };
        let b = Retrying::wrap(inner.clone(), policy, None);
        assert_eq!(b.read(FileKind::Pack, "p").await.unwrap(), inner.data);
        assert_eq!(inner.offsets.lock().len(), 9);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried_and_budgets_end() {
        let inner = flaky(1, true);
        let b = Retrying::wrap(inner.clone(), fast(5_000), None);
        let err = b.list(FileKind::Snapshot).await.unwrap_err();
        assert!(!err.is_transient(), "{err}");
        assert_eq!(inner.calls.load(SeqCst), 1);

        let inner = flaky(usize::MAX, false);
        let b = Retrying::wrap(inner.clone(), fast(60), None);
        let started = Instant::now();
        let err = b.list(FileKind::Snapshot).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        let text = err.to_string();
        assert!(
            text.contains("SlowDown") && text.contains("retry budget"),
            "{text}"
        );
        assert!(err.is_transient());
        assert!(inner.calls.load(SeqCst) > 2);
    }

    #[tokio::test]
    async fn waiting_operations_are_visible_while_they_wait() {
        let inner = flaky(usize::MAX, false);
        let policy = RetryPolicy {
            budget: Duration::from_secs(30),
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(50),
        };
        let b = Retrying::wrap(inner, policy, None);
        let status = b.status().unwrap();
        let task = tokio::spawn({
            let b = b.clone();
            async move { b.list(FileKind::Lock).await }
        });
        let mut seen = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Some(w) = status.waiting() {
                seen = Some(w);
                break;
            }
        }
        let w = seen.expect("the retrying list never showed as waiting");
        assert_eq!(w.operations, 1);
        assert!(w.last_error.contains("SlowDown"), "{w:?}");
        assert!(w.left <= Duration::from_secs(30));
        task.abort();
        let _ = task.await;
        // A cancelled operation no longer waits.
        assert!(status.waiting().is_none());

        status.notice("one".into());
        status.notice("two".into());
        assert_eq!(
            status.notices_since(0),
            (vec!["one".into(), "two".into()], 2)
        );
        assert_eq!(status.notices_since(2), (vec![], 2));
    }

    #[test]
    fn durations_parse_as_written() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "m", "5x", "5m3", "-1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_under_the_cap() {
        let p = RetryPolicy::default();
        for retry in 1..40 {
            let d = p.delay(retry);
            assert!(d <= p.max_delay, "{retry}: {d:?}");
            let step = p
                .first_delay
                .saturating_mul(1 << (retry - 1).min(16))
                .min(p.max_delay);
            assert!(d >= step / 2, "{retry}: {d:?}");
        }
        let short = RetryPolicy::with_budget(Duration::from_secs(2));
        assert!(short.max_delay <= Duration::from_millis(500));
        assert!(short.first_delay <= Duration::from_millis(250));
    }
}
