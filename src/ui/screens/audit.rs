//! The audit trail (`:audit`): every job and denied attempt the repository recorded,
//! newest first, with the selected record in full below; `e` exports it as JSON lines
//! like `ferry audit --json`.

use std::borrow::Cow;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{App, Load, Row, Tone, View};
use crate::format;
use crate::keymap::Command;
use crate::page::{self, Offer, Page};
use crate::widgets;
use ferry_policy::audit::{AuditRecord, Outcome};

/// The repository's audit trail.
pub struct Audit;

const OFFERS: &[Offer] =
    &[Offer::new(Command::Export, "export the trail as JSON lines").hint("export")];

impl Page for Audit {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length};
        (
            &["TIME", "ACTION", "OUTCOME", "WHO", "ROUTE", "RULE", "BYTES"],
            vec![
                Length(19),
                Length(16),
                Length(9),
                Fill(2),
                Fill(3),
                Length(4),
                Length(9),
            ],
        )
    }

    /// Rule, bytes, then who: the time, action, outcome and route stay.
    fn narrow(&self) -> &'static [usize] {
        &[5, 6, 3]
    }

    fn offers(&self) -> &'static [Offer] {
        OFFERS
    }

    fn rows<'a>(&self, app: &'a App, _: &View) -> Load<Cow<'a, [Row]>> {
        page::held(app.audit.as_ref(), |d| &d.rows)
    }

    fn load(&self, app: &mut App, _: &View, force: bool) {
        if force || app.audit.is_none() {
            app.audit = Some(Load::Loading);
            app.tasks.audit(app.repository());
        }
    }

    /// Export writes the trail as JSON lines (what `ferry audit --json` prints) into
    /// the reports folder, on a task.
    fn run(&self, app: &mut App, _: &View, command: Command) {
        if command != Command::Export {
            return;
        }
        let Some(Load::Ready(d)) = &app.audit else {
            app.say(Tone::Normal, "the audit trail is still loading");
            return;
        };
        let path = app.env.reports.join(format!(
            "audit-{}.jsonl",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        app.tasks.export_audit(d.records.clone(), path);
    }

    fn detail(&self) -> Option<fn(&mut Frame, Rect, &App)> {
        Some(detail)
    }
}

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
        Outcome::Partial | Outcome::Abandoned | Outcome::Cancelled => Tone::Warn,
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
