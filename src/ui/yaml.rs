//! The full-screen YAML of one object (`y`, as in k9s): it scrolls within its lines,
//! `/` searches it (`n` and `N` go to the next and the previous match), and `m` shows
//! or hides the field managers' bookkeeping (`managedFields`, hidden at first, as
//! kubectl does). The same view shows an object described in words (`D`).

use std::cell::Cell;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;

/// The open YAML view.
#[derive(Debug, Clone)]
pub struct YamlView {
    /// What it shows: `Deployment shop/web`.
    pub title: String,
    /// The object shown as YAML; `None` for text (a description).
    object: Option<Value>,
    /// `managedFields` is shown.
    pub managed: bool,
    pub lines: Vec<String>,
    /// The first line shown.
    pub top: usize,
    /// The search being typed (after `/`), until enter or esc.
    pub typing: Option<String>,
    /// The last search, and the lines that match it (lower case, anywhere in a line).
    pub term: String,
    pub matches: Vec<usize>,
    /// Rows the last frame showed (set by the drawing code): a page, and the bottom.
    pub height: Cell<usize>,
}

impl YamlView {
    pub fn new(title: String, object: Value) -> YamlView {
        let mut v = YamlView::text(title, Vec::new());
        v.object = Some(object);
        v.render();
        v
    }

    /// A view of `lines` of text.
    pub fn text(title: String, lines: Vec<String>) -> YamlView {
        YamlView {
            title,
            object: None,
            managed: false,
            lines,
            top: 0,
            typing: None,
            term: String::new(),
            matches: Vec::new(),
            height: Cell::new(20),
        }
    }

    /// Shows YAML (not text).
    pub fn is_yaml(&self) -> bool {
        self.object.is_some()
    }

    fn render(&mut self) {
        let Some(mut o) = self.object.clone() else {
            return;
        };
        if !self.managed
            && let Some(m) = o["metadata"].as_object_mut()
        {
            m.remove("managedFields");
        }
        let text = serde_saphyr::to_string(&o)
            .unwrap_or_else(|e| format!("cannot show this object as YAML: {e}"));
        self.lines = text.lines().map(str::to_string).collect();
        self.find();
        self.top = self.top.min(self.bottom());
    }

    /// The greatest first line: the last line at the bottom of the view.
    pub fn bottom(&self) -> usize {
        self.lines.len().saturating_sub(self.height.get().max(1))
    }

    fn page(&self) -> usize {
        self.height.get().saturating_sub(1).max(1)
    }

    fn scroll_to(&mut self, top: usize) {
        self.top = top.min(self.bottom());
    }

