//! Jobs: every backup, restore and migration of this session with live progress, and
//! the selected job's volumes, report (failures with remedies) and log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{App, Job, JobEnd, Row, Tone};
use crate::format;
use crate::widgets;

fn state(j: &Job) -> (String, Tone) {
    match &j.end {
        None if j.progress.is_paused() => ("paused".into(), Tone::Warn),
        None if crate::progress::waiting(&j.progress.data.snapshot()).is_some() => {
            ("waiting for the store".into(), Tone::Warn)
        }
        None => ("running".into(), Tone::Normal),
        Some(JobEnd::Captured { snapshot, .. }) => (format!("saved {snapshot}"), Tone::Ok),
        Some(JobEnd::Restored { report: r, .. }) if r.failed().is_empty() => {
            ("done".into(), Tone::Ok)
        }
        Some(JobEnd::Restored { report: r, .. }) => {
            (format!("{} failed", r.failed().len()), Tone::Warn)
        }
        Some(JobEnd::Downloaded { warnings, .. }) if warnings.is_empty() => {
            ("done".into(), Tone::Ok)
        }
        Some(JobEnd::Downloaded { warnings, .. }) => {
            (format!("{} warning(s)", warnings.len()), Tone::Warn)
        }
        Some(JobEnd::Failed(_)) => ("failed".into(), Tone::Error),
        Some(JobEnd::Cancelled) => ("cancelled".into(), Tone::Warn),
    }
}

/// Newest first.
pub fn rows(app: &App) -> Vec<Row> {
    app.jobs
        .iter()
        .rev()
        .map(|j| {
            let s = j.progress.data.snapshot();
            let (done, total) = j.progress.objects();
            let (st, tone) = state(j);
            let phase = j.progress.phase();
            Row::new(
                j.id.to_string(),
                vec![
                    j.id.to_string(),
                    j.title.clone(),
                    if phase.is_empty() {
                        "starting".into()
                    } else {
                        phase
                    },
                    format!("{done}/{total}"),
                    if s.bytes_total > 0 {
                        format!(
                            "{}/{}",
                            format::bytes(s.bytes_done),
                            format::bytes(s.bytes_total)
                        )
                    } else {
                        format::bytes(s.bytes_done)
                    },
                    if j.running() {
                        format::rate(j.rate)
                    } else {
                        "-".into()
                    },
                    st,
                ],
            )
            .tone(tone)
        })
        .collect()
}

