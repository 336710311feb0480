//! The repository engine end to end, on a local folder: round trips, incremental
//! backups, deduplication, damage, locks, keys, retention and prune.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use common::*;
use ferry_repo::backend::FileKind;
use ferry_repo::backup::{self, BackupOptions, ParentChoice};

use ferry_repo::crypto::{KdfParams, Secret};
use ferry_repo::forget::{self, Retention};
use ferry_repo::progress::Progress;
use ferry_repo::prune::{self, PruneOptions};
use ferry_repo::restore::{self, RestoreOptions};
use ferry_repo::snapshot;
use ferry_repo::{Error, Repository, diff, lock, stats};
use proptest::prelude::*;

/// The files below `root` as `tree::walk` visits them, with their paths.
fn walked_files(
    repo: &Repository,
    root: &ferry_repo::Id,
) -> Vec<(std::path::PathBuf, ferry_repo::tree::Node)> {
    let mut out = Vec::new();
    ferry_repo::tree::walk(repo, root, Path::new(""), &mut |p, n| {
        if n.kind == ferry_repo::tree::NodeKind::File {
            out.push((p.to_path_buf(), n.clone()));
        }
        Ok(true)
    })
    .unwrap();
    out
}

/// A tree with the awkward cases: empty and sparse files, symlinks, hard links,
/// names that are not UTF-8, deep folders, modes and times.
fn awkward_tree(root: &Path) {
    write_file(&root.join("a/b/c/deep.txt"), b"deep", 0o640, 1_600_000_000);
    write_file(&root.join("empty"), b"", 0o600, 1_600_000_001);
    write_file(
        &root.join("big.bin"),
        &bytes(3 << 20, 1),
        0o644,
        1_600_000_002,
    );
    write_file(
        &root.join("exec.sh"),
        b"#!/bin/sh\necho hi\n",
        0o755,
        1_600_000_003,
    );
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.txt");
    write_file(&root.join(odd), b"latin-1 name", 0o644, 1_600_000_004);
    std::os::unix::fs::symlink("a/b", root.join("link-to-b")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("big.bin"), root.join("big-hardlink.bin")).unwrap();
    let sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"data in the middle", 4 << 20).unwrap();
    drop(sparse);
    filetime::set_file_mtime(
        root.join("sparse.img"),
        filetime::FileTime::from_unix_time(1_600_000_005, 0),
    )
    .unwrap();
}

#[test]
fn round_trip_keeps_content_and_metadata() {
    let t = new_repo();
    let src = t.dir.path().join("src");
    awkward_tree(&src);
    let snap = do_backup(&t.repo, &src);
    assert_eq!(snap.summary.files, 7);
    let out = t.dir.path().join("out");
    let r = do_restore(&t.repo, &snap, &out, "").unwrap();
    assert_eq!(r.files, 7);
    assert_same_tree(&src, &out);
    // Hard links come back as links, sparse files as sparse files.
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata(out.join("big.bin")).unwrap();
    let b = std::fs::metadata(out.join("big-hardlink.bin")).unwrap();
    assert_eq!(a.ino(), b.ino());
    let s = std::fs::metadata(out.join("sparse.img")).unwrap();
    assert!(
        s.blocks() * 512 < s.len() / 2,
        "sparse file restored dense: {} blocks",
        s.blocks()
    );
    assert!(check_repo(&t.repo, true).ok());
    // The files below the root, its trees read a level at a time: those `walk` visits,
    // in its order, nested folders included.
    let walked: Vec<_> = walked_files(&t.repo, &snap.tree)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let below = ferry_repo::tree::files_below(&t.repo, &snap.tree).unwrap();
    assert_eq!(below.len(), walked.len());
    for (n, p) in below.iter().zip(&walked) {
        assert_eq!(n.name.to_os(), p.file_name().unwrap());
    }
    assert!(
        walked.iter().any(|p| p.ends_with("a/b/c/deep.txt")),
        "{walked:?}"
    );
}

