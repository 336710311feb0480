//! Pod exec over WebSockets, as a real API server serves it to kubectl (1.30+) and kube-rs:
//! `GET` or `POST /api/v1/namespaces/{ns}/pods/{name}/exec?command=...&container=...&
//! stdin=...&stdout=...&stderr=...&tty=...` upgraded to a WebSocket with the subprotocol
//! `v5.channel.k8s.io` (preferred) or `v4.channel.k8s.io`. Every message is binary, its
//! first byte the channel: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (Success, or
//! Failure with reason `NonZeroExitCode` and the exit code in `details.causes`), 4 terminal
//! resize (ignored: there is no terminal), 255 (v5) the client closed a stream: `[255, 0]`
//! closes the process's stdin. SPDY is not served: kubectl falls back to it only when the
//! WebSocket upgrade fails, and then gets the same `Status` error.
//!
//! Output is read in chunks of 64 KiB and sent with backpressure (a few chunks in flight
//! at most), stdin likewise, so GiBs stream through `tar` in bounded memory. The process
//! (`runtime.rs`) is killed with its process group when the client leaves, and when the
//! sandbox stops ([`Sessions::stop`]). When the process ends, the Status and a close
//! frame go out, and the connection stays open (reading and dropping what the client
//! still sends) until the client leaves or the sandbox stops: a client still sending
//! into a closed connection gets a reset, which loses the output and the Status in
//! flight.
//!
//! Owns the exec protocol. Must not decide what the container sees (`runtime.rs` does)
//! nor authorize (`server.rs` does, before calling [`serve`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

use super::runtime::{ContainerView, Process, exit_code};
use super::server::{Body, Shared};
use super::store::Key;
use super::verbs::{ApiError, ApiResult};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

/// How much of the process's output one message carries at most.
const CHUNK: usize = 64 * 1024;
/// Messages waiting for the WebSocket at most (per direction).
const IN_FLIGHT: usize = 4;

/// The subprotocols served, preferred first.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The pod an exec request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
}

impl Target {
    /// `Some` for `/api/v1/namespaces/{ns}/pods/{name}/exec`.
    pub fn parse(segs: &[&str]) -> Option<Target> {
        match segs {
            ["api", "v1", "namespaces", ns, "pods", pod, "exec"] => Some(Target {
                namespace: ns.to_string(),
                pod: pod.to_string(),
            }),
            _ => None,
        }
    }
}

/// The exec sessions of one sandbox, so that stopping the sandbox stops their processes.
pub struct Sessions {
    stop: watch::Sender<bool>,
    running: watch::Sender<usize>,
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions {
            stop: watch::channel(false).0,
            running: watch::channel(0).0,
        }
    }
}

impl Sessions {
    /// Kills every running exec's process and waits (a few seconds at most) until they
    /// are reaped.
    pub async fn stop(&self) {
        // Stored even with no session running, so that one starting later sees it.
        self.stop.send_replace(true);
        let mut running = self.running.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), running.wait_for(|n| *n == 0)).await;
    }

    fn enter(&self) -> SessionGuard {
        self.running.send_modify(|n| *n += 1);
        SessionGuard(self.running.clone())
    }
}

struct SessionGuard(watch::Sender<usize>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// What the query asks for.
struct Options {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

fn parse_options(query: Option<&str>) -> ApiResult<Options> {
    let mut o = Options {
        command: Vec::new(),
        container: None,
        stdin: false,
        stdout: false,
        stderr: false,
        tty: false,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = super::server::percent_decode(k, true);
        let v = super::server::percent_decode(v, true);
        let on = matches!(v.as_str(), "true" | "1" | "True" | "TRUE");
        match k.as_str() {
            "command" => o.command.push(v),
            "container" => o.container = Some(v),
            "stdin" | "input" => o.stdin = on,
            "stdout" | "output" => o.stdout = on,
            "stderr" | "error" => o.stderr = on,
            "tty" => o.tty = on,
            _ => {}
        }
    }
    if o.command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    if !(o.stdin || o.stdout || o.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least one of stdin, stdout, stderr",
        ));
    }
    Ok(o)
}

