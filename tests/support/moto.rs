//! A throwaway moto S3 server on 127.0.0.1 for integration tests.
//!
//! [`Moto::start`] runs `moto_server` (or `python3 -m moto.server`) on a free local port
//! and waits until it answers; dropping the [`Moto`] stops it. Clients made here use
//! static test credentials and talk to that local endpoint only: nothing leaves the
//! machine. Install the server with `pip install 'moto[server]>=5.2.5'`: moto 5.2.1
//! answers CompleteMultipartUpload with a wrong XML root element, which the SDK rejects
//! (5.2.5 is known to work).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use ferry_repo::backend::s3::S3Config;

/// How long the server may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Tries per command: a failure to start may be a port taken between probe and bind.
const TRIES_PER_COMMAND: usize = 3;

pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";
pub const REGION: &str = "us-east-1";

/// A running moto server, stopped when dropped.
pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    child: Child,
    /// The server's output, kept for the length of the test.
    _log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts a moto server on a free 127.0.0.1 port and waits until it answers HTTP.
    /// Panics, saying how to install moto, if it cannot be started.
    pub fn start() -> Moto {
        let commands: [(&str, &[&str]); 2] =
            [("moto_server", &[]), ("python3", &["-m", "moto.server"])];
        let mut failures = Vec::new();
        for (program, base_args) in commands {
            for _ in 0..TRIES_PER_COMMAND {
                match try_start(program, base_args) {
                    Ok(moto) => return moto,
                    Err(Failure::NotInstalled(why)) => {
                        failures.push(why);
                        break;
                    }
                    Err(Failure::Retry(why)) => failures.push(why),
                }
            }
        }
        panic!(
            "could not start a moto S3 server for the S3 tests; install it with \
             `pip install 'moto[server]>=5.2.5'` (so that `moto_server` is on PATH or \
             `python3 -m moto.server` works). Attempts:\n  {}",
            failures.join("\n  ")
        );
    }

    /// An S3 client for this server with static test credentials.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "moto-test",
            ))
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Creates a bucket on this server.
    pub async fn create_bucket(&self, name: &str) {
        if let Err(e) = self.client().create_bucket().bucket(name).send().await {
            panic!(
                "creating bucket {name} on moto failed: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            );
        }
    }

    /// The configuration of a repository at `s3://bucket/prefix` on this server.
    pub fn s3_config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: Some(self.endpoint.clone()),
            region: Some(REGION.to_string()),
            path_style: true,
            profile: None,
            static_credentials: Some((ACCESS_KEY_ID.to_string(), SECRET_ACCESS_KEY.to_string())),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Failure {
    /// The command cannot run at all: try the next one.
    NotInstalled(String),
    /// It ran but did not come up: worth another try on another port.
    Retry(String),
}

fn try_start(program: &str, base_args: &[&str]) -> Result<Moto, Failure> {
    let port = free_port().map_err(|e| Failure::Retry(format!("no free port: {e}")))?;
    let shown = format!("`{program} {} -H 127.0.0.1 -p {port}`", base_args.join(" "));
    let log = tempfile::NamedTempFile::new()
        .map_err(|e| Failure::Retry(format!("{shown}: no temporary log file: {e}")))?;
    let (stdout, stderr) = match (log.reopen(), log.reopen()) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return Err(Failure::Retry(format!(
                "{shown}: cannot open the log file: {e}"
            )));
        }
    };
    let mut child = Command::new(program)
        .args(base_args)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| Failure::NotInstalled(format!("{shown}: {e}")))?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let output = std::fs::read_to_string(log.path()).unwrap_or_default();
            let tail: String = output
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ");
            let why = format!("{shown} exited with {status}: {tail}");
            // A missing module or command exits at once with a telling message; a port
            // taken by someone else is worth another try.
            return Err(if output.contains("Address already in use") {
                Failure::Retry(why)
            } else {
                Failure::NotInstalled(why)
            });
        }
        if answers_http(port) {
            // Make sure it is our server that answered, not another one on the port.
            if let Ok(None) = child.try_wait() {
                return Ok(Moto {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    child,
                    _log: log,
                });
            }
            continue;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::Retry(format!(
                "{shown} did not answer within {START_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn answers_http(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(250)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}
