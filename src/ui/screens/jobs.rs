//! Jobs: every backup, restore and migration of this session with live progress, and
//! the selected job's volumes, report (failures with remedies) and log.

use std::borrow::Cow;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{App, Ask, Flow, Job, JobEnd, Load, Mode, Row, Then, Tone, View};
use crate::format;
use crate::keymap::Command;
use crate::page::{Offer, Page};
use crate::widgets;

/// The jobs of this session.
pub struct Jobs;

const OFFERS: &[Offer] = &[
    Offer::new(
        Command::Enter,
        "back to the wizard waiting for this capture (J, : or S on a plan leave it waiting)",
    ),
    Offer::new(Command::Cancel, "cancel the selected job").hint("cancel"),
    Offer::new(Command::Pause, "pause or resume the selected job").hint("pause"),
];

impl Page for Jobs {
    fn name(&self) -> &'static str {
        "jobs"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length};
        (
            &[
                "ID", "JOB", "PHASE", "OBJECTS", "DATA", "RATE", "ETA", "STATE",
            ],
            vec![
                Length(4),
                Fill(3),
                Length(20),
                Length(9),
                Length(21),
                Length(12),
                Length(8),
                Fill(1),
            ],
        )
    }

    /// Objects, phase, ETA, then rate: the ID, job (kind and target), data and state stay.
    fn narrow(&self) -> &'static [usize] {
        &[3, 2, 6, 5]
    }

    fn offers(&self) -> &'static [Offer] {
        OFFERS
    }

    fn rows<'a>(&self, app: &'a App, _: &View) -> Load<Cow<'a, [Row]>> {
        Load::Ready(Cow::Owned(rows(app)))
    }

    fn load(&self, _: &mut App, _: &View, _: bool) {}

    fn run(&self, app: &mut App, _: &View, command: Command) {
        let id = app.selected_row().and_then(|r| r.key.parse::<usize>().ok());
        if command == Command::Enter {
            if !id.is_some_and(|id| app.unpark(id)) {
                app.say(
                    Tone::Normal,
                    "no wizard waits for this job (enter goes back to one that waits for its capture)",
                );
            }
            return;
        }
        let Some(j) = id.and_then(|id| app.jobs.iter_mut().find(|j| j.id == id)) else {
            app.say(Tone::Normal, "no job selected");
            return;
        };
        if !j.running() {
            app.say(Tone::Normal, "that job has ended");
            return;
        }
        let (tone, text) = match command {
            Command::Cancel => {
                let ask = Ask {
                    otherwise: None,
                    title: "cancel?",
                    question: format!(
                        "Cancel job {} ({}, {})? What it has done stays; the audit trail records it as cancelled.",
                        j.id,
                        j.title,
                        j.elapsed_text()
                    ),
                    then: Then::Cancel(j.id),
                };
                app.mode = Mode::Confirm(ask);
                return;
            }
            Command::Pause if j.toggle_pause() => {
                (Tone::Warn, format!("{} paused: p resumes it", j.title))
            }
            Command::Pause => (Tone::Ok, format!("{} resumed", j.title)),
            _ => return,
        };
        app.say(tone, text);
    }

    fn detail(&self) -> Option<fn(&mut Frame, Rect, &App)> {
        Some(detail)
    }
}

fn state(j: &Job) -> (String, Tone) {
    match &j.end {
        None if j.progress.is_paused() => ("paused".into(), Tone::Warn),
        None if crate::progress::waiting(&j.progress.data.snapshot()).is_some() => {
            ("waiting for the store".into(), Tone::Warn)
        }
        None => ("running".into(), Tone::Normal),
        Some(JobEnd::Captured { snapshot, .. }) => (format!("saved {snapshot}"), Tone::Ok),
        Some(JobEnd::Restored { report: r, .. })
            if r.failed().is_empty() && r.findings.is_empty() =>
        {
            ("done".into(), Tone::Ok)
        }
        Some(JobEnd::Restored { report: r, .. }) if r.failed().is_empty() => {
            (format!("done, {} to check", r.findings.len()), Tone::Warn)
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

/// How long a running job's data still takes at its rate once its totals are known;
/// before that (a capture lists each volume as it reaches it), what the volume being
/// read still takes, with `+` (more volumes may follow); `-` when nothing moves.
fn eta(j: &Job, s: &ferry_repo::progress::ProgressSnapshot) -> String {
    if !j.running() || j.progress.is_paused() || j.rate <= 0.0 {
        return "-".into();
    }
    if let Some(d) = s.eta(j.rate) {
        return format::duration(d);
    }
    j.progress
        .volumes()
        .iter()
        .find(|v| v.streaming_from.is_some() && v.bytes_total > v.bytes)
        .map(|v| {
            let left = (v.bytes_total - v.bytes) as f64 / j.rate;
            format!(
                "{}+",
                format::duration(std::time::Duration::from_secs_f64(left))
            )
        })
        .unwrap_or_else(|| "-".into())
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
                    // An ended job's state says how it ended; its last phase is history.
                    match (j.running(), phase.is_empty()) {
                        (false, _) => "-".into(),
                        (true, true) => "starting".into(),
                        (true, false) => phase,
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
                    eta(j, &s),
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
        Span::styled(format!("  {}", job.elapsed_text()), theme.dim()),
    ])];
    let eta = s
        .eta(job.rate)
        .map(|d| format!(" · ETA {}", format::duration(d)))
        .unwrap_or_default();
    let (objects_done, objects) = job.progress.objects();
    let phase = match job.progress.phase() {
        p if job.running() && !p.is_empty() => format!("phase {p} · "),
        _ => String::new(),
    };
    let rate = if job.running() {
        format!(" · {}{eta}", format::rate(job.rate))
    } else {
        String::new()
    };
    let data = match job.flow {
        Flow::In => format!(
            "{} read · {} new · {} saved by dedup",
            format::bytes(s.bytes_done),
            format::bytes(s.bytes_new),
            format::bytes(s.bytes_done.saturating_sub(s.bytes_new)),
        ),
        Flow::Out => format!("{} written", format::bytes(s.bytes_done)),
    };
    lines.push(Line::from(format!(
        "{phase}objects {objects_done}/{objects} · {} files · {data}{rate}",
        s.files_done,
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
            if !r.findings.is_empty() {
                lines.push(Line::from(Span::styled(
                    format!(
                        "isolation: {} reference(s) still point at the source",
                        r.findings.len()
                    ),
                    theme.warn(),
                )));
            }
            for f in &r.findings {
                lines.push(Line::from(Span::styled(
                    format!(
                        "  {}/{} {}: {}",
                        f.object.kind, f.object.name, f.path, f.message
                    ),
                    theme.warn(),
                )));
                lines.push(Line::from(format!("    → {}", f.fix)));
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
                Err(e) => lines.push(Line::from(Span::styled(e.to_string(), theme.error()))),
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
        Some(JobEnd::Failed(e)) => {
            lines.push(Line::from(Span::styled(e.to_string(), theme.error())))
        }
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
