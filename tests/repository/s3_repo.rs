//! A whole repository on S3 (moto on 127.0.0.1): the engine through the real SDK, and
//! the `ferry` binary with an s3:// location.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::process::Command;
use std::sync::Arc;

use common::*;
use ferry_repo::backend::s3::S3Backend;
use ferry_repo::backup::{self, BackupOptions};
use ferry_repo::progress::Progress;
use ferry_repo::{Error, Repository, forget, prune};
use support::moto::Moto;

#[test]
fn a_repository_on_s3_backs_up_restores_checks_and_prunes() {
    let moto = Moto::start();
    let rt = runtime();
    rt.block_on(moto.create_bucket("backups"));
    let backend = Arc::new(
        rt.block_on(S3Backend::connect(moto.s3_config("backups", "team/ferry")))
            .unwrap(),
    );
    let mut opts = init_opts();
    opts.pack_size = 20 << 20; // packs over 16 MiB go up in parts
    let repo = Repository::init(backend.clone(), rt.handle().clone(), &secret(), &opts).unwrap();
    // A second init at the same place is refused.
    let again =
        Repository::init(backend.clone(), rt.handle().clone(), &secret(), &opts).unwrap_err();
    assert!(matches!(again, Error::AlreadyExists { .. }), "{again}");

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(&src.join("big.bin"), &bytes(40 << 20, 1), 0o644, 1);
    for i in 0..50 {
        write_file(
            &src.join(format!("small/{i}.txt")),
            format!("file {i}\n").repeat(i + 1).as_bytes(),
            0o600,
            2,
        );
    }
    let p = Arc::new(Progress::new());
    let s1 = backup::backup(
        &repo,
        &BackupOptions {
            source: src.clone(),
            ..Default::default()
        },
        &p,
    )
    .unwrap()
    .snapshot;
    std::fs::remove_file(src.join("big.bin")).unwrap();
    write_file(&src.join("other.bin"), &bytes(3 << 20, 2), 0o644, 3);
    let s2 = backup::backup(
        &repo,
        &BackupOptions {
            source: src.clone(),
            ..Default::default()
        },
        &p,
    )
    .unwrap()
    .snapshot;
    assert_eq!(s2.parent, Some(s1.id));

    // A fresh client sees the same repository.
    let repo = Repository::open(backend.clone(), rt.handle().clone(), &secret()).unwrap();
    let out = dir.path().join("out");
    do_restore(&repo, &s2, &out, "").unwrap();
    assert_same_tree(&src, &out);
    let r = check_repo(&repo, true);
    assert!(r.ok(), "{:?}", r.errors);

    forget::forget(
        &repo,
        &forget::Retention {
            last: Some(1),
            ..Default::default()
        },
        false,
    )
    .unwrap();
    let pr = prune::prune(&repo, &prune::PruneOptions::default(), &p).unwrap();
    assert!(pr.bytes_after + (30 << 20) < pr.bytes_before, "{pr:?}");
    let r = check_repo(&repo, true);
    assert!(r.ok(), "{:?}", r.errors);
    let out2 = dir.path().join("out2");
    do_restore(&repo, &s2, &out2, "").unwrap();
    assert_same_tree(&src, &out2);
}

#[test]
fn the_binary_uses_s3_locations() {
    let moto = Moto::start();
    let rt = runtime();
    rt.block_on(moto.create_bucket("cli"));
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("src/a.txt"), b"through s3", 0o644, 1);
    let ferry = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args([
                "--s3-endpoint",
                &moto.endpoint,
                "--s3-path-style",
                "--s3-region",
                "us-east-1",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", support::moto::ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", support::moto::SECRET_ACCESS_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.path().join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
            .env("FERRY_PASSWORD", "pw")
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .output()
            .unwrap()
    };
    let show = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let o = ferry(&["-r", "s3://cli/repo", "init"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = ferry(&[
        "-r",
        "s3://cli/repo",
        "backup",
        dir.path().join("src").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let target = dir.path().join("out");
    let o = ferry(&[
        "-r",
        "s3://cli/repo",
        "restore",
        "latest",
        "-t",
        target.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"through s3");
    let o = ferry(&["-r", "s3://no-such-bucket/repo", "snapshots"]);
    assert!(!o.status.success());
    let msg = show(&o);
    assert!(msg.contains("no-such-bucket"), "{msg}");
}
