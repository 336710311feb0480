//! Drawing pieces the screens share: the row table (only the visible window is built,
//! so long lists cost what the screen shows), centred pop-ups, a bordered block.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row as TRow, Table, Wrap};

use crate::app::{App, ListState, Row, Tone};
use crate::theme::Theme;

pub fn tone_style(theme: &Theme, t: Tone) -> Style {
    match t {
        Tone::Normal => Style::new().fg(theme.fg),
        Tone::Ok => theme.ok(),
        Tone::Warn => theme.warn(),
        Tone::Error => theme.error(),
        Tone::Dim => theme.dim(),
    }
}

/// A bordered block titled `title`, its border in `border`'s colour.
pub fn block<'a>(theme: &Theme, title: Line<'a>, border: ratatui::style::Color) -> Block<'a> {
    Block::bordered()
        .border_style(Style::new().fg(border))
        .title(title)
        .style(theme.base())
}

/// Draws `rows` (through the list's filter) as a table with a header, the selection
/// highlighted and marks flagged; keeps the selection in view.
pub fn table(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    header: &[&str],
    widths: &[Constraint],
    rows: &[Row],
    list: &ListState,
) {
    let vis = App::visible(rows, &list.filter);
    let height = area.height.saturating_sub(1) as usize;
    list.page.set(height.max(1));
    let sel = list.selected.min(vis.len().saturating_sub(1));
    let mut off = list.offset.get();
    if sel < off {
        off = sel;
    } else if height > 0 && sel >= off + height {
        off = sel + 1 - height;
    }
    off = off.min(vis.len().saturating_sub(height));
    list.offset.set(off);
    list.area.set(Rect {
        y: area.y.saturating_add(1),
        height: area.height.saturating_sub(1),
        ..area
    });
    let body = vis
        .iter()
        .enumerate()
        .skip(off)
        .take(height)
        .filter_map(|(i, ri)| {
            let r = rows.get(*ri)?;
            if r.group {
                return Some(TRow::new(vec![Line::from(Span::styled(
                    format!("▾ {}", r.cells.first().map(String::as_str).unwrap_or("")),
                    theme.group(),
                ))]));
            }
            let marked = list.marks.contains(&r.key);
            let mut style = tone_style(theme, r.tone);
            if marked {
                style = theme.marked();
            }
            if i == sel {
                style = theme.selected();
            }
            let mut cells: Vec<String> = r.cells.clone();
            if let Some(first) = cells.first_mut() {
                *first = format!("{}{}", if marked { "● " } else { "  " }, first);
            }
            Some(TRow::new(cells).style(style))
        });
    let head = TRow::new(
        header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                if i == 0 {
                    format!("  {h}")
                } else {
                    (*h).to_string()
                }
            })
            .collect::<Vec<_>>(),
    )
    .style(theme.header());
    let t = Table::new(body, fitted(widths, header, rows, &vis, area.width))
        .header(head)
        .column_spacing(1)
        .style(theme.base());
    f.render_widget(t, area);
    // Group headings span the whole width, over their (empty) table row.
    for (line, ri) in vis.iter().skip(off).take(height).enumerate() {
        if let Some(r) = rows.get(*ri).filter(|r| r.group) {
            let y = area.y + 1 + line as u16;
            f.render_widget(
                Paragraph::new(Span::styled(
                    format!("▾ {}", r.cells.first().map(String::as_str).unwrap_or("")),
                    theme.group(),
                ))
                .style(theme.base()),
                Rect {
                    y,
                    height: 1,
                    ..area
                },
            );
        }
    }
    if vis.is_empty() {
        let msg = if list.filter.is_empty() {
            "nothing here".to_string()
        } else {
            format!("nothing matches {:?}: esc clears the filter", list.filter)
        };
        if area.height > 2 {
            let r = Rect {
                y: area.y + 1,
                height: 1,
                ..area
            };
            f.render_widget(Paragraph::new(Span::styled(msg, theme.dim())), r);
        }
    }
}

/// The columns' widths: a `Min(n)` column grows to its widest cell among the rows the
/// filter lets through (the first column's two marker places included), up to half of
/// `width`, so names like `eks:profile/region/cluster` are not cut while there is room;
/// a fixed first column gets the marker places on top of its width; the other
/// constraints stay as given.
fn fitted(
    widths: &[Constraint],
    header: &[&str],
    rows: &[Row],
    vis: &[usize],
    width: u16,
) -> Vec<Constraint> {
    widths
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Constraint::Min(min) => {
                let widest = vis
                    .iter()
                    .filter_map(|ri| rows.get(*ri))
                    .filter(|r| !r.group)
                    .filter_map(|r| r.cells.get(i))
                    .map(|c| Span::raw(c.as_str()).width())
                    .chain(header.get(i).map(|h| h.chars().count()))
                    .max()
                    .unwrap_or(0)
                    + if i == 0 { 2 } else { 0 };
                let widest = u16::try_from(widest).unwrap_or(u16::MAX);
                Constraint::Length(widest.clamp(*min, (width / 2).max(*min)))
            }
            // The first cells carry the two marker places (`● `) too.
            Constraint::Length(n) if i == 0 => Constraint::Length(n + 2),
            c => *c,
        })
        .collect()
}

/// A message in the middle of an area (loading, errors).
pub fn message(f: &mut Frame, area: Rect, theme: &Theme, text: &str, tone: Tone) {
    let inner = Rect {
        y: area.y + area.height / 3,
        height: area.height.saturating_sub(area.height / 3),
        ..area
    };
    f.render_widget(
        Paragraph::new(text.to_string())
            .style(tone_style(theme, tone))
            .wrap(Wrap { trim: true })
            .centered(),
        inner,
    );
}

/// A rectangle of `w` x `h` centred in `area` (clipped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    r
}

/// Clears `area` and draws a bordered pop-up with `lines`.
pub fn popup(f: &mut Frame, area: Rect, theme: &Theme, title: &str, lines: Vec<Line<'_>>) {
    f.render_widget(Clear, area);
    let b = block(
        theme,
        Line::from(Span::styled(format!(" {title} "), theme.title())),
        theme.title,
    );
    f.render_widget(
        Paragraph::new(lines)
            .block(b)
            .wrap(Wrap { trim: false })
            .style(theme.base()),
        area,
    );
}

/// A key and what it does, for hint lines (struck through when disabled).
pub fn hint(
    theme: &Theme,
    key: impl Into<String>,
    what: &str,
    enabled: bool,
) -> Vec<Span<'static>> {
    let (k, w) = if enabled {
        (
            Style::new().fg(theme.title).add_modifier(Modifier::BOLD),
            theme.dim(),
        )
    } else {
        (
            theme.dim().add_modifier(Modifier::CROSSED_OUT),
            theme.dim().add_modifier(Modifier::CROSSED_OUT),
        )
    };
    vec![
        Span::styled(key.into(), k),
        Span::styled(format!(" {what}  "), w),
    ]
}
