//! Pausing a job: the engine's data path (chunking a stream into the repository, as a
//! folder backup and a volume capture do) moves no bytes while paused and finishes
//! once resumed. No timing beyond "nothing changed across a short pause".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ferry_repo::ingest::store_stream;
use ferry_repo::progress::Progress;
use ferry_repo::saver::Saver;

/// A stream of `left` pseudo-random bytes that counts what it handed out.
struct Source {
    left: u64,
    state: u64,
    fed: Arc<AtomicU64>,
}

impl Read for Source {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = out.len().min(self.left as usize).min(64 * 1024);
        for b in &mut out[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        self.left -= n as u64;
        self.fed.fetch_add(n as u64, Relaxed);
        Ok(n)
    }
}

#[test]
fn a_paused_stream_moves_no_bytes_until_resumed() {
    let t = common::new_repo();
    let progress = Arc::new(Progress::new());
    let saver = Saver::new(&t.repo, progress.clone(), false).unwrap();
    let fed = Arc::new(AtomicU64::new(0));
    let total: u64 = 24 << 20;
    let mut source = Source {
        left: total,
        state: 0x9e37_79b9_7f4a_7c15,
        fed: fed.clone(),
    };
    progress.pause();
    std::thread::scope(|s| {
        let job = s.spawn(|| {
            store_stream(
                &saver,
                t.repo.chunker(),
                &progress,
                &mut source,
                total,
                None,
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        let (done, read) = (progress.snapshot().bytes_done, fed.load(Relaxed));
        assert_eq!(done, 0, "nothing is counted while paused");
        assert!(read < total, "the stream is held before its end");
        let waits = progress.activity();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(progress.snapshot().bytes_done, done);
        assert_eq!(fed.load(Relaxed), read, "no more bytes read while paused");
        assert!(
            progress.activity() > waits,
            "a paused job is not a stalled one"
        );
        assert!(!job.is_finished());
        progress.resume();
        let stored = job.join().unwrap().unwrap();
        assert_eq!(stored.bytes, total);
    });
    assert_eq!(progress.snapshot().bytes_done, total);
    assert_eq!(fed.load(Relaxed), total);
    saver.finish().unwrap();
}

#[test]
fn cancelling_a_paused_stream_releases_it() {
    let progress = Arc::new(Progress::new());
    progress.pause();
    let p = progress.clone();
    let waiter = std::thread::spawn(move || p.add_done(1, 10));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(progress.snapshot().bytes_done, 0);
    progress.cancel();
    waiter.join().unwrap();
    assert_eq!(progress.snapshot().bytes_done, 10);
}
