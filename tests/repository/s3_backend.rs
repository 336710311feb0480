//! The S3 backend against a local moto server (`pip install 'moto[server]'`).
//!
//! Every test starts its own server on 127.0.0.1 and uses static test credentials:
//! nothing here talks to AWS or any other host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::Path;

use bytes::Bytes;
use ferry_repo::backend::s3::{PART_SIZE, S3Backend, SINGLE_PUT_MAX};
use ferry_repo::backend::{Backend, BackendError, FileInfo, FileKind};
use futures::stream::{self, StreamExt, TryStreamExt};
use support::moto::Moto;

/// Starts moto, creates `bucket` and connects a backend to `s3://bucket/prefix`.
async fn setup(bucket: &str, prefix: &str) -> (Moto, S3Backend) {
    let moto = Moto::start();
    moto.create_bucket(bucket).await;
    let backend = S3Backend::connect(moto.s3_config(bucket, prefix))
        .await
        .unwrap();
    (moto, backend)
}

/// Deterministic, incompressible-looking bytes (xorshift), so misplaced parts show.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sorted(mut files: Vec<FileInfo>) -> Vec<FileInfo> {
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

fn info(name: &str, size: u64) -> FileInfo {
    FileInfo {
        name: name.to_string(),
        size,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_size_and_remove() {
    let (moto, backend) = setup("basic", "repo").await;
    assert_eq!(backend.location(), "s3://basic/repo");
    assert_eq!(backend.connections(), 8);

    backend.create().await.unwrap();
    backend
        .write(FileKind::Config, "config", Bytes::from_static(b"cfg"))
        .await
        .unwrap();
    backend
        .write(FileKind::Key, "k1", Bytes::from_static(b"key one"))
        .await
        .unwrap();
    backend
        .write(FileKind::Snapshot, "s1", Bytes::new())
        .await
        .unwrap();

    assert_eq!(
        &backend.read(FileKind::Config, "config").await.unwrap()[..],
        b"cfg"
    );
    assert_eq!(
        &backend.read(FileKind::Key, "k1").await.unwrap()[..],
        b"key one"
    );
    assert!(
        backend
            .read(FileKind::Snapshot, "s1")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(backend.size(FileKind::Key, "k1").await.unwrap(), 7);
    assert_eq!(backend.size(FileKind::Snapshot, "s1").await.unwrap(), 0);
    assert_eq!(
        backend.list(FileKind::Config).await.unwrap(),
        vec![info("config", 3)]
    );
    assert_eq!(
        backend.list(FileKind::Key).await.unwrap(),
        vec![info("k1", 7)]
    );

    // The layout in the bucket.
    let keys = raw_keys(&moto, "basic").await;
    assert_eq!(
        keys,
        vec!["repo/config", "repo/keys/k1", "repo/snapshots/s1"]
    );

    backend.remove(FileKind::Key, "k1").await.unwrap();
    backend.remove(FileKind::Key, "k1").await.unwrap();
    backend
        .remove(FileKind::Lock, "never-written")
        .await
        .unwrap();
    assert!(
        backend
            .read(FileKind::Key, "k1")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(backend.list(FileKind::Key).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_are_not_found() {
    let (_moto, backend) = setup("missing", "").await;
    match backend.read(FileKind::Index, "nope").await {
        Err(BackendError::NotFound {
            kind,
            name,
            location,
        }) => {
            assert_eq!(kind, FileKind::Index);
            assert_eq!(name, "nope");
            assert_eq!(location, "s3://missing");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(
        backend
            .read_range(FileKind::Pack, "abcd", 0, 10)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        backend
            .size(FileKind::Snapshot, "nope")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(backend.list(FileKind::Pack).await.unwrap().is_empty());
    assert!(backend.list(FileKind::Config).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_range_reads_exactly_the_bytes_asked() {
    let (_moto, backend) = setup("ranges", "r").await;
    let data = pattern(1000, 7);
    backend
        .write(FileKind::Pack, "ab01", Bytes::from(data.clone()))
        .await
        .unwrap();
    for (offset, length) in [(0u64, 1u64), (0, 1000), (10, 90), (999, 1), (500, 500)] {
        let got = backend
            .read_range(FileKind::Pack, "ab01", offset, length)
            .await
            .unwrap();
        let (o, l) = (offset as usize, length as usize);
        assert_eq!(&got[..], &data[o..o + l], "range {offset}+{length}");
    }
    assert!(
        backend
            .read_range(FileKind::Pack, "ab01", 5, 0)
            .await
            .unwrap()
            .is_empty()
    );
    // Past the end: partly, and wholly.
    let err = backend
        .read_range(FileKind::Pack, "ab01", 990, 20)
        .await
        .unwrap_err();
    assert!(!err.is_not_found(), "{err}");
    let err = backend
        .read_range(FileKind::Pack, "ab01", 2000, 10)
        .await
        .unwrap_err();
    assert!(!err.is_not_found(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_paginates_and_strips_folders() {
    let (moto, backend) = setup("listing", "big").await;
    const COUNT: usize = 1100;
    stream::iter(0..COUNT)
        .map(|i| {
            let backend = &backend;
            async move {
                let data = Bytes::from(vec![b'x'; i % 7]);
                backend
                    .write(FileKind::Index, &format!("index-{i:05}"), data)
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    // The server does page: one request does not return them all.
    let first_page = moto
        .client()
        .list_objects_v2()
        .bucket("listing")
        .prefix("big/index/")
        .send()
        .await
        .unwrap();
    assert_eq!(first_page.is_truncated(), Some(true));
    assert!(first_page.contents().len() < COUNT);

    let listed = sorted(backend.list(FileKind::Index).await.unwrap());
    assert_eq!(listed.len(), COUNT);
    for (i, file) in listed.iter().enumerate() {
        assert_eq!(*file, info(&format!("index-{i:05}"), (i % 7) as u64));
    }

    for name in ["00aa", "00bb", "ff01", "7c"] {
        backend
            .write(FileKind::Pack, name, Bytes::from_static(b"pack"))
            .await
            .unwrap();
    }
    assert_eq!(
        sorted(backend.list(FileKind::Pack).await.unwrap()),
        vec![
            info("00aa", 4),
            info("00bb", 4),
            info("7c", 4),
            info("ff01", 4)
        ]
    );
    assert!(backend.list(FileKind::Snapshot).await.unwrap().is_empty());
    assert!(backend.list(FileKind::Config).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_file_uploads_in_parts_and_consumes_the_file() {
    let (moto, backend) = setup("multipart", "mp").await;
    let dir = tempfile::tempdir().unwrap();

    // 40 MiB: five 8 MiB parts.
    let size = 40 * 1024 * 1024;
    assert!(size as u64 > SINGLE_PUT_MAX);
    let data = pattern(size, 42);
    let path = dir.path().join("staged-pack");
    std::fs::write(&path, &data).unwrap();
    backend
        .write_file(FileKind::Pack, "beef", &path)
        .await
        .unwrap();
    assert!(
        !path.exists(),
        "the staged file must be removed after the upload"
    );

    assert_eq!(
        backend.size(FileKind::Pack, "beef").await.unwrap(),
        size as u64
    );
    let back = backend.read(FileKind::Pack, "beef").await.unwrap();
    assert!(
        back[..] == data[..],
        "the object read back differs from the file"
    );

    // Ranges across the part boundaries.
    let part = PART_SIZE as usize;
    for (offset, length) in [
        (part - 100, 200),
        (2 * part - 1, 2),
        (part - 1, part + 2),
        (size - 10, 10),
    ] {
        let got = backend
            .read_range(FileKind::Pack, "beef", offset as u64, length as u64)
            .await
            .unwrap();
        assert!(
            got[..] == data[offset..offset + length],
            "range {offset}+{length} differs"
        );
    }
    assert_eq!(
        backend.list(FileKind::Pack).await.unwrap(),
        vec![info("beef", size as u64)]
    );

    // No multipart upload is left behind.
    let uploads = moto
        .client()
        .list_multipart_uploads()
        .bucket("multipart")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_file_small_and_failures_keep_the_file() {
    let (moto, backend) = setup("smallfile", "").await;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(1024 * 1024 + 3, 9);
    let path = dir.path().join("small");
    std::fs::write(&path, &data).unwrap();
    backend
        .write_file(FileKind::Index, "i1", &path)
        .await
        .unwrap();
    assert!(!path.exists());
    assert!(backend.read(FileKind::Index, "i1").await.unwrap()[..] == data[..]);

    // A failed upload (no bucket) leaves the local file for a retry.
    let gone = S3Backend::connect(moto.s3_config("no-such-bucket", "x"))
        .await
        .unwrap();
    for len in [10usize, 17 * 1024 * 1024] {
        std::fs::write(&path, pattern(len, 3)).unwrap();
        let err = gone
            .write_file(FileKind::Pack, "dead", &path)
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::NoRepository { .. }), "{err}");
        assert!(path.exists(), "a failed upload must keep the local file");
    }

    let missing = dir.path().join("not-there");
    let err = backend
        .write_file(FileKind::Pack, "abcd", Path::new(&missing))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Io { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_no_repository() {
    let moto = Moto::start();
    let backend = S3Backend::connect(moto.s3_config("not-created", "repo"))
        .await
        .unwrap();
    let err = backend.create().await.unwrap_err();
    match &err {
        BackendError::NoRepository { location } => {
            assert!(location.starts_with("s3://not-created/repo"), "{location}");
            assert!(err.to_string().contains("create the bucket"), "{err}");
        }
        other => panic!("expected NoRepository, got {other:?}"),
    }
    assert!(matches!(
        backend.list(FileKind::Snapshot).await,
        Err(BackendError::NoRepository { .. })
    ));
    assert!(matches!(
        backend.read(FileKind::Config, "config").await,
        Err(BackendError::NoRepository { .. })
    ));
    assert!(matches!(
        backend
            .write(FileKind::Config, "config", Bytes::new())
            .await,
        Err(BackendError::NoRepository { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_an_existing_repository() {
    let (moto, backend) = setup("existing", "one").await;
    backend.create().await.unwrap();
    backend
        .write(FileKind::Config, "config", Bytes::from_static(b"c"))
        .await
        .unwrap();
    let err = backend.create().await.unwrap_err();
    assert!(matches!(err, BackendError::InvalidLocation { .. }), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");

    // Another prefix in the same bucket is free.
    let other = S3Backend::connect(moto.s3_config("existing", "two"))
        .await
        .unwrap();
    other.create().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_do_not_see_each_other() {
    let moto = Moto::start();
    moto.create_bucket("shared").await;
    let connect = |prefix: &'static str| {
        let cfg = moto.s3_config("shared", prefix);
        async move { S3Backend::connect(cfg).await.unwrap() }
    };
    let root = connect("").await;
    let a = connect("team").await;
    let b = connect("team2/").await;
    let nested = connect("team/sub").await;
    assert_eq!(b.location(), "s3://shared/team2");

    for (backend, tag) in [(&root, "root"), (&a, "a"), (&b, "b"), (&nested, "nested")] {
        backend.create().await.unwrap();
        backend
            .write(
                FileKind::Config,
                "config",
                Bytes::from(tag.as_bytes().to_vec()),
            )
            .await
            .unwrap();
        backend
            .write(FileKind::Snapshot, tag, Bytes::from_static(b"s"))
            .await
            .unwrap();
        backend
            .write(
                FileKind::Pack,
                &format!("{tag}-pack"),
                Bytes::from_static(b"p"),
            )
            .await
            .unwrap();
    }
    for (backend, tag) in [(&root, "root"), (&a, "a"), (&b, "b"), (&nested, "nested")] {
        assert_eq!(
            &backend.read(FileKind::Config, "config").await.unwrap()[..],
            tag.as_bytes()
        );
        assert_eq!(
            backend.list(FileKind::Snapshot).await.unwrap(),
            vec![info(tag, 1)],
            "{tag}"
        );
        assert_eq!(
            backend.list(FileKind::Pack).await.unwrap(),
            vec![info(&format!("{tag}-pack"), 1)],
            "{tag}"
        );
        assert_eq!(backend.list(FileKind::Config).await.unwrap().len(), 1);
        assert!(backend.create().await.is_err());
    }
    assert!(
        a.read(FileKind::Snapshot, "b")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        root.read(FileKind::Snapshot, "a")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// Every key in `bucket`, sorted.
async fn raw_keys(moto: &Moto, bucket: &str) -> Vec<String> {
    let listed = moto
        .client()
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

/// An HTTP response with an S3 XML error body.
fn canned_response(status: &str, error_xml: &str) -> String {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{error_xml}");
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A fake S3 endpoint on 127.0.0.1 that answers every request with `response` and
/// counts the requests.
fn canned_server(response: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            // Read the request head (the requests here have no body).
            let mut buf = [0u8; 8192];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (endpoint, count)
}

fn with_endpoint(endpoint: &str, bucket: &str) -> ferry_repo::backend::s3::S3Config {
    ferry_repo::backend::s3::S3Config {
        bucket: bucket.to_string(),
        prefix: "p".to_string(),
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".to_string()),
        path_style: true,
        static_credentials: Some(("test".to_string(), "test".to_string())),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified() {
    let denied = canned_response(
        "403 Forbidden",
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
    );
    let busy = canned_response(
        "503 Slow Down",
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
    );

    let (endpoint, _) = canned_server(denied);
    let backend = S3Backend::connect(with_endpoint(&endpoint, "b"))
        .await
        .unwrap();
    let err = backend.read(FileKind::Index, "i").await.unwrap_err();
    assert!(
        matches!(err, BackendError::PermissionDenied { .. }),
        "{err}"
    );
    let err = backend.create().await.unwrap_err();
    assert!(
        matches!(err, BackendError::PermissionDenied { .. }),
        "{err}"
    );

    // 503 SlowDown: reported as transient after one request (the backend does not
    // retry: `Retrying` above it does, see tests/s3_faults.rs).
    let (endpoint, requests) = canned_server(busy);
    let backend = S3Backend::connect(with_endpoint(&endpoint, "b"))
        .await
        .unwrap();
    let err = backend.list(FileKind::Snapshot).await.unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::Remote {
                transient: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("SlowDown"), "{err}");
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Nothing listening: a transient dispatch failure.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backend = S3Backend::connect(with_endpoint(&format!("http://127.0.0.1:{port}"), "b"))
        .await
        .unwrap();
    let err = backend.size(FileKind::Key, "k").await.unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::Remote {
                transient: true,
                ..
            }
        ),
        "{err}"
    );
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn contains(&self, text: &str) -> bool {
        String::from_utf8_lossy(&self.0.lock().unwrap()).contains(text)
    }
}

// One thread, so that the thread-local tracing subscriber sees the upload's events.
#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_multipart_upload_is_aborted() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("ferry=debug")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (moto, backend) = setup("cancelled", "").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, pattern(40 * 1024 * 1024, 5)).unwrap();
    let client = moto.client();
    let pending_uploads = || async {
        client
            .list_multipart_uploads()
            .bucket("cancelled")
            .send()
            .await
            .unwrap()
            .uploads()
            .len()
    };

    // Drive the upload until the backend knows its upload id, then cancel it by
    // dropping it.
    let mut upload = Box::pin(backend.write_file(FileKind::Pack, "cafe", &path));
    let mut started = false;
    for _ in 0..2000 {
        tokio::select! {
            result = &mut upload => { result.unwrap(); break; }
            _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {}
        }
        if log.contains("multipart upload started") {
            started = true;
            break;
        }
    }
    drop(upload);
    assert!(started, "the upload finished or never started");
    assert!(path.exists(), "a cancelled upload must keep the local file");
    for _ in 0..100 {
        if pending_uploads().await == 0 {
            assert!(
                backend
                    .size(FileKind::Pack, "cafe")
                    .await
                    .unwrap_err()
                    .is_not_found()
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the cancelled multipart upload was not aborted");
}