fn header_has(req: &Request<Incoming>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// The subprotocol to speak: the first of ours the client offers.
fn negotiate(req: &Request<Incoming>) -> Option<&'static str> {
    let offered: Vec<String> = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .map(|p| p.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    PROTOCOLS
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
}

/// Serves one exec request (already authorized): checks the pod and container, then
/// upgrades to a WebSocket and runs the command.
pub async fn serve(
    shared: &Arc<Shared>,
    target: Target,
    mut req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    if req.method() != Method::GET && req.method() != Method::POST {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow {} on pods/exec: use GET or POST",
                req.method()
            ),
        ));
    }
    let opts = parse_options(req.uri().query())?;
    let (container, view) = {
        let c = shared.cluster.lock();
        let pod = c
            .store
            .get(&Key::new("", "pods", &target.namespace, &target.pod))
            .ok_or_else(|| {
                let mut e = ApiError::new(
                    404,
                    "NotFound",
                    format!("pods \"{}\" not found", target.pod),
                );
                e.details = json!({"name": target.pod, "kind": "pods"});
                e
            })?;
        ContainerView::plan(&c, &target.namespace, pod, opts.container.as_deref())?
    };
    // The container's folders first: when they cannot be made, that is the error the
    // user sees, not the SPDY refusal kubectl's fallback would meet next.
    let prepared = {
        let view = view.clone();
        tokio::task::spawn_blocking(move || view.prepare()).await
    };
    match prepared {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(ApiError::new(
                500,
                "InternalError",
                format!(
                    "cannot prepare the folders of pod {}: {e}. Check the sandbox folder's disk space and permissions",
                    target.pod
                ),
            ));
        }
        Err(e) => return Err(ApiError::new(500, "InternalError", e.to_string())),
    }
    let websocket =
        header_has(&req, UPGRADE, "websocket") && header_has(&req, CONNECTION, "upgrade");
    if !websocket {
        return Err(ApiError::bad_request(
            "the sandbox serves pods/exec over WebSockets only (v5.channel.k8s.io or \
             v4.channel.k8s.io), not SPDY: use kubectl 1.30 or later, or kube-rs with the `ws` feature",
        ));
    }
    let Some(protocol) = negotiate(&req) else {
        return Err(ApiError::bad_request(format!(
            "no WebSocket subprotocol the sandbox speaks was offered: ask for one of {PROTOCOLS:?}"
        )));
    };
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
        .ok_or_else(|| ApiError::bad_request("the WebSocket upgrade has no Sec-WebSocket-Key"))?;
    if req
        .headers()
        .get("sec-websocket-version")
        .is_some_and(|v| v.as_bytes() != b"13")
    {
        return Err(ApiError::bad_request(
            "the sandbox speaks WebSocket version 13 only",
        ));
    }
    let upgrade = hyper::upgrade::on(&mut req);
    let guard = shared.execs.enter();
    let stop = shared.execs.stop.subscribe();
    let v5 = protocol.starts_with("v5.");
    tokio::spawn(async move {
        let _guard = guard;
        match upgrade.await {
            Ok(io) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
                run(ws, view, &target, &container, opts, v5, stop).await;
            }
            Err(e) => tracing::debug!("sandbox exec upgrade failed: {e}"),
        }
    });
    let mut r = Response::new(super::server::full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&key).map_err(|e| ApiError::bad_request(e.to_string()))?,
    );
    h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    Ok(r)
}

fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// A close frame with code 1000: client-go reads anything else as an error.
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

fn status_message(v: &Value) -> Message {
    channel_message(STATUS, &serde_json::to_vec(v).unwrap_or_default())
}

