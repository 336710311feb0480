//! A second, signature-checking S3 implementation (s3s-fs, in process on 127.0.0.1):
//! the repository through the S3 backend against a server that verifies every SigV4
//! signature, and a wrong secret key refused as a permission error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::sync::Arc;

use common::*;
use ferry_repo::Repository;
use ferry_repo::backend::s3::S3Backend;
use ferry_repo::backend::{Backend, BackendError};
use ferry_repo::backup::{self, BackupOptions};
use ferry_repo::progress::Progress;
use support::s3s::{S3sFs, SECRET_ACCESS_KEY as SK};

#[test]
fn a_repository_works_against_a_signature_checking_s3() {
    let rt = runtime();
    let server = S3sFs::start(&rt, &["repo"]);
    let backend = Arc::new(
        rt.block_on(S3Backend::connect(server.config("repo", "ferry", SK)))
            .unwrap(),
    );
    let mut opts = init_opts();
    opts.pack_size = 20 << 20; // a pack over 16 MiB goes up in parts
    let repo = Repository::init(backend.clone(), rt.handle().clone(), &secret(), &opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(&src.join("big.bin"), &bytes(24 << 20, 3), 0o644, 1);
    write_file(&src.join("note.txt"), b"signed all the way", 0o600, 2);
    let p = Arc::new(Progress::new());
    let snap = backup::backup(
        &repo,
        &BackupOptions {
            source: src.clone(),
            ..Default::default()
        },
        &p,
    )
    .unwrap()
    .snapshot;
    let repo = Repository::open(backend, rt.handle().clone(), &secret()).unwrap();
    let out = dir.path().join("out");
    do_restore(&repo, &snap, &out, "").unwrap();
    assert_same_tree(&src, &out);
    let r = check_repo(&repo, true);
    assert!(r.ok(), "{:?}", r.errors);
}

#[test]
fn a_wrong_secret_key_is_a_permission_error() {
    let rt = runtime();
    let server = S3sFs::start(&rt, &["repo"]);
    let backend = rt
        .block_on(S3Backend::connect(server.config(
            "repo",
            "ferry",
            "not-the-secret-key-at-all",
        )))
        .unwrap();
    let err = rt
        .block_on(backend.list(ferry_repo::backend::FileKind::Snapshot))
        .unwrap_err();
    assert!(
        matches!(err, BackendError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("credentials"), "{err}");
}
