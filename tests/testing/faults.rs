//! A backend that breaks chosen calls of the backend it wraps.
//!
//! A [`Fault`] names an operation ([`Op`]), optionally a file kind, and which of the
//! matching calls it hits (the n-th, counted from 1, or every one from the n-th on).
//! What it does: fail the call (transient, so the engine's retry layer may try again,
//! or final), delay it, or truncate what a read returns. Calls are counted per
//! (operation, kind) whether or not a fault hits them, so a test can aim at "the second
//! pack written" and then check with [`FaultyBackend::hits`] that its fault happened.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use ferry_repo::backend::{Backend, BackendError, BackendResult, DynBackend, FileInfo, FileKind};

/// A backend operation a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    List,
    Read,
    ReadRange,
    Write,
    Remove,
    Size,
}

/// What a fault does to the call it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The call fails with an error the retry layer retries (a 503, a cut connection).
    Transient,
    /// The call fails for good (a 403, a full disk).
    Fail,
    /// The call waits this long, then goes through.
    Delay(Duration),
    /// A read returns only this many bytes of what it asked for (a short answer).
    Truncate(usize),
}

/// One fault: which calls it hits and what it does to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub op: Op,
    /// Only calls on this kind of file (any kind when `None`).
    pub kind: Option<FileKind>,
    /// The first matching call hit, counted from 1.
    pub from: u64,
    /// How many matching calls from there on are hit (`u64::MAX`: all of them).
    pub times: u64,
    pub effect: Effect,
}

impl Fault {
    /// Hits only the `n`-th matching call.
    pub fn nth(op: Op, kind: Option<FileKind>, n: u64, effect: Effect) -> Fault {
        Fault {
            op,
            kind,
            from: n,
            times: 1,
            effect,
        }
    }

    /// Hits every matching call from the `n`-th on.
    pub fn from(op: Op, kind: Option<FileKind>, n: u64, effect: Effect) -> Fault {
        Fault {
            op,
            kind,
            from: n,
            times: u64::MAX,
            effect,
        }
    }

    fn hits(&self, op: Op, kind: FileKind, n: u64) -> bool {
        self.op == op
            && self.kind.is_none_or(|k| k == kind)
            && n >= self.from
            && n - self.from < self.times
    }
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<Fault>,
    calls: HashMap<(Op, FileKind), u64>,
    hits: u64,
}

/// Wraps a backend and applies [`Fault`]s to its calls.
#[derive(Debug, Clone)]
pub struct FaultyBackend {
    inner: DynBackend,
    state: Arc<Mutex<State>>,
}

impl FaultyBackend {
    pub fn new(inner: DynBackend) -> FaultyBackend {
        FaultyBackend {
            inner,
            state: Arc::default(),
        }
    }

    /// Adds a fault; calls already made count towards its `from`.
    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// Removes every fault (the store "recovers").
    pub fn heal(&self) {
        self.state.lock().faults.clear();
    }

    /// How many calls the faults have hit so far.
    pub fn hits(&self) -> u64 {
        self.state.lock().hits
    }

    /// How many calls of `op` on `kind` were made so far, hit or not.
    pub fn calls(&self, op: Op, kind: FileKind) -> u64 {
        self.state
            .lock()
            .calls
            .get(&(op, kind))
            .copied()
            .unwrap_or(0)
    }

    /// Counts the call and says which effect, if any, hits it.
    fn roll(&self, op: Op, kind: FileKind) -> Option<Effect> {
        let mut s = self.state.lock();
        let n = {
            let c = s.calls.entry((op, kind)).or_insert(0);
            *c += 1;
            *c
        };
        let effect = s
            .faults
            .iter()
            .find(|f| f.hits(op, kind, n))
            .map(|f| f.effect);
        if effect.is_some() {
            s.hits += 1;
        }
        effect
    }

    /// Applies a fault's effect before the call; `Some(len)` asks the caller to cut a
    /// read's answer to `len` bytes.
    async fn before(&self, op: Op, kind: FileKind, name: &str) -> BackendResult<Option<usize>> {
        match self.roll(op, kind) {
            None => Ok(None),
            Some(Effect::Delay(d)) => {
                tokio::time::sleep(d).await;
                Ok(None)
            }
            Some(Effect::Truncate(n)) => Ok(Some(n)),
            Some(Effect::Transient) => Err(BackendError::Remote {
                location: self.inner.location(),
                detail: format!("injected transient fault on {op:?} of {kind} file {name}"),
                transient: true,
            }),
            Some(Effect::Fail) => Err(BackendError::Remote {
                location: self.inner.location(),
                detail: format!("injected fault on {op:?} of {kind} file {name}"),
                transient: false,
            }),
        }
    }
}

fn cut(data: Bytes, to: Option<usize>) -> Bytes {
    match to {
        Some(n) if n < data.len() => data.slice(..n),
        _ => data,
    }
}

#[async_trait]
impl Backend for FaultyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }

    fn staging_dir(&self) -> Option<std::path::PathBuf> {
        self.inner.staging_dir()
    }

    async fn create(&self) -> BackendResult<()> {
        self.inner.create().await
    }

    async fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        self.before(Op::List, kind, "*").await?;
        self.inner.list(kind).await
    }

    async fn read(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let to = self.before(Op::Read, kind, name).await?;
        Ok(cut(self.inner.read(kind, name).await?, to))
    }

    async fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> BackendResult<Bytes> {
        let to = self.before(Op::ReadRange, kind, name).await?;
        Ok(cut(
            self.inner.read_range(kind, name, offset, length).await?,
            to,
        ))
    }

    async fn write(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        self.before(Op::Write, kind, name).await?;
        self.inner.write(kind, name, data).await
    }

    async fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> BackendResult<()> {
        // A failed upload consumes nothing: the staged file stays for a retry.
        self.before(Op::Write, kind, name).await?;
        self.inner.write_file(kind, name, path).await
    }

    async fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        self.before(Op::Remove, kind, name).await?;
        self.inner.remove(kind, name).await
    }

    async fn size(&self, kind: FileKind, name: &str) -> BackendResult<u64> {
        self.before(Op::Size, kind, name).await?;
        self.inner.size(kind, name).await
    }
}