/// The final `Status` for an exit code, as kubelet writes it.
fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// Copies a pipe to the WebSocket in chunks; ends at EOF or when the WebSocket is gone.
async fn pump<R: tokio::io::AsyncRead + Unpin>(
    mut from: R,
    channel: u8,
    to: mpsc::Sender<Message>,
) {
    // One buffer for every read, each read's bytes copied into its message (a fresh
    // zeroed buffer per read costs more than the copy).
    let mut buf = vec![0u8; CHUNK + 1];
    buf[0] = channel;
    loop {
        let n = match from.read(&mut buf[1..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let frame = Bytes::copy_from_slice(&buf[..n + 1]);
        if to.send(Message::Binary(frame)).await.is_err() {
            return;
        }
    }
}

/// Why the session ended before the process did.
enum End {
    Exited(std::io::Result<std::process::ExitStatus>),
    ClientLeft,
    Stopped,
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn run(
    ws: Ws,
    view: ContainerView,
    target: &Target,
    container: &str,
    opts: Options,
    v5: bool,
    mut stop: watch::Receiver<bool>,
) {
    let (mut sink, mut stream) = ws.split();
    let spawned = view
        .command(&opts.command, &target.pod)
        .ok_or_else(|| std::io::Error::other("empty command"))
        .and_then(|cmd| {
            Process::spawn(
                cmd,
                opts.stdin,
                opts.stdout,
                opts.stderr || (opts.tty && opts.stdout),
            )
        });
    let (mut process, pipes) = match spawned {
        Ok(p) => p,
        Err(e) => {
            let status = json!({
                "metadata": {},
                "status": "Failure",
                "message": format!(
                    "Internal error occurred: error executing command in container {container} of pod {}: \
                     exec: {:?}: {e}",
                    target.pod,
                    opts.command.first().map(String::as_str).unwrap_or(""),
                ),
                "reason": "InternalError",
                "code": 500,
                "details": {"causes": [{"message": e.to_string()}]},
            });
            let _ = sink.send(status_message(&status)).await;
            let _ = sink.send(normal_close()).await;
            let _ = sink.close().await;
            return;
        }
    };
    tracing::debug!(pod = %target.pod, command = ?opts.command, "sandbox exec started");

    // Output: stdout and stderr pumps → one queue → the WebSocket writer.
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(IN_FLIGHT);
    let mut writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return false;
            }
        }
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
        true
    });
    let mut pumps = Vec::new();
    if let Some(out) = pipes.stdout {
        pumps.push(tokio::spawn(pump(out, STDOUT, out_tx.clone())));
    }
    if let Some(err) = pipes.stderr {
        // With a tty, stderr shares stdout, as on a terminal.
        let channel = if opts.tty || !opts.stderr {
            STDOUT
        } else {
            STDERR
        };
        pumps.push(tokio::spawn(pump(err, channel, out_tx.clone())));
    }

    // Input: the WebSocket reader → a small queue → the stdin writer.
    let (in_tx, mut in_rx) = mpsc::channel::<Bytes>(IN_FLIGHT);
    let mut stdin = pipes.stdin;
    let stdin_writer = tokio::spawn(async move {
        while let Some(data) = in_rx.recv().await {
            let Some(pipe) = stdin.as_mut() else { continue };
            if pipe.write_all(&data).await.is_err() {
                // The process stopped reading: drop what else comes.
                stdin = None;
            }
        }
        // The client closed stdin (or left): the process sees EOF.
        drop(stdin);
    });
    let mut reader = tokio::spawn(async move {
        let mut in_tx = Some(in_tx);
        while let Some(msg) = stream.next().await {
            let data = match msg {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => continue,
            };
            match data.first() {
                Some(&STDIN) if data.len() > 1 => {
                    if let Some(tx) = &in_tx
                        && tx.send(data.slice(1..)).await.is_err()
                    {
                        in_tx = None;
                    }
                }
                Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => in_tx = None,
                _ => {}
            }
        }
    });

    let end = tokio::select! {
        r = process.wait() => End::Exited(r),
        _ = &mut reader => End::ClientLeft,
        _ = &mut writer => End::ClientLeft,
        _ = stop.wait_for(|s| *s) => End::Stopped,
    };
    match end {
        End::Exited(r) => {
            // The group is dead: the pipes reach EOF once drained.
            for p in pumps {
                let _ = p.await;
            }
            let status = match r {
                Ok(s) => exit_status(&opts.command, exit_code(&s)),
                Err(e) => exit_status(&opts.command, {
                    tracing::warn!("sandbox exec: cannot wait for the process: {e}");
                    1
                }),
            };
            tracing::debug!(pod = %target.pod, status = %status["status"], "sandbox exec ended");
            // The process is gone: what the client still sends is read and dropped.
            stdin_writer.abort();
            if out_tx.send(status_message(&status)).await.is_ok() {
                drop(out_tx);
                let _ = writer.await;
            }
            // The connection stays open until the client leaves (kube-rs and kubectl do
            // once they have the Status): closed under a client still sending (stdin,
            // its end, a ping, maybe long after when its reading was paused), the
            // socket would answer with a reset that drops the output and the Status not
            // yet delivered, and kube-rs then ends neither stdout nor stderr.
            tokio::select! {
                _ = &mut reader => {}
                _ = stop.wait_for(|s| *s) => reader.abort(),
            }
        }
        End::ClientLeft | End::Stopped => {
            tracing::debug!(pod = %target.pod, "sandbox exec: killing the process (client left or sandbox stopping)");
            process.kill();
            let _ = process.wait().await;
            reader.abort();
            writer.abort();
            stdin_writer.abort();
            for p in pumps {
                p.abort();
            }
        }
    }
}
