//! The repository engine on the testing crate's backends: an in-memory store, and
//! faults injected at chosen backend calls (a transient error the retry layer rides
//! out, a final error that stops a backup, a short read during a restore).

use std::sync::Arc;
use std::time::Duration;

use ferry_repo::Repository;
use ferry_repo::backend::retry::{RetryPolicy, Retrying};
use ferry_repo::backend::{DynBackend, FileKind};
use ferry_repo::backup::{self, BackupOptions};
use ferry_repo::progress::Progress;
use ferry_testing::faults::{Effect, Fault, FaultyBackend, Op};
use ferry_testing::memory::MemoryBackend;

use crate::common::{self, assert_same_tree, check_repo, do_backup, do_restore, write_file};

/// A folder of files big enough for several 1 MiB packs.
fn source(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("src");
    for i in 0..6u64 {
        write_file(
            &src.join(format!("f{i}.bin")),
            &common::bytes(700_000, i),
            0o644,
            1_700_000_000,
        );
    }
    write_file(&src.join("sub/small.txt"), b"hello", 0o600, 1_700_000_000);
    src
}

/// A repository on `backend` wrapped the way Ferry opens one: retries with a short
/// budget (so a fault that never clears fails the test quickly).
fn init(rt: &tokio::runtime::Runtime, backend: DynBackend) -> Repository {
    let policy = RetryPolicy {
        budget: Duration::from_secs(2),
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    };
    let backend = Retrying::wrap(backend, policy, None);
    Repository::init(
        backend,
        rt.handle().clone(),
        &common::secret(),
        &common::init_opts(),
    )
    .unwrap()
}

#[test]
fn a_backup_in_memory_round_trips_and_checks_clean() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let mem = MemoryBackend::new();
    let repo = init(&rt, Arc::new(mem.clone()));
    let snap = do_backup(&repo, &src);
    assert!(
        mem.names(FileKind::Pack).len() >= 2,
        "several packs expected"
    );
    let report = check_repo(&repo, true);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    do_restore(&repo, &snap, &dir.path().join("out"), "").unwrap();
    assert_same_tree(&src, &dir.path().join("out"));
}

#[test]
fn a_transient_fault_on_a_pack_write_is_retried_and_nothing_is_lost() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let faulty = FaultyBackend::new(Arc::new(MemoryBackend::new()));
    let repo = init(&rt, Arc::new(faulty.clone()));
    faulty.inject(Fault::nth(
        Op::Write,
        Some(FileKind::Pack),
        2,
        Effect::Transient,
    ));
    let snap = do_backup(&repo, &src);
    assert_eq!(faulty.hits(), 1, "the fault must have happened");
    let report = check_repo(&repo, true);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    do_restore(&repo, &snap, &dir.path().join("out"), "").unwrap();
    assert_same_tree(&src, &dir.path().join("out"));
}

#[test]
fn a_store_that_refuses_writes_fails_the_backup_and_the_next_run_completes_it() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let mem = MemoryBackend::new();
    let faulty = FaultyBackend::new(Arc::new(mem.clone()));
    let repo = init(&rt, Arc::new(faulty.clone()));
    faulty.inject(Fault::from(
        Op::Write,
        Some(FileKind::Pack),
        2,
        Effect::Fail,
    ));
    let err = backup::backup(
        &repo,
        &BackupOptions {
            source: src.clone(),
            ..Default::default()
        },
        &Arc::new(Progress::new()),
    )
    .expect_err("the backup cannot succeed while packs cannot be written");
    assert!(
        err.to_string().contains("injected fault"),
        "the error says what failed: {err}"
    );
    assert!(faulty.hits() >= 1);
    assert!(
        mem.names(FileKind::Snapshot).is_empty(),
        "no snapshot is written for a failed backup"
    );
    // The store recovers; the next run finishes the job and the repository is whole.
    faulty.heal();
    let snap = do_backup(&repo, &src);
    let report = check_repo(&repo, true);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    do_restore(&repo, &snap, &dir.path().join("out"), "").unwrap();
    assert_same_tree(&src, &dir.path().join("out"));
}

#[test]
fn a_short_answer_from_the_store_fails_the_restore_instead_of_writing_wrong_data() {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let faulty = FaultyBackend::new(Arc::new(MemoryBackend::new()));
    let repo = init(&rt, Arc::new(faulty.clone()));
    let snap = do_backup(&repo, &src);
    // Every ranged read of a pack comes back 100 bytes long.
    faulty.inject(Fault::from(
        Op::ReadRange,
        Some(FileKind::Pack),
        1,
        Effect::Truncate(100),
    ));
    let out = dir.path().join("out");
    let r = do_restore(&repo, &snap, &out, "");
    assert!(faulty.hits() >= 1, "the fault must have happened");
    match r {
        Err(_) => {}
        Ok(o) => assert!(
            !o.warnings.is_empty(),
            "a restore from short answers must say what it could not restore"
        ),
    }
    // Whatever was written is never a wrong copy of a file: each restored file is
    // either absent or identical to its source.
    for i in 0..6u64 {
        let p = out.join(format!("f{i}.bin"));
        if let Ok(data) = std::fs::read(&p) {
            assert_eq!(
                data,
                common::bytes(700_000, i),
                "{} was restored with wrong content",
                p.display()
            );
        }
    }
    // The store heals: the same restore now succeeds.
    faulty.heal();
    let again = dir.path().join("again");
    do_restore(&repo, &snap, &again, "").unwrap();
    assert_same_tree(&src, &again);
}
