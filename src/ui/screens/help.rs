//! Help: the keys of the current screen (from the keymap in force), and the hint line,
//! both drawn from the commands the screen's page offers ([`crate::page`]): what the
//! console says a key does is what it does.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::app::App;
use crate::page;
use crate::widgets;

/// The help popup: every command of the current screen with its keys.
pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.env.theme;
    let view = &app.screen().view;
    let ro = app.env.read_only;
    let mut lines = Vec::new();
    for offer in page::help(view) {
        let keys = app.env.keymap.keys_for(offer.command).join(" ");
        if keys.is_empty() {
            continue;
        }
        let (what, disabled) = (offer.help, ro && offer.changes);
        let mut spans = vec![
            Span::styled(
                format!("{keys:>16}  "),
                if disabled { theme.dim() } else { theme.title() },
            ),
            Span::styled(what, if disabled { theme.dim() } else { theme.base() }),
        ];
        if disabled {
            spans.push(Span::styled("  (read-only: plan only)", theme.warn()));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "any key closes this help",
        theme.dim(),
    )));
    let h = (lines.len() as u16 + 2).min(area.height);
    let r = widgets::centered(area, 78, h);
    widgets::popup(f, r, theme, &format!("keys: {}", view.title()), lines);
}

/// The bottom line when nothing else is said.
pub fn hints(app: &App) -> Vec<Span<'static>> {
    let theme = &app.env.theme;
    let ro = app.env.read_only;
    let mut out = Vec::new();
    let view = &app.screen().view;
    let offers = page::of(view).offers().iter().chain(page::GLOBAL);
    for offer in offers {
        let Some(word) = offer.hint else {
            continue;
        };
        let keys = app.env.keymap.keys_for(offer.command);
        let pick = keys.iter().find(|k| *k == "enter").or(keys.first());
        if let Some(k) = pick {
            out.extend(widgets::hint(
                theme,
                k.clone(),
                word,
                !(ro && offer.changes),
            ));
        }
    }
    out
}
