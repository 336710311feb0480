//! Drawing the console from the app's state: the frame (breadcrumbs, body, status
//! line), each screen's rows and columns, and the overlays (help, quit, wizard).
//! Nothing here changes state beyond the list offsets it keeps in view.

pub mod audit;
pub mod clusters;
pub mod files;
pub mod help;
pub mod jobs;
pub mod namespaces;
pub mod snapshots;
pub mod wizard;
pub mod workloads;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{App, Hits, Load, Mode, RestorePrompt, Tone};
use crate::keymap::Command;
use crate::page;
use crate::widgets;

/// The smallest terminal the console draws in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Draws one frame.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let theme = &app.env.theme;
    *app.hits.borrow_mut() = Hits::default();
    f.render_widget(Paragraph::new("").style(theme.base()), area);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "Ferry needs a terminal of at least {MIN_WIDTH}x{MIN_HEIGHT}; this one is {}x{}. Please enlarge it (q quits).",
            area.width, area.height
        );
        f.render_widget(
            Paragraph::new(text)
                .style(theme.base())
                .wrap(Wrap { trim: true })
                .centered(),
            Rect {
                y: area.y + area.height / 2 - area.height.min(2) / 2,
                height: area.height.min(4),
                ..area
            },
        );
        return;
    }
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    header(f, head, app);
    match &app.wizard {
        Some(w) => wizard::draw(f, body, app, w),
        None => screen(f, body, app),
    }
    footer(f, foot, app);
    if let Some(p) = &app.prompt {
        restore_prompt(f, body, app, p);
    }
    match &app.mode {
        Mode::Help if app.wizard.is_none() => help::draw(f, body, app),
        Mode::ConfirmQuit => {
            let r = widgets::centered(body, 56, 6);
            widgets::popup(
                f,
                r,
                theme,
                "quit?",
                vec![
                    Line::from(format!(
                        "{} job(s) still running. Quitting cancels them.",
                        app.running_jobs()
                    )),
                    Line::from(""),
                    Line::from(vec![
                        Span::styled("y", theme.title()),
                        Span::raw(" quit and cancel   "),
                        Span::styled("any other key", theme.title()),
                        Span::raw(" stay"),
                    ]),
                ],
            );
        }
        Mode::Confirm(ask) => {
            let width = body.width.clamp(30, 72);
            let inner = usize::from(width.saturating_sub(4)).max(1);
            let lines_needed = ask.question.chars().count().div_ceil(inner) as u16;
            let r = widgets::centered(body, width, lines_needed + 4);
            widgets::popup(
                f,
                r,
                theme,
                ask.title,
                vec![
                    Line::from(ask.question.clone()),
                    Line::from(""),
                    Line::from(vec![
                        Span::styled("y", theme.title()),
                        Span::raw(" yes   "),
                        Span::styled("any other key", theme.title()),
                        Span::raw(" no"),
                    ]),
                ],
            );
        }
        _ => {}
    }
}

/// The restore-to-this-machine prompt: what, the folder (editable), what is wrong.
fn restore_prompt(f: &mut Frame, area: Rect, app: &App, p: &RestorePrompt) {
    let theme = &app.env.theme;
    let what = p.what;
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("Restore the {what} "), theme.base()),
            Span::styled(format!("/{}", p.path), theme.header()),
            Span::styled(
                format!(" of snapshot {}", p.snapshot.id.short()),
                theme.base(),
            ),
        ]),
        Line::from(Span::styled(
            format!(
                "into this folder (it gets {}{}):",
                p.name,
                if p.is_dir { "/" } else { "" }
            ),
            theme.dim(),
        )),
        Line::from(vec![
            Span::styled("› ", theme.title()),
            Span::styled(format!("{}▏", p.dest), theme.input()),
        ]),
    ];
    match (&p.error, p.checking) {
        (Some(e), _) => lines.push(Line::from(Span::styled(format!("✗ {e}"), theme.error()))),
        (None, true) => lines.push(Line::from(Span::styled(
            "checking the folder…",
            theme.dim(),
        ))),
        (None, false) => lines.push(Line::from("")),
    }
    lines.push(Line::from(""));
    let mut k = widgets::hint(theme, "enter", "restore", !p.checking);
    k.extend(widgets::hint(theme, "esc", "cancel", true));
    lines.push(Line::from(k));
    let r = widgets::centered(area, 76, 8);
    widgets::popup(f, r, theme, "restore to this machine", lines);
}

