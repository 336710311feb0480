//! Drawing the wizard: the steps across the top, the current step's form, the error
//! of the step in place, and the keys.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use crate::app::{App, Load};
use crate::newcluster::NewCluster;
use crate::widgets;
use crate::wizard_state::{
    LABELS_ROW, MODIFIERS_ROW, OPTION_ROWS, Source, Step, TargetKind, Wizard,
};
use ferry_k8s::plan::Conflict;

/// The steps across the top, the current one marked, those done and to come in their
/// colours; where the labels do not all fit, only the current step keeps its label.
fn step_bar(w: &Wizard, theme: &crate::theme::Theme, width: u16) -> Line<'static> {
    let all = w.steps();
    let label = |i: usize, st: &Step, full: bool| {
        if full || *st == w.step {
            format!(" {}. {} ", i + 1, st.label())
        } else {
            format!(" {} ", i + 1)
        }
    };
    let wide: usize = all
        .iter()
        .enumerate()
        .map(|(i, st)| label(i, st, true).chars().count() + 1)
        .sum();
    let full = wide <= usize::from(width);
    let mut s = Vec::new();
    for (i, st) in all.iter().enumerate() {
        let style = if *st == w.step {
            theme.selected()
        } else if *st < w.step {
            theme.ok()
        } else {
            theme.dim()
        };
        s.push(Span::styled(label(i, st, full), style));
        s.push(Span::raw(" "));
    }
    Line::from(s)
}

fn pointer(sel: bool) -> &'static str {
    if sel { "› " } else { "  " }
}