#[test]
fn sub_path_restore_and_refusal_of_non_empty_target() {
    let t = new_repo();
    let src = t.dir.path().join("src");
    awkward_tree(&src);
    let snap = do_backup(&t.repo, &src);
    let out = t.dir.path().join("sub");
    do_restore(&t.repo, &snap, &out, "a/b").unwrap();
    assert_eq!(std::fs::read(out.join("c/deep.txt")).unwrap(), b"deep");
    assert!(!out.join("big.bin").exists());
    // Not empty now: refused, and nothing is touched.
    std::fs::write(out.join("c/deep.txt"), b"local change").unwrap();
    let err = do_restore(&t.repo, &snap, &out, "a/b").unwrap_err();
    assert!(matches!(err, Error::TargetNotEmpty(_)), "{err}");
    assert!(err.to_string().contains("--overwrite"));
    assert_eq!(
        std::fs::read(out.join("c/deep.txt")).unwrap(),
        b"local change"
    );
    let opts = RestoreOptions {
        target: out.clone(),
        path: "a/b".into(),
        overwrite: true,
        threads: None,
    };
    restore::restore(&t.repo, &snap, &opts, &Arc::new(Progress::new())).unwrap();
    assert_eq!(std::fs::read(out.join("c/deep.txt")).unwrap(), b"deep");
    let missing = do_restore(&t.repo, &snap, &t.dir.path().join("x"), "no/such").unwrap_err();
    assert!(matches!(missing, Error::PathNotInSnapshot { .. }));
}

#[test]
fn incremental_backup_reads_only_changes() {
    let t = new_repo();
    let src = t.dir.path().join("src");
    for i in 0..20 {
        write_file(
            &src.join(format!("f{i:02}")),
            &bytes(100_000, i),
            0o644,
            1_600_000_000,
        );
    }
    let s1 = do_backup(&t.repo, &src);
    assert_eq!(s1.summary.files_new, 20);
    write_file(&src.join("f03"), &bytes(100_000, 999), 0o644, 1_600_000_100);
    std::fs::remove_file(src.join("f07")).unwrap();
    write_file(&src.join("new"), b"fresh", 0o644, 1_600_000_200);
    let s2 = do_backup(&t.repo, &src);
    assert_eq!(s2.parent, Some(s1.id));
    assert_eq!(s2.summary.files_unmodified, 18);
    assert_eq!(s2.summary.files_changed, 1);
    assert_eq!(s2.summary.files_new, 1);
    assert!(s2.summary.bytes_new < 120_000, "{}", s2.summary.bytes_new);
    let out = t.dir.path().join("out");
    do_restore(&t.repo, &s2, &out, "").unwrap();
    assert_same_tree(&src, &out);
    let changes = diff::diff(&t.repo, &s1.tree, &s2.tree).unwrap();
    let summary: Vec<(char, String)> = changes
        .iter()
        .map(|c| (c.change.symbol(), c.path.display().to_string()))
        .collect();
    assert!(summary.contains(&('M', "f03".into())), "{summary:?}");
    assert!(summary.contains(&('-', "f07".into())));
    assert!(summary.contains(&('+', "new".into())));
    // --no-parent reads everything again but stores nothing new.
    let opts = BackupOptions {
        source: src.clone(),
        parent: ParentChoice::None,
        ..Default::default()
    };
    let s3 = backup::backup(&t.repo, &opts, &Arc::new(Progress::new()))
        .unwrap()
        .snapshot;
    assert_eq!(s3.summary.files_new, 20);
    assert_eq!(s3.summary.blobs_new, 0);
}

#[test]
fn scattered_page_writes_cost_little() {
    // The default chunk size is chosen for this: 32 scattered 4 KiB writes into a
    // 32 MiB database file must not cost megabytes each.
    let t = new_repo();
    let src = t.dir.path().join("src");
    let mut db = bytes(32 << 20, 5);
    write_file(&src.join("db.dat"), &db, 0o644, 1_600_000_000);
    do_backup(&t.repo, &src);
    let pages = bytes(32 * 4096, 6);
    for i in 0..32 {
        let off = (i * 997 + 13) % ((32 << 20) / 4096) * 4096;
        db[off..off + 4096].copy_from_slice(&pages[i * 4096..(i + 1) * 4096]);
    }
    write_file(&src.join("db.dat"), &db, 0o644, 1_600_000_500);
    let s2 = do_backup(&t.repo, &src);
    let per_page = s2.summary.bytes_new / 32;
    assert!(
        per_page < 200 * 1024,
        "{per_page} bytes added per 4 KiB page write"
    );
}

