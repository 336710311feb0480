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
    match (&app.wizard, &app.viewer) {
        (Some(w), _) => wizard::draw(f, body, app, w),
        (None, Some(v)) => yaml_view(f, body, app, v),
        (None, None) => screen(f, body, app),
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
        Mode::Pick(p) => pick(f, body, app, p),
        _ => {}
    }
}

/// The whole-cluster backup's namespaces, each with its tick, and what enter does.
fn pick(f: &mut Frame, area: Rect, app: &App, p: &crate::whole::Pick) {
    let theme = &app.env.theme;
    let width = area.width.clamp(40, 76);
    let data = if p.volumes {
        "with their volume data"
    } else {
        "without volume data (read-only)"
    };
    let about = format!(
        "Back up the whole cluster {}: the ticked namespaces {data}, and every cluster-scoped object. System and add-on namespaces start unticked.",
        p.cluster
    );
    let inner_width = usize::from(width.saturating_sub(2)).max(1);
    let about_lines = u16::try_from(about.chars().count().div_ceil(inner_width)).unwrap_or(3);
    // Borders, the text, a blank line, the list, a blank line, the keys (two lines).
    let fixed = about_lines + 6;
    let list_height = u16::try_from(p.items.len())
        .unwrap_or(u16::MAX)
        .min(area.height.saturating_sub(fixed))
        .max(1);
    let r = widgets::centered(area, width, fixed + list_height);
    widgets::popup(f, r, theme, "back up the whole cluster?", Vec::new());
    let inner = Rect {
        x: r.x + 1,
        y: r.y + 1,
        width: r.width.saturating_sub(2),
        height: r.height.saturating_sub(2),
    };
    let [text, _, list, _, keys] = Layout::vertical([
        Constraint::Length(about_lines),
        Constraint::Length(1),
        Constraint::Length(list_height),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner);
    f.render_widget(
        Paragraph::new(about)
            .style(theme.base())
            .wrap(Wrap { trim: true }),
        text,
    );
    // Keep the cursor in view, moving the window as little as possible.
    let height = usize::from(list.height);
    let mut off = p.offset.get();
    if p.cursor < off {
        off = p.cursor;
    } else if p.cursor >= off + height {
        off = p.cursor + 1 - height;
    }
    off = off.min(p.items.len().saturating_sub(height));
    p.offset.set(off);
    let mut hits = app.hits.borrow_mut();
    for (row, (i, item)) in p
        .items
        .iter()
        .enumerate()
        .skip(off)
        .take(height)
        .enumerate()
    {
        let at = Rect {
            y: list.y + row as u16,
            height: 1,
            ..list
        };
        let (pointer, style) = if i == p.cursor {
            ("› ", theme.selected())
        } else {
            ("  ", theme.base())
        };
        let tick = if item.ticked { "[x]" } else { "[ ]" };
        let mut spans = vec![Span::styled(
            format!("{pointer}{tick} {}", item.name),
            style,
        )];
        if item.system {
            spans.push(Span::styled("  system or add-on", theme.dim()));
        }
        f.render_widget(Paragraph::new(Line::from(spans)), at);
        hits.pick.push((at, i));
    }
    let ticked = p.items.iter().filter(|i| i.ticked).count();
    let mut hint = widgets::hint(theme, "space", "tick", true);
    hint.extend(widgets::hint(theme, "a", "all or none", true));
    hint.extend(widgets::hint(theme, "s", "as -A", true));
    let mut second = widgets::hint(
        theme,
        "enter",
        &format!("back up {ticked} namespace(s)"),
        ticked > 0,
    );
    second.extend(widgets::hint(theme, "esc", "leave", true));
    f.render_widget(
        Paragraph::new(vec![Line::from(hint), Line::from(second)]),
        keys,
    );
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
    let line = match (&app.mode, &app.viewer) {
        (_, Some(v)) if app.wizard.is_none() && app.prompt.is_none() => match &v.typing {
            Some(typed) => Line::from(vec![
                Span::styled("/", theme.title()),
                Span::styled(typed.clone(), theme.input()),
                Span::styled("▏ enter searches, esc leaves it", theme.dim()),
            ]),
            None => {
                let mut k = Vec::new();
                for (key, what) in [
                    ("esc", "close"),
                    ("/", "search"),
                    ("n N", "next, previous"),
                    ("g G", "top, bottom"),
                ] {
                    k.extend(widgets::hint(theme, key, what, true));
                }
                if v.is_yaml() {
                    let what = if v.managed {
                        "hide field managers"
                    } else {
                        "field managers"
                    };
                    k.extend(widgets::hint(theme, "m", what, true));
                }
                Line::from(k)
            }
        },
        (Mode::Filter, _) => Line::from(vec![
            Span::styled("/", theme.title()),
            Span::styled(app.screen().list.filter.clone(), theme.input()),
            Span::styled("▏ enter keeps, esc clears", theme.dim()),
        ]),
        (Mode::Command(t), _) => Line::from(vec![
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
            // The wizard and the pick show their own keys; the list's under them do
            // nothing meanwhile.
            None if app.wizard.is_some() || matches!(app.mode, Mode::Pick(_)) => Line::default(),
            None => Line::from(whole_hints(help::hints(app), area.width)),
        },
    };
    f.render_widget(Paragraph::new(line).style(theme.base()), area);
}

/// The key hints (key and words, in pairs of spans) that fit in `width` whole: the
/// last ones are left out rather than cut, all but help's.
fn whole_hints(spans: Vec<Span<'static>>, width: u16) -> Vec<Span<'static>> {
    let mut pairs: Vec<Vec<Span<'static>>> = spans.chunks(2).map(<[_]>::to_vec).collect();
    let is_help = |p: &Vec<Span>| p.get(1).is_some_and(|w| w.content.trim() == "help");
    loop {
        // The trailing spaces of the last hint may go past the edge.
        let all: usize = pairs.iter().flatten().map(Span::width).sum();
        let tail = pairs
            .last()
            .and_then(|p| p.last())
            .map_or(0, |s| s.content.len() - s.content.trim_end().len());
        if all.saturating_sub(tail) <= usize::from(width) {
            break;
        }
        match pairs.iter().rposition(|p| !is_help(p)) {
            Some(i) => {
                pairs.remove(i);
            }
            None => break,
        }
    }
    pairs.concat()
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
    } else if app.show_yaml && page::offer(&s.view, Command::YamlPane).is_some() {
        let [a, b] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(inner);
        (a, Some(b))
    } else {
        (inner, None)
    };
    match app.rows(&s.view) {
        Load::Ready(rows) => {
            let (header, widths) = page.columns();
            // The sorted column says which way.
            let header: Vec<String> = header
                .iter()
                .enumerate()
                .map(|(i, h)| match app.sorting() {
                    Some(s) if s.column == i => {
                        format!("{h}{}", if s.descending { "↓" } else { "↑" })
                    }
                    _ => (*h).to_string(),
                })
                .collect();
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let narrow = page.narrow();
            widgets::table(
                f, list_area, theme, &header, &widths, narrow, &rows, &s.list,
            );
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

/// The full-screen YAML: its lines from the first shown, the search's matches marked
/// (the line the view is at in the selection's colours), where it is in the title.
fn yaml_view(f: &mut Frame, area: Rect, app: &App, v: &crate::yaml::YamlView) {
    let theme = &app.env.theme;
    let mut title = vec![Span::styled(format!(" {} ", v.title), theme.title())];
    if let Some((at, of)) = v.at_match() {
        title.push(Span::styled(
            format!("/{} {at}/{of} ", v.term),
            theme.input(),
        ));
    }
    if v.managed {
        title.push(Span::styled("with managedFields ", theme.dim()));
    }
    let last = (v.top + usize::from(area.height.saturating_sub(2))).min(v.lines.len());
    title.push(Span::styled(
        format!("{}-{} of {} ", (v.top + 1).min(last), last, v.lines.len()),
        theme.dim(),
    ));
    let block = widgets::block(theme, Line::from(title), theme.border);
    let inner = block.inner(area);
    v.height.set(usize::from(inner.height));
    let term = v.term.to_lowercase();
    let current = v.matches.iter().find(|m| **m >= v.top).copied();
    let lines: Vec<Line> = v
        .lines
        .iter()
        .enumerate()
        .skip(v.top)
        .take(usize::from(inner.height))
        .map(|(i, l)| {
            if !term.is_empty() && v.matches.binary_search(&i).is_ok() {
                let style = if Some(i) == current {
                    theme.selected()
                } else {
                    theme.marked()
                };
                Line::from(Span::styled(l.clone(), style))
            } else {
                Line::from(l.clone())
            }
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block).style(theme.base()), area);
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