    fn find(&mut self) {
        let term = self.term.to_lowercase();
        self.matches = if term.is_empty() {
            Vec::new()
        } else {
            self.lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.to_lowercase().contains(&term))
                .map(|(i, _)| i)
                .collect()
        };
    }

    /// Shows the next match below the first line shown (`forward`) or the previous one
    /// above it, wrapping around; false when nothing matches.
    fn jump(&mut self, forward: bool, from: usize) -> bool {
        let next = if forward {
            self.matches
                .iter()
                .find(|m| **m >= from)
                .or(self.matches.first())
        } else {
            self.matches
                .iter()
                .rev()
                .find(|m| **m < from)
                .or(self.matches.last())
        };
        match next.copied() {
            Some(line) => {
                // A little context above the match.
                self.scroll_to(line.saturating_sub(2));
                true
            }
            None => false,
        }
    }

    /// The match the view is at: (1-based index, count), when there is a search.
    pub fn at_match(&self) -> Option<(usize, usize)> {
        if self.term.is_empty() {
            return None;
        }
        let at = self
            .matches
            .iter()
            .position(|m| *m >= self.top)
            .map_or(0, |i| i + 1);
        Some((at, self.matches.len()))
    }

    /// One key; false when it closes the view.
    pub fn key(&mut self, k: KeyEvent) -> bool {
        if let Some(typed) = &mut self.typing {
            match k.code {
                KeyCode::Esc => self.typing = None,
                KeyCode::Enter => {
                    self.term = std::mem::take(typed);
                    self.typing = None;
                    self.find();
                    self.jump(true, self.top);
                }
                KeyCode::Backspace => {
                    typed.pop();
                }
                KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => typed.push(c),
                _ => {}
            }
            return true;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Esc | KeyCode::Char('q' | 'y' | 'D') => return false,
            KeyCode::Char('c') if ctrl => return false,
            KeyCode::Down | KeyCode::Char('j') => self.scroll_to(self.top + 1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll_to(self.top.saturating_sub(1)),
            KeyCode::PageDown | KeyCode::Char(' ') => self.scroll_to(self.top + self.page()),
            KeyCode::Char('f') if ctrl => self.scroll_to(self.top + self.page()),
            KeyCode::PageUp => self.scroll_to(self.top.saturating_sub(self.page())),
            KeyCode::Char('b') if ctrl => self.scroll_to(self.top.saturating_sub(self.page())),
            KeyCode::Home | KeyCode::Char('g') => self.top = 0,
            KeyCode::End | KeyCode::Char('G') => self.top = self.bottom(),
            KeyCode::Char('/') => self.typing = Some(String::new()),
            KeyCode::Char('n') => {
                let from = self.top + 3;
                self.jump(true, from);
            }
            KeyCode::Char('N') => {
                let from = self.top + 2;
                self.jump(false, from);
            }
            KeyCode::Char('m') if self.is_yaml() => {
                self.managed = !self.managed;
                self.render();
            }
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn press(v: &mut YamlView, code: KeyCode) -> bool {
        v.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn object() -> Value {
        let env: Vec<Value> = (0..40)
            .map(|i| json!({"name": format!("VAR_{i}"), "value": format!("v{i}")}))
            .collect();
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop",
                         "managedFields": [{"manager": "helm", "operation": "Update"}]},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "env": env}]}}},
        })
    }

    #[test]
    fn it_scrolls_within_its_lines() {
        let mut v = YamlView::new("Deployment shop/web".into(), object());
        v.height.set(10);
        let last = v.lines.len() - 10;
        press(&mut v, KeyCode::Char('G'));
        assert_eq!(v.top, last);
        press(&mut v, KeyCode::Char('j'));
        press(&mut v, KeyCode::PageDown);
        assert_eq!(v.top, last, "never past the bottom");
        press(&mut v, KeyCode::PageUp);
        assert_eq!(v.top, last - 9);
        press(&mut v, KeyCode::Home);
        press(&mut v, KeyCode::Up);
        assert_eq!(v.top, 0);
        press(&mut v, KeyCode::End);
        assert_eq!(v.top, last);
        assert!(!press(&mut v, KeyCode::Esc), "esc closes it");
    }

    #[test]
    fn search_finds_matches_in_turn_and_wraps() {
        let mut v = YamlView::new("Deployment shop/web".into(), object());
        v.height.set(10);
        press(&mut v, KeyCode::Char('/'));
        for c in "var_3".chars() {
            press(&mut v, KeyCode::Char(c));
        }
        // Typing does not scroll; `q` is part of the term, not quit.
        assert_eq!(v.top, 0);
        press(&mut v, KeyCode::Enter);
        // VAR_3 and VAR_30..VAR_39: eleven lines, case-insensitive.
        assert_eq!(v.matches.len(), 11);
        let first = v.matches[0];
        assert!(v.lines[first].contains("VAR_3"), "{}", v.lines[first]);
        assert_eq!(v.top, first - 2);
        assert_eq!(v.at_match(), Some((1, 11)));
        press(&mut v, KeyCode::Char('n'));
        assert_eq!(v.top, v.matches[1] - 2);
        assert_eq!(v.at_match(), Some((2, 11)));
        press(&mut v, KeyCode::Char('N'));
        assert_eq!(v.top, first - 2);
        // Before the first: the last.
        press(&mut v, KeyCode::Char('N'));
        assert_eq!(v.top, (v.matches[10] - 2).min(v.bottom()));
        // No match: the view stays.
        let top = v.top;
        press(&mut v, KeyCode::Char('/'));
        for c in "nothing-like-this".chars() {
            press(&mut v, KeyCode::Char(c));
        }
        press(&mut v, KeyCode::Enter);
        assert!(v.matches.is_empty());
        assert_eq!(v.top, top);
        assert_eq!(v.at_match(), Some((0, 0)));
    }

    #[test]
    fn field_managers_show_only_when_asked() {
        let mut v = YamlView::new("Deployment shop/web".into(), object());
        assert!(!v.lines.iter().any(|l| l.contains("managedFields")));
        press(&mut v, KeyCode::Char('m'));
        assert!(v.lines.iter().any(|l| l.contains("managedFields")));
        assert!(v.lines.iter().any(|l| l.contains("manager: helm")));
        press(&mut v, KeyCode::Char('m'));
        assert!(!v.lines.iter().any(|l| l.contains("managedFields")));
    }
}
