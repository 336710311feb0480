//! A progress line for engine jobs on the terminal (indicatif), drawn ten times a second
//! from [`ProgressSnapshot`]s. On a terminal that is not interactive (CI logs) a plain
//! line is printed every ten seconds instead.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::format;
use ferry_repo::progress::{Phase, Progress, ProgressSnapshot, RateMeter};

/// Runs `job` on a worker thread while drawing `progress`; returns the job's result.
pub fn run_with_progress<T: Send>(
    progress: &Arc<Progress>,
    quiet: bool,
    job: impl FnOnce() -> T + Send,
) -> T {
    run_with_line(progress, quiet, &line, job)
}

/// Like [`run_with_progress`], with `describe` making the status line.
pub fn run_with_line<T: Send>(
    progress: &Arc<Progress>,
    quiet: bool,
    describe: &(dyn Fn(&ProgressSnapshot, f64) -> String + Sync),
    job: impl FnOnce() -> T + Send,
) -> T {
    std::thread::scope(|scope| {
        let handle = scope.spawn(job);
        let interactive = std::io::stderr().is_terminal() && !quiet;
        let bar = interactive.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10));
            b.set_style(style(false));
            b
        });
        // A bar and percentage only once the totals are known: while volumes are still
        // being listed a percentage would reach 100% and fall back.
        let mut bar_shown = false;
        let mut meter = RateMeter::default();
        let mut last_plain = Instant::now();
        while !handle.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            let s = progress.snapshot();
            let r = meter.update(&s);
            for w in progress.drain_warnings() {
                match &bar {
                    Some(b) => b.println(format!("warning: {w}")),
                    None => eprintln!("warning: {w}"),
                }
            }
            if let Some(b) = &bar {
                if s.totals_final != bar_shown {
                    bar_shown = s.totals_final;
                    b.set_style(style(bar_shown));
                }
                b.set_length(s.bytes_total.max(s.bytes_done));
                b.set_position(s.bytes_done);
                b.set_message(describe(&s, r));
            } else if !quiet && last_plain.elapsed() >= Duration::from_secs(10) {
                eprintln!("{}", describe(&s, r));
                last_plain = Instant::now();
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        for w in progress.drain_warnings() {
            eprintln!("warning: {w}");
        }
        match handle.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// The progress line's look: with a bar and percentage once the totals are final,
/// else a spinner and the counts.
fn style(with_bar: bool) -> ProgressStyle {
    let template = if with_bar {
        "{spinner} [{bar:30}] {percent:>3}% {msg}"
    } else {
        "{spinner} {msg}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One line describing a job's state.
pub fn line(s: &ProgressSnapshot, rate: f64) -> String {
    let total = if s.totals_final {
        format::bytes(s.bytes_total)
    } else {
        format!("{}+", format::bytes(s.bytes_total))
    };
    // Rate and ETA only mean something while data moves.
    let speed = if s.phase == Phase::Transferring {
        let eta = s
            .eta(rate)
            .map(|d| format!(" ETA {}", format::duration(d)))
            .unwrap_or_default();
        format!(" at {}{eta}", format::rate(rate))
    } else {
        String::new()
    };
    let mut out = format!(
        "{}: {}/{} files, {}/{}{speed}",
        s.phase.label(),
        s.files_done,
        s.files_total,
        format::bytes(s.bytes_done),
        total,
    );
    if s.bytes_new > 0 {
        out.push_str(&format!(
            ", new {} stored {}",
            format::bytes(s.bytes_new),
            format::bytes(s.bytes_stored)
        ));
    }
    if s.warnings > 0 {
        out.push_str(&format!(", {} warning(s)", s.warnings));
    }
    if let Some(wait) = waiting(s) {
        out.push_str(&format!(" · {wait}"));
    }
    if !s.current.is_empty() {
        let c = &s.current;
        let tail: String = c
            .chars()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if tail.len() < c.len() {
            out.push_str(&format!(" …{tail}"));
        } else {
            out.push_str(&format!(" {tail}"));
        }
    }
    out
}

/// "waiting for the object store …" while operations have been retrying for a second
/// or more (shorter waits, the odd retried request, are not worth a word).
pub fn waiting(s: &ProgressSnapshot) -> Option<String> {
    let w = s
        .waiting
        .as_ref()
        .filter(|w| w.waited >= Duration::from_secs(1))?;
    Some(format!(
        "waiting for the object store for {} ({} operation(s) retrying, giving up in {}): {}",
        format::duration(w.waited),
        w.operations,
        format::duration(w.left),
        w.last_error
    ))
}

/// One line describing a Kubernetes job: phase, objects, the volume being moved, bytes.
pub fn job_line(job: &ferry_k8s::JobProgress, s: &ProgressSnapshot, rate: f64) -> String {
    let (done, total) = job.objects();
    let vol = job
        .volumes()
        .into_iter()
        .rev()
        .find(|v| v.state != "done" && !v.state.starts_with("failed"))
        .map(|v| format!(" · {}/{} {}", v.namespace, v.pvc, v.state))
        .unwrap_or_default();
    format!(
        "{} · objects {done}/{total}{vol} · {}",
        job.phase(),
        line(s, rate)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(phase: Phase) -> ProgressSnapshot {
        ProgressSnapshot {
            phase,
            elapsed: Duration::from_secs(10),
            files_total: 10,
            bytes_total: 100 << 20,
            totals_final: true,
            files_done: 5,
            bytes_done: 50 << 20,
            bytes_new: 10 << 20,
            bytes_stored: 5 << 20,
            warnings: 1,
            current: "/data/a/very/long/path/that/goes/on/and/on/file.bin".into(),
            waiting: None,
        }
    }

    #[test]
    fn line_says_when_the_store_is_waited_for() {
        let mut s = snap(Phase::Transferring);
        s.waiting = Some(ferry_repo::progress::StoreWait {
            waited: Duration::from_millis(300),
            left: Duration::from_secs(299),
            operations: 1,
            retries: 1,
            last_error: "HTTP 503".into(),
        });
        // A blip is not shown.
        assert!(!line(&s, 0.0).contains("waiting"));
        if let Some(w) = s.waiting.as_mut() {
            w.waited = Duration::from_secs(12);
            w.left = Duration::from_secs(288);
            w.operations = 3;
        }
        let l = line(&s, 0.0);
        assert!(
            l.contains("waiting for the object store for 12.0s (3 operation(s) retrying, giving up in 4m48s): HTTP 503"),
            "{l}"
        );
    }

    #[test]
    fn line_shows_rate_and_eta_while_transferring_only() {
        let l = line(&snap(Phase::Transferring), 5.0 * 1024.0 * 1024.0);
        assert!(
            l.contains("5/10 files, 50.0 MiB/100.0 MiB at 5.0 MiB/s ETA 10.0s"),
            "{l}"
        );
        assert!(
            l.contains("new 10.0 MiB stored 5.0 MiB") && l.contains("1 warning(s)"),
            "{l}"
        );
        assert!(l.contains("…") && l.ends_with("file.bin"), "{l}");
        let f = line(&snap(Phase::Finishing), 0.0);
        assert!(f.starts_with("finishing:") && !f.contains("/s"), "{f}");
    }
}
