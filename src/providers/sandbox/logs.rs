//! Container logs: the files the kubelet (`kubelet.rs`) writes, one per run of a
//! container, in CRI's format (`<time> <stream> <F|P> <text>`), and the `pods/log`
//! subresource that serves them: `container`, `previous`, `tailLines`, `sinceSeconds`,
//! `sinceTime`, `limitBytes`, `timestamps`, and `follow` until the run ends or the
//! client leaves. A log past [`MAX_LOG`] is rotated, keeping its newest half.
//!
//! Owns reading log files and their rotation. Must not run containers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde_json::Value;

use super::controllers::get;
use super::kubelet::held;
use super::server::{Body, Shared};
use super::verbs::{ApiError, ApiResult};

/// A log file is rotated past this size, keeping its newest half.
pub const MAX_LOG: u64 = 10 * 1024 * 1024;

/// Keeps the newest half of a log that grew past [`MAX_LOG`] (from a line's start) and
/// opens it again for appending; its new size.
pub async fn rotate(path: &Path) -> std::io::Result<(tokio::fs::File, u64)> {
    let all = tokio::fs::read(path).await?;
    let from = all.len().saturating_sub((MAX_LOG / 2) as usize);
    let from = all[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(all.len(), |i| from + i + 1);
    let kept = &all[from..];
    let tmp = path.with_extension("rotating");
    tokio::fs::write(&tmp, kept).await?;
    tokio::fs::rename(&tmp, path).await?;
    let f = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await?;
    Ok((f, kept.len() as u64))
}

/// The `pods/log` subresource: the container's current (or `previous`) run's output.
pub async fn logs(
    shared: &Arc<Shared>,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> ApiResult<Response<Body>> {
    let (dir, container) = {
        let c = shared.cluster.lock();
        let pod = get(&c, "", "pods", Some(ns), name)
            .ok_or_else(|| ApiError::new(404, "NotFound", format!("pods \"{name}\" not found")))?;
        let names: Vec<String> = ["initContainers", "containers"]
            .iter()
            .filter_map(|k| pod["spec"][*k].as_array())
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let main: Vec<&Value> = pod["spec"]["containers"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let default =
            pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str();
        let container = match query.get("container").filter(|c| !c.is_empty()) {
            Some(c) if names.contains(c) => c.clone(),
            Some(c) => {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!("container {c} is not valid for pod {name}"),
                ));
            }
            None => match (default, main.as_slice()) {
                (Some(d), _) => d.to_string(),
                (None, [one]) => one["name"].as_str().unwrap_or("").to_string(),
                _ => {
                    let list: Vec<&str> = main.iter().filter_map(|c| c["name"].as_str()).collect();
                    return Err(ApiError::new(
                        400,
                        "BadRequest",
                        format!(
                            "a container name must be specified for pod {name}, choose one of: [{}]",
                            list.join(" ")
                        ),
                    ));
                }
            },
        };
        let ctr = ["initContainers", "containers"]
            .iter()
            .filter_map(|k| pod["spec"][*k].as_array())
            .flatten()
            .find(|c| c["name"] == container.as_str())
            .cloned()
            .unwrap_or(Value::Null);
        if !held(&ctr) {
            // Emulated: nothing ran, so there is no output.
            return Ok(text(Vec::new()));
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
        (
            c.dir.join("pods").join(uid).join("logs").join(&container),
            container,
        )
    };
    let mut runs: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            if p.extension()? != "log" {
                return None;
            }
            let n = p.file_stem()?.to_str()?.parse().ok()?;
            Some((n, p))
        })
        .collect();
    runs.sort();
    let previous = query.get("previous").is_some_and(|v| v == "true");
    let path = if previous {
        runs.iter()
            .rev()
            .nth(1)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "BadRequest",
                    format!(
                        "previous terminated container \"{container}\" in pod \"{name}\" not found"
                    ),
                )
            })?
    } else {
        runs.last().map(|(_, p)| p.clone()).ok_or_else(|| {
            ApiError::new(
                400,
                "BadRequest",
                format!("container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"),
            )
        })?
    };
    let options = LogOptions::of(query);
    let bytes = tokio::fs::read(&path).await.unwrap_or_default();
    let first = options.render(&bytes, true);
    let live = if options.follow && !previous {
        shared.kubelet.live(&path)
    } else {
        None
    };
    let Some(mut closed) = live else {
        return Ok(text(first));
    };
    // Follow: what is there, then what comes until the run ends or the client leaves.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Vec<u8>>(16);
    let mut offset = bytes.len();
    let mut pending = Vec::new();
    tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        // The client is gone when the body is dropped.
        loop {
            let done = *closed.borrow();
            let now = tokio::fs::read(&path).await.unwrap_or_default();
            if now.len() < offset {
                // Rotated: go on from its end (what was kept is mostly what was sent).
                offset = now.len();
                pending.clear();
            }
            if now.len() > offset {
                pending.extend_from_slice(&now[offset..]);
                offset = now.len();
                // Whole lines only; the rest waits for its end.
                if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                    let chunk: Vec<u8> = pending.drain(..=end).collect();
                    let out = options.render(&chunk, false);
                    if !out.is_empty() && tx.send(out).await.is_err() {
                        return;
                    }
                }
            }
            if done || tx.is_closed() {
                return;
            }
            tokio::select! {
                _ = closed.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
    let body = StreamBody::new(rx.map(|b| Ok::<_, std::io::Error>(Frame::data(Bytes::from(b)))));
    let mut r = Response::new(BodyExt::boxed(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}

fn text(body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(super::server::full(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// What of a log a `pods/log` request wants.
#[derive(Debug, Clone)]
struct LogOptions {
    follow: bool,
    timestamps: bool,
    tail: Option<usize>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<usize>,
}

impl LogOptions {
    fn of(q: &HashMap<String, String>) -> LogOptions {
        let since = q
            .get("sinceSeconds")
            .and_then(|s| s.parse::<i64>().ok())
            .map(|s| chrono::Utc::now() - chrono::Duration::seconds(s))
            .or_else(|| {
                q.get("sinceTime")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
            });
        LogOptions {
            follow: q.get("follow").is_some_and(|v| v == "true"),
            timestamps: q.get("timestamps").is_some_and(|v| v == "true"),
            tail: q.get("tailLines").and_then(|n| n.parse().ok()),
            since,
            limit: q.get("limitBytes").and_then(|n| n.parse().ok()),
        }
    }

    /// The log entries in `raw` as the user sees them; `first` applies `tailLines` and
    /// `limitBytes` (which concern what is there when the request comes).
    fn render(&self, raw: &[u8], first: bool) -> Vec<u8> {
        let mut entries: Vec<(&str, bool, &[u8])> = Vec::new();
        for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut parts = line.splitn(4, |b| *b == b' ');
            let (Some(ts), Some(_stream), Some(tag), Some(content)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let ts = std::str::from_utf8(ts).unwrap_or("");
            if let Some(since) = self.since
                && chrono::DateTime::parse_from_rfc3339(ts).is_ok_and(|t| t < since)
            {
                continue;
            }
            entries.push((ts, tag == b"F", content));
        }
        if first && let Some(n) = self.tail {
            // Whole lines: a partial entry belongs to the line its full entry ends.
            let mut lines = 0;
            let mut from = entries.len();
            while from > 0 {
                if entries[from - 1].1 {
                    if lines == n {
                        break;
                    }
                    lines += 1;
                }
                from -= 1;
            }
            entries.drain(..from);
        }
        let mut out = Vec::new();
        let mut at_start = true;
        for (ts, full, content) in entries {
            if self.timestamps && at_start {
                out.extend_from_slice(ts.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(content);
            if full {
                out.push(b'\n');
            }
            at_start = full;
        }
        if first && let Some(limit) = self.limit {
            out.truncate(limit);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[test]
    fn logs_render_tail_timestamps_and_partial_lines() {
        let raw = b"2026-01-01T00:00:01.000000000Z stdout F one\n\
2026-01-01T00:00:02.000000000Z stderr P tw\n\
2026-01-01T00:00:02.100000000Z stderr F o\n\
2026-01-01T00:00:03.000000000Z stdout F three\n";
        let q = |pairs: &[(&str, &str)]| {
            LogOptions::of(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert_eq!(q(&[]).render(raw, true), b"one\ntwo\nthree\n");
        assert_eq!(q(&[("tailLines", "2")]).render(raw, true), b"two\nthree\n");
        assert_eq!(q(&[("tailLines", "0")]).render(raw, true), b"");
        assert_eq!(
            q(&[("timestamps", "true"), ("tailLines", "1")]).render(raw, true),
            b"2026-01-01T00:00:03.000000000Z three\n"
        );
        assert_eq!(q(&[("limitBytes", "5")]).render(raw, true), b"one\nt");
        assert_eq!(
            q(&[("sinceTime", "2026-01-01T00:00:02Z")]).render(raw, true),
            b"two\nthree\n"
        );
    }

    #[tokio::test]
    async fn a_log_past_its_size_keeps_its_newest_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let line = |i: usize| format!("2026-01-01T00:00:00.000000000Z stdout F line {i:08}\n");
        let all: String = (0..300_000).map(line).collect();
        std::fs::write(&path, &all).unwrap();
        let (mut f, size) = rotate(&path).await.unwrap();
        let kept = std::fs::read_to_string(&path).unwrap();
        assert_eq!(kept.len() as u64, size);
        assert!(size <= MAX_LOG / 2 && size > MAX_LOG / 2 - 100, "{size}");
        assert!(kept.starts_with("2026-") && kept.ends_with(&line(299_999)));
        f.write_all(line(300_000).as_bytes()).await.unwrap();
        f.flush().await.unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with(&line(300_000))
        );
    }
}
