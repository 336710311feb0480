//! A second, signature-checking S3 implementation (s3s-fs, in process on 127.0.0.1):
//! the repository through the S3 backend against a server that verifies every SigV4
//! signature, and a wrong secret key refused as a permission error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;

use common::*;
use ferry_repo::Repository;
use ferry_repo::backend::s3::{S3Backend, S3Config};
use ferry_repo::backend::{Backend, BackendError};
use ferry_repo::backup::{self, BackupOptions};
use ferry_repo::progress::Progress;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;

const AK: &str = "ferry-test-access";
const SK: &str = "ferry-test-secret-key-0123456789";

/// An s3s-fs server on an ephemeral 127.0.0.1 port, stopped when dropped.
struct S3sFs {
    endpoint: String,
    task: tokio::task::JoinHandle<()>,
    _root: tempfile::TempDir,
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start(rt: &tokio::runtime::Runtime, buckets: &[&str]) -> S3sFs {
    let root = tempfile::tempdir().unwrap();
    for b in buckets {
        std::fs::create_dir(root.path().join(b)).unwrap();
    }
    let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
    let service = builder.build();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let task = rt.spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let svc = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), svc)
                    .await;
            });
        }
    });
    S3sFs {
        endpoint,
        task,
        _root: root,
    }
}

fn config(server: &S3sFs, bucket: &str, secret: &str) -> S3Config {
    S3Config {
        bucket: bucket.into(),
        prefix: "ferry".into(),
        endpoint: Some(server.endpoint.clone()),
        region: Some("us-east-1".into()),
        path_style: true,
        profile: None,
        static_credentials: Some((AK.into(), secret.into())),
    }
}

#[test]
fn a_repository_works_against_a_signature_checking_s3() {
    let rt = runtime();
    let server = start(&rt, &["repo"]);
    let backend = Arc::new(
        rt.block_on(S3Backend::connect(config(&server, "repo", SK)))
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
    let server = start(&rt, &["repo"]);
    let backend = rt
        .block_on(S3Backend::connect(config(
            &server,
            "repo",
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
