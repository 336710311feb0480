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
/// highlighted and marks flagged; keeps the selection in view. When the columns do not
/// fit, those of `narrow` are left out, in its order, until they do; a cell wider than
/// its column is cut at a word's end with `…`, never silently mid-word.
#[allow(clippy::too_many_arguments)]
pub fn table(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    header: &[&str],
    widths: &[Constraint],
    narrow: &[usize],
    rows: &[Row],
    list: &ListState,
) {
    let vis = App::visible(rows, &list.filter);
    let now = chrono::Utc::now();
    let fitted = fitted(widths, header, rows, &vis, area.width);
    let kept = kept(&fitted, narrow, area.width);
    let sizes = spread(
        &kept.iter().map(|i| fitted[*i]).collect::<Vec<_>>(),
        area.width,
    );
    let cut = |cells: &[String]| -> Vec<String> {
        kept.iter()
            .zip(&sizes)
            .map(|(i, w)| clip(cells.get(*i).map_or("", String::as_str), *w).into_owned())
            .collect()
    };
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
            let mut cells: Vec<String> = r.cells_at(now);
            if let Some(first) = cells.first_mut() {
                *first = format!("{}{}", if marked { "● " } else { "  " }, first);
            }
            Some(TRow::new(cut(&cells)).style(style))
        });
    let head: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i == 0 {
                format!("  {h}")
            } else {
                (*h).to_string()
            }
        })
        .collect();
    let head = TRow::new(cut(&head)).style(theme.header());
    let t = Table::new(body, sizes.iter().map(|w| Constraint::Length(*w as u16)))
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
            // The first cells carry the two marker places (`● `) too; a header (with
            // its sort arrow) is never cut.
            Constraint::Length(n) => {
                let head = header.get(i).map_or(0, |h| Span::raw(*h).width());
                let head = u16::try_from(head).unwrap_or(u16::MAX);
                Constraint::Length((*n).max(head) + if i == 0 { 2 } else { 0 })
            }
            c => *c,
        })
        .collect()
}

/// The narrowest a `Fill(1)` column is allowed before columns are left out (a
/// `Fill(n)` column: `n` times that).
const FILL_AT_LEAST: u16 = 10;

/// The least width of a column.
fn least(c: &Constraint) -> u16 {
    match c {
        Constraint::Length(n) | Constraint::Min(n) => *n,
        Constraint::Fill(w) => FILL_AT_LEAST.saturating_mul(*w),
        _ => 0,
    }
}

/// The columns' widths in `width` (a space between each): fixed columns get their
/// length, left to right while there is room; `Fill` columns share what is left by
/// their weights (so each gets its least width whenever all of them can).
fn spread(widths: &[Constraint], width: u16) -> Vec<usize> {
    let spaces = widths.len().saturating_sub(1);
    let mut room = usize::from(width).saturating_sub(spaces);
    let mut out: Vec<usize> = widths
        .iter()
        .map(|c| match c {
            Constraint::Fill(_) => 0,
            c => {
                let w = usize::from(least(c)).min(room);
                room -= w;
                w
            }
        })
        .collect();
    let weights: Vec<usize> = widths
        .iter()
        .map(|c| match c {
            Constraint::Fill(w) => usize::from(*w),
            _ => 0,
        })
        .collect();
    let total: usize = weights.iter().sum();
    let mut given = 0;
    for (o, w) in out.iter_mut().zip(&weights) {
        let share = (room * w).checked_div(total).unwrap_or(0);
        *o += share;
        given += share;
    }
    // What rounding left goes to the first fill column.
    if let Some(i) = weights.iter().position(|w| *w > 0) {
        out[i] += room - given;
    }
    out
}

/// The columns shown in `width`: all of them when their least widths fit, else without
/// those of `narrow`, left out in its order until the rest fits (or `narrow` runs out).
fn kept(widths: &[Constraint], narrow: &[usize], width: u16) -> Vec<usize> {
    let mut kept: Vec<usize> = (0..widths.len()).collect();
    let need = |kept: &[usize]| -> u32 {
        kept.iter()
            .map(|i| u32::from(least(&widths[*i])))
            .sum::<u32>()
            + kept.len().saturating_sub(1) as u32
    };
    for drop in narrow {
        if need(&kept) <= u32::from(width) {
            break;
        }
        kept.retain(|i| i != drop);
    }
    kept
}

/// `text` in at most `width` columns: whole when it fits, else cut after the last word
/// that fits with `…` (inside a word only when the first word alone is too wide).
pub fn clip(text: &str, width: usize) -> std::borrow::Cow<'_, str> {
    use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};
    if text.width() <= width {
        return text.into();
    }
    if width == 0 {
        return "".into();
    }
    // The longest prefix that leaves a column for the ellipsis.
    let (mut used, mut end) = (0, 0);
    for (i, c) in text.char_indices() {
        let w = c.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        used += w;
        end = i + c.len_utf8();
    }
    let head = &text[..end];
    // At a word's end: where the text goes on with a space, or at the last space.
    let at_word = if text[end..].starts_with(' ') {
        head
    } else {
        match head.rfind(' ') {
            Some(sp) if !head[..sp].trim_end().is_empty() => head[..sp].trim_end(),
            _ => head,
        }
    };
    format!("{}…", at_word.trim_end()).into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_too_wide_is_cut_after_a_whole_word() {
        assert_eq!(clip("backup restore clone", 30), "backup restore clone");
        assert_eq!(clip("backup restore clone", 20), "backup restore clone");
        assert_eq!(clip("backup restore clone", 19), "backup restore…");
        assert_eq!(clip("backup restore clone", 14), "backup…");
        assert_eq!(clip("backup restore clone", 15), "backup restore…");
        // One word wider than the column: cut inside it, visibly.
        assert_eq!(clip("ferry-production-eu", 8), "ferry-p…");
        assert_eq!(clip("ünïcödé ✓ wide", 9), "ünïcödé…");
        assert_eq!(clip("abc", 0), "");
        assert_eq!(clip("abc", 1), "…");
    }

    #[test]
    fn narrow_screens_leave_out_columns_in_the_given_order() {
        use Constraint::{Fill, Length};
        let widths = [Length(6), Fill(2), Length(14), Length(9), Length(21)];
        // 6 + 20 + 14 + 9 + 21 + 4 spaces = 74.
        assert_eq!(kept(&widths, &[3, 2], 74), vec![0, 1, 2, 3, 4]);
        assert_eq!(kept(&widths, &[3, 2], 73), vec![0, 1, 2, 4]);
        assert_eq!(kept(&widths, &[3, 2], 50), vec![0, 1, 4]);
        // Nothing more to leave out: the rest stays, however narrow.
        assert_eq!(kept(&widths, &[3, 2], 20), vec![0, 1, 4]);
    }

    #[test]
    fn fill_columns_share_what_fixed_ones_leave_by_weight() {
        use Constraint::{Fill, Length};
        let widths = [Length(6), Fill(3), Length(10), Fill(1)];
        // 80 - 3 spaces - 16 fixed = 61: 45 and 15, the odd column to the first.
        assert_eq!(spread(&widths, 80), vec![6, 46, 10, 15]);
        // Too narrow for the fixed ones: left to right while there is room.
        assert_eq!(spread(&widths, 12), vec![6, 0, 3, 0]);
        assert_eq!(spread(&[], 10), Vec::<usize>::new());
    }
}