pub fn draw(f: &mut Frame, area: Rect, app: &App, w: &Wizard) {
    let theme = &app.env.theme;
    f.render_widget(Clear, area);
    let border = theme.border_for(
        app.cluster(w.target_name())
            .map(|c| c.linked.context.as_str()),
    );
    let b = widgets::block(
        theme,
        Line::from(Span::styled(
            format!(" {} · {} ", w.purpose.word(), w.source_label()),
            theme.title(),
        )),
        border,
    );
    let inner = b.inner(area);
    f.render_widget(b, area);
    let [steps, body, err, keys] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Fill(1),
        Constraint::Length(2),
        Constraint::Length(1),
    ])
    .areas(inner);
    f.render_widget(Paragraph::new(step_bar(w, theme, steps.width)), steps);
    let sel = |b: bool| if b { theme.selected() } else { theme.base() };
    let mut lines: Vec<Line> = Vec::new();
    // (line, item) for the lines a click selects.
    let mut items: Vec<(usize, usize)> = Vec::new();
    match w.step {
        Step::Target => {
            lines.push(Line::from(Span::styled(
                format!("Where should {} go?", w.source_label()),
                theme.header(),
            )));
            lines.push(Line::from(Span::styled("Linked clusters", theme.group())));
            for (i, t) in w.targets.iter().enumerate() {
                if t.kind == TargetKind::New {
                    // One heading over the new clusters (one entry per cloud).
                    if i == 0 || w.targets[i - 1].kind != TargetKind::New {
                        lines.push(Line::from(Span::styled("New cluster", theme.group())));
                    }
                    items.push((lines.len(), i));
                    lines.push(Line::from(Span::styled(
                        format!(
                            "{}{}  created, then {} into (one job)",
                            pointer(i == w.target),
                            t.name,
                            w.purpose.done()
                        ),
                        sel(i == w.target),
                    )));
                    continue;
                }
                let c = app.cluster(&t.name);
                let state = match c.and_then(|c| c.facts.as_ref()) {
                    None => "probing…".to_string(),
                    Some(Ok(f)) => format!(
                        "{} · {} node(s) · classes: {}",
                        f.version,
                        f.nodes,
                        f.storage_classes
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    Some(Err(e)) => format!("unreachable: {e}"),
                };
                let ro = app
                    .read_only_reason(&t.name)
                    .map(|_| " (read-only)")
                    .unwrap_or("");
                items.push((lines.len(), i));
                match &t.denied {
                    None => lines.push(Line::from(Span::styled(
                        format!("{}{}{ro}  {state}", pointer(i == w.target), t.name),
                        sel(i == w.target),
                    ))),
                    // Shown disabled with the reason, never hidden.
                    Some(reason) => {
                        lines.push(Line::from(Span::styled(
                            format!("{}{}{ro}  denied by policy", pointer(i == w.target), t.name),
                            if i == w.target {
                                theme.selected()
                            } else {
                                theme.dim()
                            },
                        )));
                        items.push((lines.len(), i));
                        lines.push(Line::from(Span::styled(
                            format!("      {reason}"),
                            theme.dim(),
                        )));
                    }
                }
            }
        }
        Step::Cluster => {
            lines.push(Line::from(Span::styled(
                match w.creating() {
                    Some(NewCluster::Aks(_)) => {
                        "The new cluster (↑↓ field, type to edit, ←/→ subscription)"
                    }
                    _ => "The new cluster (↑↓ field, type to edit, ←/→ account and region)",
                },
                theme.header(),
            )));
            if let Some(n) = w.creating() {
                let at = n.selected();
                for (i, (label, value)) in n.rows().into_iter().enumerate() {
                    items.push((lines.len(), i));
                    lines.push(Line::from(vec![
                        Span::styled(format!("{}{label:<22}", pointer(i == at)), sel(i == at)),
                        Span::styled(
                            format!("{value}{}", if i == at && i > 0 { "▏" } else { "" }),
                            theme.input(),
                        ),
                    ]));
                }
            }
        }
        Step::Namespaces => {
            lines.push(Line::from(Span::styled(
                format!(
                    "Namespaces on {} (type to edit the target name; del leaves one out){}",
                    w.target_name(),
                    if w.whole {
                        " · the whole cluster: every cluster-scoped object comes along"
                    } else {
                        ""
                    }
                ),
                theme.header(),
            )));
            for (i, (from, to)) in w.ns.iter().enumerate() {
                let ok = ferry_k8s::plan::is_dns_label(to);
                if w.left_out.contains(from) {
                    items.push((lines.len(), i));
                    lines.push(Line::from(vec![
                        Span::styled(
                            format!("{}{from:<24}", pointer(i == w.ns_sel)),
                            sel(i == w.ns_sel),
                        ),
                        Span::styled("   left out (del takes it again)", theme.dim()),
                    ]));
                    continue;
                }
                let mut spans = vec![
                    Span::styled(
                        format!("{}{from:<24} → ", pointer(i == w.ns_sel)),
                        sel(i == w.ns_sel),
                    ),
                    Span::styled(
                        format!("{to}{}", if i == w.ns_sel { "▏" } else { "" }),
                        theme.input(),
                    ),
                ];
                if !ok {
                    spans.push(Span::styled("  ✗ not a DNS label", theme.error()));
                }
                items.push((lines.len(), i));
                lines.push(Line::from(spans));
            }
        }
        Step::StorageClasses => {
            lines.push(Line::from(Span::styled(
                format!("Storage classes on {} (←/→ choose)", w.target_name()),
                theme.header(),
            )));
            let target: Vec<String> = w
                .target_classes(app)
                .map(|t| t.into_iter().map(|c| c.name).collect())
                .unwrap_or_default();
            match &w.classes_used {
                Load::Loading => lines.push(Line::from(Span::styled(
                    "reading which classes the claims use…",
                    theme.dim(),
                ))),
                Load::Failed(e) => {
                    lines.push(Line::from(Span::styled(e.to_string(), theme.error())))
                }
                Load::Ready(used) if used.is_empty() => {
                    lines.push(Line::from("no claims: nothing to map"))
                }
                Load::Ready(_) => {
                    for (i, (from, to)) in w.sc.iter().enumerate() {
                        let flag = if to.is_empty() {
                            Span::styled("  ✗ not mapped", theme.error())
                        } else if !target.contains(to) {
                            Span::styled(
                                format!("  ✗ {} lacks {to}", w.target_name()),
                                theme.error(),
                            )
                        } else {
                            Span::styled("  ✓", theme.ok())
                        };
                        items.push((lines.len(), i));
                        lines.push(Line::from(vec![
                            Span::styled(
                                format!("{}{from:<24} → ", pointer(i == w.sc_sel)),
                                sel(i == w.sc_sel),
                            ),
                            Span::styled(
                                if to.is_empty() {
                                    "?".to_string()
                                } else {
                                    to.clone()
                                },
                                theme.input(),
                            ),
                            flag,
                        ]));
                    }
                }
            }
        }
        Step::Options => {
            lines.push(Line::from(Span::styled(
                "Options (space or ←/→ change; type labels as k=v,k2=v2, or a file's path)",
                theme.header(),
            )));
            for (i, label) in OPTION_ROWS.iter().enumerate() {
                let value = match i {
                    0 => match w.conflict {
                        Conflict::Skip => "skip existing objects".to_string(),
                        Conflict::Update => "update existing objects".into(),
                        Conflict::Fail => "fail on existing objects".into(),
                    },
                    1 => {
                        if w.include_volumes {
                            "yes".into()
                        } else {
                            "no (objects only)".into()
                        }
                    }
                    2 => yes_no(w.scale_to_zero),
                    4 => yes_no(w.suspend_cronjobs),
                    5 => yes_no(w.include_completed_jobs),
                    MODIFIERS_ROW => format!(
                        "{}{}",
                        if w.modifiers_path.is_empty() && w.opt_sel != MODIFIERS_ROW {
                            "none"
                        } else {
                            w.modifiers_path.as_str()
                        },
                        if w.opt_sel == MODIFIERS_ROW {
                            "▏"
                        } else {
                            ""
                        }
                    ),
                    _ => format!(
                        "{}{}",
                        w.labels,
                        if w.opt_sel == LABELS_ROW { "▏" } else { "" }
                    ),
                };
                items.push((lines.len(), i));
                lines.push(Line::from(vec![
                    Span::styled(
                        format!("{}{label:<26}", pointer(i == w.opt_sel)),
                        sel(i == w.opt_sel),
                    ),
                    Span::styled(value, theme.input()),
                ]));
            }
        }
        Step::Plan if w.creating().is_some() => {
            lines.push(Line::from(Span::styled(
                format!(
                    "Creation + {}, as one job on :jobs (nothing exists yet to plan against):",
                    w.purpose.word()
                ),
                theme.header(),
            )));
            if let Some(n) = w.creating() {
                for l in n.summary() {
                    lines.push(Line::from(l));
                }
            }
            lines.push(Line::from(match &w.source {
                Source::Snapshot { .. } => format!(
                    "then restore {} into it (planned and checked by the policy once it is ready)",
                    w.source_label()
                ),
                Source::Live { cluster, .. } => format!(
                    "then, once it is ready: check the policy, capture {} (a new snapshot), plan and {} it into the new cluster. Nothing is read from {cluster} before.",
                    w.source_label(),
                    w.purpose.word()
                ),
            }));
            for (from, to) in w.taken().filter(|(from, to)| from != to) {
                lines.push(Line::from(format!("  namespace {from} → {to}")));
            }
            if !w.left_out.is_empty() {
                let out: Vec<&str> = w.left_out.iter().map(String::as_str).collect();
                lines.push(Line::from(format!("  left out: {}", out.join(", "))));
            }
            if w.whole {
                lines.push(Line::from(
                    "  every cluster-scoped object too (each restored by its rule)",
                ));
            }
            for (from, to) in &w.sc {
                lines.push(Line::from(format!("  storage class {from} → {to}")));
            }
            if !w.include_volumes {
                lines.push(Line::from("  objects only (no volume data)"));
            }
            lines.push(Line::from(Span::styled(
                "If a step fails, the job lists what was created and how to delete it.",
                theme.dim(),
            )));
        }
        Step::Plan => match &w.plan {
            None | Some(Load::Loading) => {
                let capture = w
                    .capture_job
                    .and_then(|id| app.jobs().iter().find(|j| j.id == id));
                match capture {
                    Some(job) => {
                        lines.push(Line::from(Span::styled(
                            format!(
                                "capturing the source, then planning (job {} on :jobs; J, : or S leave the wizard waiting, esc asks what to do with the capture)",
                                job.id
                            ),
                            theme.dim(),
                        )));
                        let s = job.progress.data.snapshot();
                        lines.push(Line::from(crate::progress::job_line(
                            &job.progress,
                            &s,
                            job.rate,
                        )));
                        for v in job.progress.volumes() {
                            lines.push(Line::from(format!(
                                "  {}/{} {} · {}/{} files · {}/{}",
                                v.namespace,
                                v.pvc,
                                v.state,
                                v.files,
                                v.files_total,
                                crate::format::bytes(v.bytes),
                                crate::format::bytes(v.bytes_total)
                            )));
                        }
                    }
                    None => lines.push(Line::from(Span::styled(
                        "planning (a dry run on the target)…",
                        theme.dim(),
                    ))),
                }
            }
            Some(Load::Failed(e)) => {
                lines.push(Line::from(Span::styled(e.to_string(), theme.error())))
            }
            Some(Load::Ready(p)) => {
                for p in &p.plan.problems {
                    lines.push(Line::from(Span::styled(
                        format!(
                            "{} {}",
                            if p.blocking { "BLOCKING:" } else { "note:" },
                            p.message
                        ),
                        if p.blocking {
                            theme.error()
                        } else {
                            theme.warn()
                        },
                    )));
                }
                if !p.plan.findings.is_empty() {
                    lines.push(Line::from(Span::styled(
                        format!(
                            "isolation: the copy keeps {} reference(s) to the source (listed under Isolation; enter carries it out anyway)",
                            p.plan.findings.len()
                        ),
                        theme.warn(),
                    )));
                }
                for l in p.plan.render_text().lines() {
                    lines.push(Line::from(l.to_string()));
                }
            }
        },
    }
    let scroll = if w.step == Step::Plan {
        w.plan_scroll
    } else {
        0
    };
    let (placed, rows) = layout_lines(lines, body, scroll, theme.base());
    w.plan_rows.set((rows, usize::from(body.height)));
    app.hits.borrow_mut().wizard = items
        .iter()
        .filter_map(|(line, item)| placed.get(*line).and_then(|(r, _)| *r).map(|r| (r, *item)))
        .collect();
    for (area, p) in placed {
        if let Some(area) = area {
            f.render_widget(p, area);
        }
    }
    if let Some(e) = &w.error {
        f.render_widget(
            Paragraph::new(Span::styled(format!("✗ {e}"), theme.error())).wrap(Wrap { trim: true }),
            err,
        );
    }
    let confirm_ok = w.step == Step::Plan
        && app.read_only_reason(w.target_name()).is_none()
        && (w.creating().is_some()
            || matches!(&w.plan, Some(Load::Ready(p)) if p.plan.blocking() == 0));
    let mut k = Vec::new();
    if w.step == Step::Plan {
        if confirm_ok {
            k.extend(widgets::hint(theme, "enter", "carry out the plan", true));
        }
        k.extend(widgets::hint(theme, "↑↓ g G", "scroll", true));
        if w.capture_job.is_some() {
            k.extend(widgets::hint(theme, "J", "jobs (the wizard waits)", true));
        }
    } else {
        k.extend(widgets::hint(theme, "enter", "next", true));
        k.extend(widgets::hint(theme, "↑↓", "select", true));
    }
    k.extend(widgets::hint(
        theme,
        "esc",
        if w.step == Step::Target {
            "close"
        } else {
            "back"
        },
        true,
    ));
    k.extend(widgets::hint(theme, "ctrl-c", "close", true));
    f.render_widget(Paragraph::new(Line::from(k)), keys);
}

