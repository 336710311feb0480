//! The audit trail (`:audit`): every job and denied attempt the repository recorded,
//! newest first, with the selected record in full below; `e` exports it as JSON lines
//! like `ferry audit --json`.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{App, Load, Row, Tone};
use crate::format;
use crate::widgets;
use ferry_policy::audit::{AuditRecord, Outcome};

/// Who did it: the identities the clusters reported, else the local user and host.
pub fn who(r: &AuditRecord) -> String {
    if r.identities.is_empty() {
        return format!("{}@{}", r.local_user, r.host);
    }
    let mut out: Vec<String> = Vec::new();
    for i in &r.identities {
        let s = format!("{}@{}", i.username, i.cluster);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(", ")
}

/// `from -> to`, or the one place a backup or a deletion has.
pub fn route(r: &AuditRecord) -> String {
    match (&r.from, &r.to) {
        (Some(f), Some(t)) => format!("{f} → {t}"),
        (Some(f), None) => f.clone(),
        (None, Some(t)) => format!("→ {t}"),
        (None, None) => "-".into(),
    }
}

fn tone(o: &Outcome) -> Tone {
    match o {
        Outcome::Succeeded => Tone::Ok,
        Outcome::Partial | Outcome::Abandoned => Tone::Warn,
        Outcome::Denied | Outcome::Failed => Tone::Error,
    }
}

/// Newest first; the key is the record's name.
pub fn rows(records: &[AuditRecord]) -> Vec<Row> {
    records
        .iter()
        .rev()
        .map(|r| {
            Row::new(
                r.id.clone(),
                vec![
                    r.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                    r.action.name().to_string(),
                    r.outcome.to_string(),
                    who(r),
                    route(r),
                    r.rule.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                    format::bytes(r.bytes),
                ],
            )
            .tone(tone(&r.outcome))
        })
        .collect()
}

/// The selected record in full: decision, identities with groups, plan, outcome.
pub fn detail(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.env.theme;
    let selected = app.selected_row().and_then(|row| {
        app.audit
            .as_ref()
            .and_then(Load::ready)
            .and_then(|d| d.records.iter().find(|r| r.id == row.key))
    });
    let mut lines: Vec<Line> = Vec::new();
    match selected {
        None => lines.push(Line::from(Span::styled("select a record", theme.dim()))),
        Some(r) => {
            let label = |s: &'static str| Span::styled(format!("{s:<10}"), theme.title());
            lines.push(Line::from(vec![
                label("record"),
                Span::raw(format!(
                    "{} · {} {} · written by {}@{}",
                    r.id,
                    r.action.name(),
                    r.outcome,
                    r.local_user,
                    r.host
                )),
            ]));
            lines.push(Line::from(vec![label("route"), Span::raw(route(r))]));
            lines.push(Line::from(vec![
                label("decision"),
                Span::styled(
                    format!(
                        "{} by {}{}: {}",
                        if r.allowed { "allowed" } else { "denied" },
                        r.policy_seq
                            .map(|s| format!("policy version {s}"))
                            .unwrap_or_else(|| "no policy".into()),
                        r.rule.map(|i| format!(", rule {i}")).unwrap_or_default(),
                        r.reason
                    ),
                    widgets::tone_style(theme, if r.allowed { Tone::Ok } else { Tone::Error }),
                ),
            ]));
            for i in &r.identities {
                lines.push(Line::from(vec![
                    label("identity"),
                    Span::raw(format!(
                        "{} on {} (groups: {})",
                        i.username,
                        i.cluster,
                        i.groups.join(", ")
                    )),
                ]));
            }
            if let Some(p) = &r.plan {
                lines.push(Line::from(vec![label("plan"), Span::raw(p.clone())]));
            }
            if let Some(s) = &r.snapshot {
                lines.push(Line::from(vec![
                    label("snapshot"),
                    Span::raw(s.chars().take(16).collect::<String>()),
                ]));
            }
            lines.push(Line::from(vec![
                label("outcome"),
                Span::styled(
                    format!("{} · {}", r.outcome, format::bytes(r.bytes)),
                    widgets::tone_style(theme, tone(&r.outcome)),
                ),
            ]));
            if let Some(d) = &r.detail {
                lines.push(Line::from(vec![label("detail"), Span::raw(d.clone())]));
            }
        }
    }
    if let Some(Load::Ready(d)) = &app.audit {
        for w in &d.warnings {
            lines.push(Line::from(Span::styled(
                format!("warning: {w}"),
                theme.warn(),
            )));
        }
    }
    let b = widgets::block(
        theme,
        Line::from(Span::styled(
            " record (e exports the trail) ",
            theme.title(),
        )),
        theme.border,
    );
    f.render_widget(
        Paragraph::new(lines)
            .block(b)
            .wrap(Wrap { trim: false })
            .style(theme.base()),
        area,
    );
}
