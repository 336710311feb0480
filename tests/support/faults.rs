//! An HTTP proxy on 127.0.0.1 that makes an object store misbehave, for tests and
//! benches: in front of moto it answers some requests with 503 SlowDown (without
//! forwarding them), delays some, cuts some response bodies off halfway (the headers and
//! half the body arrive, then the connection drops), adds latency to every request, and
//! can play an outage (every request answered 503) or fail chosen requests by rule.
//!
//! Faults are deterministic for a seed: whether the n-th occurrence of a request
//! (method, path and query, Range header) gets a fault depends only on the seed, that
//! request and n, not on timing or on which thread sent it. A retried request is a new
//! occurrence with its own roll. [`FaultProxy::stats`] counts what was injected, so a
//! test can show that its faults really happened. Dropping the proxy stops it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What goes wrong, and how often (fractions of requests, 0 to 1).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub seed: u64,
    /// Answered 503 SlowDown without reaching the store.
    pub error_503: f64,
    /// Held for a time in `delay` before they are forwarded.
    pub delay: f64,
    pub delay_range: (Duration, Duration),
    /// GET answers whose body is cut off halfway.
    pub cut: f64,
    /// Added to every request.
    pub latency: Duration,
}

impl Faults {
    /// The campaign: 5% 503s, 2% delays, 2% cut bodies (delays of `delay`).
    pub fn campaign(seed: u64, delay: (Duration, Duration)) -> Faults {
        Faults {
            seed,
            error_503: 0.05,
            delay: 0.02,
            delay_range: delay,
            cut: 0.02,
            latency: Duration::ZERO,
        }
    }
}

/// Requests that fail with 503 (or, with `delay`, are held that long) whatever the dice
/// say: those whose method is `method` and whose path-and-query contains `contains`,
/// `times` times (`u64::MAX`: always).
#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub method: &'static str,
    pub contains: &'static str,
    pub times: u64,
    pub delay: Option<Duration>,
}

/// What the proxy did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub errors_503: u64,
    pub delays: u64,
    pub cuts: u64,
    /// Requests refused by the outage or a rule.
    pub refused: u64,
    /// Body bytes sent back to the client.
    pub bytes_down: u64,
    /// Requests that carried a Range header.
    pub ranged: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    errors_503: AtomicU64,
    delays: AtomicU64,
    cuts: AtomicU64,
    refused: AtomicU64,
    bytes_down: AtomicU64,
    ranged: AtomicU64,
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Incoming>,
    faults: parking_lot::Mutex<Faults>,
    rules: parking_lot::Mutex<Vec<Rule>>,
    outage: AtomicBool,
    seen: parking_lot::Mutex<HashMap<String, u64>>,
    counters: Counters,
}

pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, to use as the S3 endpoint.
    pub endpoint: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    /// Must be called inside a tokio runtime.
    pub async fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            faults: parking_lot::Mutex::new(faults),
            rules: parking_lot::Mutex::new(Vec::new()),
            outage: AtomicBool::new(false),
            seen: parking_lot::Mutex::new(HashMap::new()),
            counters: Counters::default(),
        });
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                let mut conns = tokio::task::JoinSet::new();
                while let Ok((tcp, _)) = listener.accept().await {
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                    while conns.try_join_next().is_some() {}
                }
            }
        });
        FaultProxy {
            endpoint: format!("http://{addr}"),
            addr,
            shared,
            task,
        }
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock() = faults;
    }

    /// While on, every request is answered 503 without reaching the store.
    pub fn set_outage(&self, on: bool) {
        self.shared.outage.store(on, SeqCst);
    }

    pub fn add_rule(&self, rule: Rule) {
        self.shared.rules.lock().push(rule);
    }

    /// Forgets how often each request was seen, so the next run of the same commands
    /// meets the same faults (a bench comparing binaries wants that).
    pub fn reset_dice(&self) {
        self.shared.seen.lock().clear();
    }

    pub fn clear_rules(&self) {
        self.shared.rules.lock().clear();
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            requests: c.requests.load(SeqCst),
            errors_503: c.errors_503.load(SeqCst),
            delays: c.delays.load(SeqCst),
            cuts: c.cuts.load(SeqCst),
            refused: c.refused.load(SeqCst),
            bytes_down: c.bytes_down.load(SeqCst),
            ranged: c.ranged.load(SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

/// splitmix64: a small, good mixer for deterministic dice.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Three independent rolls in [0, 1) for the n-th occurrence of `key`.
fn dice(seed: u64, key: &str, n: u64) -> [f64; 4] {
    let mut x = mix(seed ^ fnv(key) ^ mix(n));
    let mut out = [0.0; 4];
    for o in &mut out {
        x = mix(x);
        *o = (x >> 11) as f64 / (1u64 << 53) as f64;
    }
    out
}

fn slow_down() -> Response<Body> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>";
    Response::builder()
        .status(503)
        .header("content-type", "application/xml")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .unwrap()
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let c = &shared.counters;
    c.requests.fetch_add(1, SeqCst);
    let method = req.method().as_str().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if range.is_some() {
        c.ranged.fetch_add(1, SeqCst);
    }
    let key = format!("{method} {pq} {}", range.as_deref().unwrap_or(""));
    let n = {
        let mut seen = shared.seen.lock();
        let n = seen.entry(key.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let faults = shared.faults.lock().clone();
    let [r503, rdelay, rlen, rcut] = dice(faults.seed, &key, n);
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }

    let by_rule = {
        let mut rules = shared.rules.lock();
        match rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && pq.contains(r.contains))
        {
            Some(r) => {
                r.times = r.times.saturating_sub(1);
                Some(r.delay)
            }
            None => None,
        }
    };
    let by_rule = match by_rule {
        Some(Some(delay)) => {
            c.delays.fetch_add(1, SeqCst);
            tokio::time::sleep(delay).await;
            false
        }
        Some(None) => true,
        None => false,
    };
    if by_rule || shared.outage.load(SeqCst) {
        c.refused.fetch_add(1, SeqCst);
        let _ = req.into_body().collect().await;
        return slow_down();
    }
    if r503 < faults.error_503 {
        c.errors_503.fetch_add(1, SeqCst);
        let _ = req.into_body().collect().await;
        return slow_down();
    }
    if rdelay < faults.delay {
        c.delays.fetch_add(1, SeqCst);
        let (lo, hi) = faults.delay_range;
        let span = hi.saturating_sub(lo);
        tokio::time::sleep(lo + span.mul_f64(rlen)).await;
    }

    let (mut parts, body) = req.into_parts();
    let uri = format!("{}{pq}", shared.upstream);
    parts.uri = match uri.parse() {
        Ok(u) => u,
        Err(_) => return status(400),
    };
    let response = match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(r) => r,
        Err(_) => return status(502),
    };
    let cut = method == "GET" && response.status().is_success() && rcut < faults.cut;
    let (head, body) = response.into_parts();
    let data = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return status(502),
    };
    if !cut || data.len() < 2 {
        c.bytes_down.fetch_add(data.len() as u64, SeqCst);
        return Response::from_parts(head, Full::new(data).map_err(|e| match e {}).boxed_unsync());
    }
    c.cuts.fetch_add(1, SeqCst);
    let half = data.slice(..data.len() / 2);
    c.bytes_down.fetch_add(half.len() as u64, SeqCst);
    // Half the body, a moment for it to be flushed, then the connection breaks.
    let frames = futures::stream::iter([Ok::<_, BoxError>(Frame::data(half))]).chain(
        futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err::<Frame<Bytes>, BoxError>("connection cut by the fault proxy".into())
        }),
    );
    Response::from_parts(head, StreamBody::new(frames).boxed_unsync())
}

fn status(code: u16) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(
            Full::new(Bytes::new())
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .unwrap()
}