/// The selected job in detail.
pub fn detail(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.env.theme;
    let Some(job) = app
        .selected_row()
        .and_then(|r| r.key.parse::<usize>().ok())
        .and_then(|id| app.jobs.iter().find(|j| j.id == id))
    else {
        widgets::message(
            f,
            area,
            theme,
            "no jobs yet: b backs up, m migrates, c clones, r restores",
            Tone::Dim,
        );
        return;
    };
    let s = job.progress.data.snapshot();
    let mut lines = vec![Line::from(vec![
        Span::styled(job.title.clone(), theme.title()),
        Span::styled(
            format!("  {} elapsed", format::duration(job.started.elapsed())),
            theme.dim(),
        ),
    ])];
    let eta = s
        .eta(job.rate)
        .map(|d| format!(" · ETA {}", format::duration(d)))
        .unwrap_or_default();
    let saved = s.bytes_done.saturating_sub(s.bytes_new);
    lines.push(Line::from(format!(
        "phase {} · objects {}/{} · {} files · {} read · {} new · {} saved by dedup · {}{eta}",
        job.progress.phase(),
        job.progress.objects().0,
        job.progress.objects().1,
        s.files_done,
        format::bytes(s.bytes_done),
        format::bytes(s.bytes_new),
        format::bytes(saved),
        format::rate(job.rate),
    )));
    if job.running()
        && let Some(wait) = crate::progress::waiting(&s)
    {
        lines.push(Line::from(Span::styled(wait, theme.warn())));
    }
    for v in job.progress.volumes() {
        lines.push(Line::from(vec![
            Span::styled(format!("  {}/{} ", v.namespace, v.pvc), theme.header()),
            Span::raw(format!(
                "{} · {}/{} files · {}/{}",
                v.state,
                v.files,
                v.files_total,
                format::bytes(v.bytes),
                format::bytes(v.bytes_total)
            )),
        ]));
    }
    match &job.end {
        Some(JobEnd::Captured {
            summary,
            warnings,
            snapshot,
        }) => {
            lines.push(Line::from(Span::styled(
                format!("snapshot {snapshot}: {summary}"),
                theme.ok(),
            )));
            for w in warnings {
                lines.push(Line::from(Span::styled(
                    format!("warning: {w}"),
                    theme.warn(),
                )));
            }
        }
        Some(JobEnd::Restored {
            report: r,
            saved,
            context,
        }) => {
            lines.push(Line::from(Span::styled(
                format!(
                    "into {}: {} succeeded, {} failed, {} of volume data in {:.1}s",
                    r.target_cluster,
                    r.succeeded(),
                    r.failed().len(),
                    format::bytes(r.bytes_restored),
                    r.duration_secs
                ),
                if r.failed().is_empty() {
                    theme.ok()
                } else {
                    theme.warn()
                },
            )));
            for o in r.failed() {
                lines.push(Line::from(Span::styled(
                    format!(
                        "  FAILED {}/{}: {}",
                        o.object.kind, o.object.name, o.message
                    ),
                    theme.error(),
                )));
                if let Some(rem) = &o.remedy {
                    lines.push(Line::from(format!("    → {rem}")));
                }
            }
            match saved {
                Ok(path) => {
                    lines.push(Line::from(vec![
                        Span::styled("report ", theme.dim()),
                        Span::raw(path.display().to_string()),
                    ]));
                    if !r.failed().is_empty() {
                        lines.push(Line::from(vec![
                            Span::styled("retry what failed: ", theme.dim()),
                            Span::styled(r.retry_command(context, path), theme.input()),
                        ]));
                    }
                }
                Err(e) => lines.push(Line::from(Span::styled(e.clone(), theme.error()))),
            }
        }
        Some(JobEnd::Downloaded {
            target,
            files,
            dirs,
            bytes,
            warnings,
        }) => {
            lines.push(Line::from(Span::styled(
                format!(
                    "restored {files} file(s), {dirs} folder(s), {} into {}",
                    format::bytes(*bytes),
                    target.display()
                ),
                theme.ok(),
            )));
            for w in warnings {
                lines.push(Line::from(Span::styled(
                    format!("warning: {w}"),
                    theme.warn(),
                )));
            }
        }
        Some(JobEnd::Failed(e)) => lines.push(Line::from(Span::styled(e.clone(), theme.error()))),
        Some(JobEnd::Cancelled) => lines.push(Line::from(Span::styled("cancelled", theme.warn()))),
        None => {}
    }
    // Rows the lines take once wrapped (a report's path and retry command are long).
    let need = Paragraph::new(lines.clone())
        .wrap(Wrap { trim: false })
        .line_count(area.width);
    let [top, log] = Layout::vertical([
        Constraint::Length((need as u16).saturating_add(1).min(area.height / 2)),
        Constraint::Fill(1),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .style(theme.base()),
        top,
    );
    let log_lines = job.progress.log_lines();
    let h = log.height.saturating_sub(2) as usize;
    let tail: Vec<Line> = log_lines
        .iter()
        .skip(log_lines.len().saturating_sub(h))
        .map(|l| Line::from(l.clone()))
        .collect();
    let b = widgets::block(
        theme,
        Line::from(Span::styled(" log ", theme.title())),
        theme.border,
    );
    f.render_widget(Paragraph::new(tail).block(b).style(theme.base()), log);
}