/// Lays `lines` out in `body`, each as its own wrapped paragraph, scrolled by `scroll`
/// rows: for each line, where it is drawn (None when scrolled out of view) and the
/// paragraph that draws it there; and the rows all the lines take. Clicks are matched against these same areas, so a
/// line that wraps moves the lines below it for the mouse as it does on screen.
fn layout_lines(
    lines: Vec<Line<'_>>,
    body: Rect,
    scroll: u16,
    style: ratatui::style::Style,
) -> (Vec<(Option<Rect>, Paragraph<'_>)>, usize) {
    let mut y = 0usize;
    let skip = usize::from(scroll);
    let bottom = skip + usize::from(body.height);
    let placed = lines
        .into_iter()
        .map(|l| {
            let p = Paragraph::new(l).wrap(Wrap { trim: false }).style(style);
            let h = p.line_count(body.width).max(1);
            let (top, end) = (y.max(skip), (y + h).min(bottom));
            let area = (top < end).then(|| Rect {
                y: body.y + (top - skip) as u16,
                height: (end - top) as u16,
                ..body
            });
            // A line cut at the top shows its lower rows.
            let p = p.scroll(((top - y) as u16, 0));
            y += h;
            (area, p)
        })
        .collect::<Vec<_>>();
    (placed, y)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}
