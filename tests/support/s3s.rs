//! A second, signature-checking S3 for the tests: s3s-fs, served in the test's own
//! process on an ephemeral 127.0.0.1 port. Every request's SigV4 signature is verified
//! against one static key pair, so a client that signs wrongly (or with another secret)
//! is refused, where moto accepts anything. Dropping the [`S3sFs`] stops the server.

#![allow(dead_code)]

use ferry_repo::backend::s3::S3Config;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;

pub const ACCESS_KEY_ID: &str = "ferry-test-access";
pub const SECRET_ACCESS_KEY: &str = "ferry-test-secret-key-0123456789";
pub const REGION: &str = "us-east-1";

/// An s3s-fs server, stopped when dropped.
pub struct S3sFs {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
    /// The folder served, when it is this server's own.
    _root: Option<tempfile::TempDir>,
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3sFs {
    /// Serves a fresh folder holding `buckets` on the runtime `rt`.
    pub fn start(rt: &tokio::runtime::Runtime, buckets: &[&str]) -> S3sFs {
        let root = tempfile::tempdir().unwrap();
        let mut server = S3sFs::start_in(rt, root.path(), buckets);
        server._root = Some(root);
        server
    }

    /// Serves the folder `root` (made if missing), with `buckets` in it, on the
    /// runtime `rt`.
    pub fn start_in(
        rt: &tokio::runtime::Runtime,
        root: &std::path::Path,
        buckets: &[&str],
    ) -> S3sFs {
        for b in buckets {
            std::fs::create_dir_all(root.join(b)).unwrap();
        }
        let fs = s3s_fs::FileSystem::new(root).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
        ));
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
            _root: None,
        }
    }

    /// The repository `s3://bucket/prefix` on this server, signed with `secret`.
    pub fn config(&self, bucket: &str, prefix: &str, secret: &str) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint.clone()),
            region: Some(REGION.into()),
            path_style: true,
            profile: None,
            static_credentials: Some((ACCESS_KEY_ID.into(), secret.into())),
        }
    }
}