fn header(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.env.theme;
    let mut spans = vec![Span::styled(" ferry ", theme.selected())];
    let mut crumbs = Vec::new();
    for (i, s) in app.stack.iter().enumerate() {
        spans.push(Span::styled(" › ", theme.dim()));
        let style = if i + 1 == app.stack.len() {
            theme.title()
        } else {
            ratatui::style::Style::new().fg(theme.fg)
        };
        let x: usize = spans.iter().map(Span::width).sum();
        let title = Span::styled(s.view.title(), style);
        crumbs.push((x, title.width(), i));
        spans.push(title);
    }
    if let Some(w) = &app.wizard {
        spans.push(Span::styled(" › ", theme.dim()));
        spans.push(Span::styled(
            format!("{} wizard", w.purpose.word()),
            theme.title(),
        ));
    }
    let running = app.running_jobs();
    let right = match (running, app.env.read_only) {
        (0, false) => String::new(),
        (0, true) => "read-only ".into(),
        (n, ro) => format!(
            "{n} job(s) running{} ",
            if ro { " · read-only" } else { "" }
        ),
    };
    let [l, r] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(right.chars().count() as u16),
    ])
    .areas(area);
    // Clickable where drawn (a crumb cut off by the right side is cut off here too).
    app.hits.borrow_mut().crumbs = crumbs
        .into_iter()
        .filter(|(x, _, _)| *x < usize::from(l.width))
        .map(|(x, w, i)| {
            let x = x as u16;
            let r = Rect {
                x: l.x + x,
                width: (w as u16).min(l.width - x),
                ..l
            };
            (r, i)
        })
        .collect();
    f.render_widget(Paragraph::new(Line::from(spans)).style(theme.base()), l);
    f.render_widget(
        Paragraph::new(Span::styled(right, theme.warn())).style(theme.base()),
        r,
    );
}

fn footer(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.env.theme;
    let line = match &app.mode {
        Mode::Filter => Line::from(vec![
            Span::styled("/", theme.title()),
            Span::styled(app.screen().list.filter.clone(), theme.input()),
            Span::styled("▏ enter keeps, esc clears", theme.dim()),
        ]),
        Mode::Command(t) => Line::from(vec![
            Span::styled(":", theme.title()),
            Span::styled(t.clone(), theme.input()),
            Span::styled(
                format!("▏ {}", page::LineCommand::usage("", " · ")),
                theme.dim(),
            ),
        ]),
        _ => match &app.status {
            Some((tone, text)) => Line::from(Span::styled(
                text.clone(),
                widgets::tone_style(theme, *tone),
            )),
            None => Line::from(help::hints(app)),
        },
    };
    f.render_widget(Paragraph::new(line).style(theme.base()), area);
}

fn screen(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.env.theme;
    let s = app.screen();
    let border = theme.border_for(
        app.current_cluster()
            .filter(|_| s.view.cluster().is_some())
            .and_then(|c| app.cluster(c))
            .map(|c| c.linked.context.as_str()),
    );
    let mut title = vec![Span::styled(format!(" {} ", s.view.title()), theme.title())];
    if !s.list.filter.is_empty() {
        title.push(Span::styled(format!("/{} ", s.list.filter), theme.input()));
    }
    if !s.list.marks.is_empty() {
        title.push(Span::styled(
            format!("{} marked ", s.list.marks.len()),
            theme.marked(),
        ));
    }
    if let Some(reason) = s.view.cluster().and_then(|c| app.read_only_reason(c)) {
        let _ = reason;
        title.push(Span::styled("read-only ", theme.warn()));
    }
    let block = widgets::block(theme, Line::from(title), border);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let page = page::of(&s.view);
    let detail = page.detail();
    let (list_area, detail_area) = if detail.is_some() {
        // The list takes two fifths of a tall screen, never fewer than 8 lines.
        let list = (inner.height * 2 / 5).max(8);
        let [a, b] = Layout::vertical([Constraint::Length(list), Constraint::Fill(1)]).areas(inner);
        (a, Some(b))
    } else if app.show_yaml && page::offer(&s.view, Command::Yaml).is_some() {
        let [a, b] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(inner);
        (a, Some(b))
    } else {
        (inner, None)
    };
    match page.rows(app, &s.view) {
        Load::Ready(rows) => {
            let (header, widths) = page.columns();
            widgets::table(f, list_area, theme, header, &widths, &rows, &s.list);
        }
        Load::Loading => widgets::message(f, list_area, theme, "loading…", Tone::Dim),
        Load::Failed(e) => widgets::message(f, list_area, theme, &e.to_string(), Tone::Error),
    }
    match (detail_area, detail) {
        (Some(d), Some(draw)) => draw(f, d, app),
        (Some(d), None) => yaml(f, d, app),
        _ => {}
    }
}

fn yaml(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.env.theme;
    let text = app
        .yaml
        .as_ref()
        .map(|(_, t)| t.as_str())
        .unwrap_or("select an object");
    let b = widgets::block(
        theme,
        Line::from(Span::styled(" yaml (as captured) ", theme.title())),
        theme.border,
    );
    f.render_widget(
        Paragraph::new(text.to_string())
            .block(b)
            .scroll((app.yaml_scroll, 0))
            .style(theme.base()),
        area,
    );
}