#[test]
fn compressible_data_is_compressed_and_random_is_not() {
    let t = new_repo();
    let src = t.dir.path().join("src");
    let text: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("2024-05-01 INFO request {i} served\n").into_bytes())
        .collect();
    write_file(&src.join("log.txt"), &text, 0o644, 1);
    let s = do_backup(&t.repo, &src);
    assert!(
        s.summary.bytes_stored * 5 < s.summary.bytes_new,
        "{:?}",
        s.summary
    );
    let t2 = new_repo();
    let src2 = t2.dir.path().join("src");
    write_file(&src2.join("rand"), &bytes(4 << 20, 3), 0o644, 1);
    let s2 = do_backup(&t2.repo, &src2);
    // Stored raw: only per-blob overhead (nonce, tag, flag).
    assert!(
        s2.summary.bytes_stored < s2.summary.bytes_new + 200 * 64,
        "{:?}",
        s2.summary
    );
}

#[test]
fn wrong_password_and_unknown_version_are_clear_errors() {
    let t = new_repo();
    let backend = Arc::new(ferry_repo::backend::local::LocalBackend::new(t.path()));
    let err = Repository::open(
        backend.clone(),
        t.rt.handle().clone(),
        &Secret::Password("nope".into()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongPassword { keys: 1 }), "{err}");
    assert!(err.to_string().contains("FERRY_PASSWORD"));
    // A key file from a future format.
    let keys = std::fs::read_dir(t.path().join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut kf: serde_json::Value = serde_json::from_slice(&std::fs::read(&keys).unwrap()).unwrap();
    kf["version"] = 2.into();
    std::fs::write(&keys, serde_json::to_vec(&kf).unwrap()).unwrap();
    let err = Repository::open(backend.clone(), t.rt.handle().clone(), &secret()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    let err = Repository::open(
        Arc::new(ferry_repo::backend::local::LocalBackend::new(
            t.dir.path().join("nothing"),
        )),
        t.rt.handle().clone(),
        &secret(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotARepository { .. }), "{err}");
}

#[test]
fn keys_can_be_added_used_and_removed() {
    let t = new_repo();
    let second = Secret::KeyMaterial(b"0123456789abcdef0123456789abcdef".to_vec());
    let name = t
        .repo
        .add_key(&second, KdfParams::insecure_fast(), "ops")
        .unwrap();
    assert_eq!(t.repo.list_keys().unwrap().len(), 2);
    let backend = Arc::new(ferry_repo::backend::local::LocalBackend::new(t.path()));
    let via_second = Repository::open(backend.clone(), t.rt.handle().clone(), &second).unwrap();
    assert_eq!(via_second.config().id, t.repo.config().id);
    assert!(matches!(
        via_second.remove_key(&name[..10]),
        Err(Error::KeyInUse(_))
    ));
    let first = t.repo.key_name().to_string();
    via_second.remove_key(&first[..12]).unwrap();
    assert!(matches!(
        Repository::open(backend.clone(), t.rt.handle().clone(), &secret()),
        Err(Error::WrongPassword { .. })
    ));
    assert!(matches!(
        via_second.remove_key("ffffffffff"),
        Err(Error::KeyNotFound(_))
    ));
}

#[test]
fn damaged_pack_is_named_with_the_snapshots_it_breaks() {
    let t = new_repo();
    let a = t.dir.path().join("a");
    let b = t.dir.path().join("b");
    write_file(&a.join("one"), &bytes(600_000, 1), 0o644, 1);
    write_file(&b.join("two"), &bytes(600_000, 2), 0o644, 1);
    let sa = do_backup(&t.repo, &a);
    let packs_a: Vec<String> = t
        .repo
        .list_packs()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    let sb = do_backup(&t.repo, &b);
    let victim = t
        .repo
        .list_packs()
        .unwrap()
        .into_iter()
        .filter(|p| !packs_a.contains(&p.name))
        .max_by_key(|p| p.size)
        .unwrap();
    let path = t.path().join(FileKind::Pack.path(&victim.name));
    let mut data = std::fs::read(&path).unwrap();
    data[100] ^= 0xff;
    std::fs::write(&path, &data).unwrap();

    // Structure alone cannot see a flipped byte; reading the data does.
    let r = check_repo(&t.repo, true);
    assert!(!r.ok());
    assert_eq!(r.damaged_packs.len(), 1);
    assert_eq!(r.damaged_packs[0].0.to_hex(), victim.name);
    assert_eq!(r.affected_snapshots, vec![sb.id]);
    assert!(
        r.errors.iter().any(|e| e.contains(&victim.name)),
        "{:?}",
        r.errors
    );
    // The other snapshot still restores.
    let out = t.dir.path().join("out-a");
    do_restore(&t.repo, &sa, &out, "").unwrap();
    assert_same_tree(&a, &out);
    let err = do_restore(&t.repo, &sb, &t.dir.path().join("out-b"), "").unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");

    // Truncation is seen without reading data.
    std::fs::write(&path, &data[..data.len() / 2]).unwrap();
    let r = check_repo(&t.repo, false);
    assert!(
        r.errors.iter().any(|e| e.contains("truncated")),
        "{:?}",
        r.errors
    );
}

#[test]
fn locks_block_writers_and_stale_locks_are_cleared() {
    let t = new_repo();
    let src = t.dir.path().join("src");
    write_file(&src.join("f"), b"x", 0o644, 1);
    {
        let _held = lock::acquire(&t.repo, true, "prune").unwrap();
        let err = backup::backup(
            &t.repo,
            &BackupOptions {
                source: src.clone(),
                ..Default::default()
            },
            &Arc::new(Progress::new()),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("prune"));
    }
    // Shared locks coexist.
    let l1 = lock::acquire(&t.repo, false, "backup").unwrap();
    let l2 = lock::acquire(&t.repo, false, "restore").unwrap();
    assert!(lock::acquire(&t.repo, true, "prune").is_err());
    drop((l1, l2));
    // A lock of a process that no longer exists on this host is stale.
    let dead = lock::LockInfo {
        time: chrono::Utc::now(),
        exclusive: true,
        host: ferry_repo::hostname(),
        pid: 999_999_999,
        username: "ghost".into(),
        purpose: "prune".into(),
    };
    t.repo.save_json(FileKind::Lock, &dead).unwrap();
    do_backup(&t.repo, &src);
    assert!(lock::list(&t.repo).unwrap().is_empty());
}

#[test]
fn forget_and_prune_free_space_and_keep_the_rest_intact() {
    let t = new_repo();
    let src = t.dir.path().join("src");
    write_file(&src.join("keep"), &bytes(2 << 20, 1), 0o644, 1);
    write_file(&src.join("gone"), &bytes(3 << 20, 2), 0o644, 1);
    let s1 = do_backup(&t.repo, &src);
    std::fs::remove_file(src.join("gone")).unwrap();
    write_file(&src.join("later"), &bytes(1 << 20, 3), 0o644, 2);
    let s2 = do_backup(&t.repo, &src);
    t.repo.load_index().unwrap();
    let before = stats::stats(&t.repo, &[s1.clone(), s2.clone()]).unwrap();
    let decisions = forget::forget(
        &t.repo,
        &Retention {
            last: Some(1),
            ..Default::default()
        },
        false,
    )
    .unwrap();
    assert_eq!(decisions.iter().filter(|d| !d.keep).count(), 1);
    let (left, _) = snapshot::list(&t.repo).unwrap();
    assert_eq!(left.iter().map(|s| s.id).collect::<Vec<_>>(), vec![s2.id]);
    let dry = prune::prune(
        &t.repo,
        &PruneOptions {
            dry_run: true,
            ..Default::default()
        },
        &Arc::new(Progress::new()),
    )
    .unwrap();
    let r = prune::prune(
        &t.repo,
        &PruneOptions::default(),
        &Arc::new(Progress::new()),
    )
    .unwrap();
    assert!(r.packs_removed + r.packs_rewritten > 0, "{r:?}");
    assert_eq!(dry.packs_removed, r.packs_removed);
    assert!(
        r.bytes_after + (2 << 20) < before.repo_bytes,
        "{r:?} {before:?}"
    );
    let fresh = t.reopen();
    assert!(check_repo(&fresh, true).ok());
    let out = t.dir.path().join("out");
    do_restore(&fresh, &s2, &out, "").unwrap();
    assert_same_tree(&src, &out);
    // Prune again: nothing left to do.
    let again = prune::prune(&fresh, &PruneOptions::default(), &Arc::new(Progress::new())).unwrap();
    assert_eq!((again.packs_removed, again.packs_rewritten), (0, 0));
}

#[test]
fn packs_left_by_a_killed_backup_are_reindexed_and_reused() {
    let t = new_repo();
    let src = t.dir.path().join("src");
    write_file(&src.join("big"), &bytes(6 << 20, 9), 0o644, 1);
    do_backup(&t.repo, &src);
    // Simulate the kill: the packs stay, the index files and snapshot vanish.
    for f in std::fs::read_dir(t.path().join("index")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    for f in std::fs::read_dir(t.path().join("snapshots")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let fresh = t.reopen();
    let s = do_backup(&fresh, &src);
    assert_eq!(
        s.summary.blobs_new, 0,
        "uploaded data was not reused: {:?}",
        s.summary
    );
    assert!(check_repo(&fresh, true).ok());
}

fn arb_tree() -> impl Strategy<Value = Vec<(String, Vec<u8>, u32)>> {
    let name = "[a-z]{1,6}(/[a-z]{1,6}){0,2}";
    let content = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2000),
        (0usize..400_000, any::<u64>()).prop_map(|(n, s)| bytes(n, s)),
        (1usize..50_000).prop_map(|n| vec![b'z'; n]),
    ];
    let mode = prop::sample::select(vec![0o600u32, 0o644, 0o755, 0o400]);
    prop::collection::vec((name, content, mode), 1..25)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_round_trip(files in arb_tree()) {
        let t = new_repo();
        let src = t.dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        for (i, (name, data, mode)) in files.iter().enumerate() {
            let p = src.join(name);
            // A path may collide with an existing folder or file: skip those.
            if p.exists() || p.ancestors().skip(1).any(|a| a.is_file()) {
                continue;
            }
            write_file(&p, data, *mode, 1_500_000_000 + i as i64);
        }
        let snap = do_backup(&t.repo, &src);
        let out = t.dir.path().join("out");
        do_restore(&t.repo, &snap, &out, "").unwrap();
        assert_same_tree(&src, &out);
    }
}

#[test]
fn a_damaged_index_is_rebuilt_from_the_packs() {
    let t = new_repo();
    let src = t.dir.path().join("src");
    write_file(&src.join("a"), &bytes(3 << 20, 4), 0o644, 1);
    let snap = do_backup(&t.repo, &src);
    let idx = std::fs::read_dir(t.path().join("index"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut d = std::fs::read(&idx).unwrap();
    d[10] ^= 1;
    std::fs::write(&idx, d).unwrap();
    let fresh = t.reopen();
    let err = fresh.load_index().unwrap_err();
    assert!(err.to_string().contains("repair-index"), "{err}");
    let r = ferry_repo::repair::rebuild_index(&fresh, &Arc::new(Progress::new())).unwrap();
    assert!(
        r.unreadable.is_empty() && r.packs > 0 && r.index_files_removed == 1,
        "{r:?}"
    );
    let fresh = t.reopen();
    assert!(check_repo(&fresh, true).ok());
    let out = t.dir.path().join("out");
    do_restore(&fresh, &snap, &out, "").unwrap();
    assert_same_tree(&src, &out);
}

#[test]
fn a_key_file_that_opens_but_is_orphaned_does_not_lock_anyone_out() {
    // An init interrupted after its key file was written leaves an orphan that the same
    // secret opens; the real key must still be found whatever the listing order.
    let t = new_repo();
    let orphan_master = ferry_repo::crypto::MasterKey::generate().unwrap();
    let kf = ferry_repo::crypto::KeyFile::wrap(
        &orphan_master,
        &secret(),
        KdfParams::insecure_fast(),
        1,
        "",
    )
    .unwrap();
    for name in ["0000", "ffff"] {
        std::fs::write(
            t.path().join("keys").join(name),
            serde_json::to_vec(&kf).unwrap(),
        )
        .unwrap();
    }
    let opened = t.reopen();
    assert_eq!(opened.config().id, t.repo.config().id);
}

/// A repository opened before another process (here: another handle) stored data
/// still reads that data: a blob its index does not know sends it to the index files.
#[test]
fn blobs_indexed_by_another_process_are_found_without_reopening() {
    let t = common::new_repo();
    let early = t.reopen();
    let src = tempfile::tempdir().unwrap();
    common::write_file(
        &src.path().join("a.txt"),
        b"written later",
        0o644,
        1_700_000_000,
    );
    let snap = common::do_backup(&t.repo, src.path());
    // `early` read the (empty) index before the backup.
    let tree = early.load_blob(&snap.tree).unwrap();
    assert!(!tree.is_empty());
}

/// A file node of a volume (mode 0640, owner 1234:5678) as a listing gives it.
fn listed_file(inode: u64, links: u64, size: usize) -> ferry_repo::tree::Node {
    let mut n = ferry_repo::ingest::file_node(b"", 0o640, 1234, 5678, 1_600_000_000);
    n.inode = inode;
    n.links = links;
    n.size = size as u64;
    n
}

/// A volume's tree written as a tar stream for a mover: names that share an inode go
/// as hard links to the first, a sparse file goes empty with its non-zero 4 KiB blocks
/// as region files at the end, symlinks' times are handed back; and the archive reads
/// back into the same files.
#[test]
fn volume_tar_streams_keep_hard_links_and_holes() {
    use ferry_repo::ingest::{self, Region, TreeBuilder};
    use ferry_repo::saver::Saver;
    use ferry_repo::tree::{Name, NodeKind};
    use std::io::Read as _;

    let t = new_repo();
    t.repo.load_index().unwrap();
    let progress = Arc::new(Progress::new());
    let saver = Saver::new(&t.repo, progress.clone(), true).unwrap();
    let shared = bytes(70_000, 5);
    let mut sparse = vec![0xab; 4096];
    sparse.resize(4096 + (1 << 20), 0);
    sparse.extend_from_slice(&[0xcd; 5000]);
    sparse.resize(sparse.len() + 10_000, 0);
    let mut b = TreeBuilder::new(&t.repo, &saver, &progress);
    for p in ["a/first", "b/c/second", "third"] {
        b.add(
            p.as_bytes(),
            listed_file(42, 3, shared.len()),
            Some(&mut &shared[..]),
        )
        .unwrap();
    }
    // Another inode of the same content is a file of its own.
    b.add(
        b"copy",
        listed_file(43, 1, shared.len()),
        Some(&mut &shared[..]),
    )
    .unwrap();
    let mut s = listed_file(44, 1, sparse.len());
    s.sparse = true;
    b.add(b"disk.img", s, Some(&mut &sparse[..])).unwrap();
    let mut link = ingest::file_node(b"", 0o777, 0, 0, 1_500_000_000);
    link.kind = NodeKind::Symlink;
    link.size = 0;
    link.target = Some(Name(b"a/first".to_vec()));
    b.add(b"b/link", link, None).unwrap();
    let (root, _) = b.finish().unwrap();
    saver.finish().unwrap();

    let mut out = Vec::new();
    let rest = ingest::write_tar(&t.repo, &root, &mut out, &Progress::new()).unwrap();
    let dir = ingest::SPARSE_DIR.as_bytes().to_vec();
    let member = |i: &str| [dir.clone(), format!("/0-{i}").into_bytes()].concat();
    assert_eq!(rest.sparse.len(), 1);
    assert_eq!(rest.sparse[0].path, b"disk.img");
    assert_eq!(rest.sparse[0].size, sparse.len() as u64);
    assert_eq!(rest.sparse[0].mode, 0o640);
    assert_eq!(
        rest.sparse[0].regions,
        [
            Region {
                offset: 0,
                length: 4096,
                member: member("0")
            },
            // 5000 bytes at 4096 + 1 MiB: two blocks, the second partly zeros.
            Region {
                offset: 4096 + (1 << 20),
                length: 8192,
                member: member("1")
            },
        ]
    );
    assert_eq!(rest.sparse_dir, Some(dir.clone()));
    assert_eq!(rest.symlinks, [(b"b/link".to_vec(), 1_500_000_000)]);

    let mut a = tar::Archive::new(&out[..]);
    let mut seen = std::collections::BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path_bytes().into_owned();
        let kind = e.header().entry_type();
        let target = e.link_name_bytes().map(|l| l.into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        seen.insert(path, (kind, target, data));
    }
    let get = |p: &[u8]| {
        seen.get(p)
            .unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(p)))
    };
    assert_eq!(get(b"a/first").0, tar::EntryType::Regular);
    assert_eq!(get(b"a/first").2, shared);
    for p in [&b"b/c/second"[..], b"third"] {
        assert_eq!(get(p).0, tar::EntryType::Link);
        assert_eq!(get(p).1.as_deref(), Some(&b"a/first"[..]));
    }
    assert_eq!(get(b"copy").0, tar::EntryType::Regular);
    assert_eq!(get(b"copy").2, shared);
    assert_eq!(get(b"disk.img").2, b"");
    assert_eq!(get(&member("0")).2, &sparse[..4096]);
    let at = 4096 + (1 << 20);
    assert_eq!(get(&member("1")).2, &sparse[at..at + 8192]);
    assert_eq!(get(b"b/link").0, tar::EntryType::Symlink);

    // Read back, the links are the same file again.
    let saver = Saver::new(&t.repo, progress.clone(), true).unwrap();
    let mut b = TreeBuilder::new(&t.repo, &saver, &progress);
    let n = ingest::read_tar(&mut b, &mut &out[..], b"", &mut |_, _| true).unwrap();
    assert_eq!(n as usize, seen.len());
    assert!(b.take_warnings().is_empty());
    let (again, stats) = b.finish().unwrap();
    saver.finish().unwrap();
    // Seven files: three names of one, the copy, the sparse file and its two regions.
    assert_eq!(stats.files, 7);
    // Stored: the first name, the copy, the sparse file and its regions; the two hard
    // links are neither read nor reused from a parent.
    assert_eq!((stats.files_read, stats.files_reused), (5, 0));
    let found = ferry_repo::tree::find_path(&t.repo, &again, "b/c/second")
        .unwrap()
        .unwrap();
    assert_eq!(found.size, shared.len() as u64);
    let first = ferry_repo::tree::find_path(&t.repo, &again, "a/first")
        .unwrap()
        .unwrap();
    assert_eq!(found.content, first.content);
}

/// A tree split into several tar streams for as many `tar -x`: every file is in exactly
/// one part, every folder in each, another name of a file in its first name's part,
/// symlinks, FIFOs and sparse files in part 0 (the one that is finished), a folder's
/// files together (two `tar -x` in one folder wait on each other), and the parts'
/// bytes balanced.
#[test]
fn a_tree_split_into_tar_parts_holds_each_file_once() {
    use ferry_repo::ingest::{self, TarPart, TreeBuilder};
    use ferry_repo::saver::Saver;
    use ferry_repo::tree::{Name, NodeKind};
    use std::collections::BTreeMap;
    use std::io::Read as _;

    let t = new_repo();
    t.repo.load_index().unwrap();
    let progress = Arc::new(Progress::new());
    let saver = Saver::new(&t.repo, progress.clone(), true).unwrap();
    let mut b = TreeBuilder::new(&t.repo, &saver, &progress);
    let mut want: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for i in 0..60u64 {
        let data = bytes((i as usize * 7919) % 90_000, i);
        let path = format!("d{}/e{}/f{i}", i % 4, i % 3).into_bytes();
        b.add(
            &path,
            listed_file(100 + i, 1, data.len()),
            Some(&mut &data[..]),
        )
        .unwrap();
        want.insert(path, data);
    }
    let shared = bytes(50_000, 99);
    for p in ["x/one", "y/two", "z/three"] {
        b.add(
            p.as_bytes(),
            listed_file(7, 3, shared.len()),
            Some(&mut &shared[..]),
        )
        .unwrap();
    }
    let mut sparse = vec![0xab; 4096];
    sparse.resize(1 << 20, 0);
    let mut s = listed_file(8, 1, sparse.len());
    s.sparse = true;
    b.add(b"d1/disk.img", s, Some(&mut &sparse[..])).unwrap();
    let mut link = ingest::file_node(b"", 0o777, 0, 0, 1_500_000_000);
    link.kind = NodeKind::Symlink;
    link.size = 0;
    link.target = Some(Name(b"x/one".to_vec()));
    b.add(b"d2/link", link, None).unwrap();
    b.add(b"empty/dir", ingest::dir_node(b""), None).unwrap();
    let (root, _) = b.finish().unwrap();
    saver.finish().unwrap();

    let whole_progress = Progress::new();
    ingest::write_tar(&t.repo, &root, &mut std::io::sink(), &whole_progress).unwrap();
    let split_progress = Progress::new();
    let mut regular: BTreeMap<Vec<u8>, (usize, Vec<u8>)> = BTreeMap::new();
    let mut links = BTreeMap::new();
    let mut bytes_in = [0u64; 3];
    for part in TarPart::all(3) {
        let mut out = Vec::new();
        let rest = ingest::write_tar_part(&t.repo, &root, part, &mut out, &split_progress).unwrap();
        assert_eq!(rest.sparse.len(), usize::from(part.index == 0));
        assert_eq!(rest.symlinks.len(), usize::from(part.index == 0));
        let mut dirs = Vec::new();
        let mut a = tar::Archive::new(&out[..]);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path_bytes().into_owned();
            let kind = e.header().entry_type();
            match kind {
                tar::EntryType::Directory => dirs.push(path),
                tar::EntryType::Regular => {
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    bytes_in[part.index] += data.len() as u64;
                    let was = regular.insert(path.clone(), (part.index, data));
                    assert!(was.is_none(), "{path:?} twice");
                }
                tar::EntryType::Link => {
                    let target = e.link_name_bytes().unwrap().into_owned();
                    links.insert(path, (part.index, target));
                }
                tar::EntryType::Symlink => assert_eq!(part.index, 0),
                k => panic!("{k:?}"),
            }
        }
        for d in ["d0/", "d3/e2/", "empty/", "empty/dir/", "x/", "z/"] {
            assert!(dirs.contains(&d.as_bytes().to_vec()), "{d} in {part:?}");
        }
    }
    for (path, data) in &want {
        assert_eq!(&regular.get(path).unwrap().1, data);
    }
    assert_eq!(regular.get(&b"x/one"[..]).unwrap().1, shared);
    let first = regular.get(&b"x/one"[..]).unwrap().0;
    assert_eq!(links.len(), 2);
    for (_, (part, target)) in links {
        assert_eq!((part, target), (first, b"x/one".to_vec()));
    }
    assert_eq!(regular.get(&b"d1/disk.img"[..]).unwrap().0, 0);
    // Each folder's files (far below a run's 16 MiB) in one part, folders balanced.
    for (path, (part, _)) in &regular {
        if let Some(at) = path.iter().rposition(|&c| c == b'/')
            && path.starts_with(b"d")
        {
            let folder = &path[..at];
            for (other, (p, _)) in &regular {
                if other.len() > at
                    && other[..at] == *folder
                    && other[at] == b'/'
                    && !other[at + 1..].contains(&b'/')
                {
                    assert_eq!(p, part, "{path:?} and {other:?}");
                }
            }
        }
    }
    let (lo, hi) = (
        bytes_in.iter().min().unwrap(),
        bytes_in.iter().max().unwrap(),
    );
    assert!(*lo > 0 && hi - lo < 600_000, "{bytes_in:?}");
    let (w, s) = (whole_progress.snapshot(), split_progress.snapshot());
    assert_eq!((w.files_done, w.bytes_done), (s.files_done, s.bytes_done));
}

/// Many small blobs read at once (a snapshot's object documents): each comes back in
/// the order asked, a blob named twice comes back twice, across several packs, and a
/// blob no index knows is `BlobMissing`.
#[test]
fn many_blobs_are_read_by_pack_in_the_order_asked() {
    let t = common::new_repo();
    let src = tempfile::tempdir().unwrap();
    // Small packs (1 MiB): 300 files of 2-12 KiB fill several.
    let mut want = Vec::new();
    for i in 0..300u64 {
        let data = common::bytes(2048 + (i as usize * 37) % 10240, i);
        common::write_file(
            &src.path().join(format!("f{i:03}")),
            &data,
            0o644,
            1_700_000_000,
        );
        want.push(data);
    }
    let snap = common::do_backup(&t.repo, src.path());
    let mut files: Vec<_> = walked_files(&t.repo, &snap.tree)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    // The trees read a level at a time give the same files in the same order.
    let below = ferry_repo::tree::files_below(&t.repo, &snap.tree).unwrap();
    assert_eq!(
        below
            .iter()
            .map(|n| n.name.lossy().to_string())
            .collect::<Vec<_>>(),
        files
            .iter()
            .map(|n| n.name.lossy().to_string())
            .collect::<Vec<_>>()
    );
    files.sort_by_key(|f| f.name.lossy().to_string());
    assert_eq!(files.len(), 300);
    let packs: std::collections::BTreeSet<_> = files
        .iter()
        .flat_map(|f| f.content.iter())
        .map(|id| t.repo.index().get(id).unwrap().pack)
        .collect();
    assert!(packs.len() > 1, "the test wants several packs");

    // Backwards, with the first file's blobs asked for again at the end.
    let mut ids: Vec<_> = files.iter().rev().flat_map(|f| f.content.clone()).collect();
    ids.extend(files[0].content.iter().copied());
    let fresh = t.reopen();
    let got = ferry_repo::reads::load_blobs(&fresh, &ids, Some(3)).unwrap();
    assert_eq!(got.len(), ids.len());
    let mut at = 0;
    for (f, data) in files.iter().zip(&want).rev() {
        let n = f.content.len();
        assert_eq!(&got[at..at + n].concat(), data, "{}", f.name.lossy());
        at += n;
    }
    assert_eq!(got[at..].concat(), want[0]);

    let unknown = ferry_repo::id::Id::hash(b"in no pack");
    let err = ferry_repo::reads::load_blobs(&fresh, &[ids[0], unknown], None).unwrap_err();
    assert!(
        matches!(err, Error::BlobMissing { id } if id == unknown),
        "{err}"
    );
}
