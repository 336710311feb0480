//! Keys to commands. Commands are data ([`Command`], a serde enum); the default bindings are
//! `keymap-default.toml` (embedded) and the user's `<config>/keymap.toml` is laid over
//! them, key by key.

use std::collections::HashMap;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

use crate::error::SettingsError;

const DEFAULT: &str = include_str!("keymap-default.toml");

/// Everything a key can ask the console to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Select the next row.
    Down,
    /// Select the previous row.
    Up,
    /// One page down.
    PageDown,
    /// One page up.
    PageUp,
    /// The first row.
    Top,
    /// The last row.
    Bottom,
    /// Go into the selected item (or confirm a wizard step).
    Enter,
    /// Go back one screen (or one wizard step); clears a filter first.
    Back,
    /// Start typing a fuzzy filter.
    Filter,
    /// Start typing a command (`:clusters`, `:ns`, `:snapshots`, `:jobs`, `:ctx NAME`).
    #[serde(rename = "command")]
    CommandLine,
    /// Mark or unmark the selected row.
    Mark,
    /// Mark every row shown (again: unmark them).
    MarkAll,
    /// Show the keys of the current screen.
    Help,
    /// Leave the console (asks first while jobs run).
    Quit,
    /// Back up the marked (or selected) namespaces or workloads.
    Backup,
    /// Migrate the marked items to another cluster (wizard).
    Migrate,
    /// Clone the marked items into a new namespace (wizard).
    Clone,
    /// Restore the selected snapshot (wizard).
    Restore,
    /// Restore the selected file, folder or volume of a snapshot into a folder of this
    /// machine (asks which folder; runs as a job).
    Download,
    /// Cancel the selected job.
    Cancel,
    /// Pause the selected running job, or resume it.
    Pause,
    /// The selected object's YAML, full screen (searchable).
    Yaml,
    /// Show or hide the YAML pane beside the list (it follows the selection).
    YamlPane,
    /// The selected object described (as `kubectl describe`, with what moves with it).
    Describe,
    /// Switch between workloads and PVCs of a namespace.
    Switch,
    /// Load the screen's data again.
    Refresh,
    /// Sort by the next column (shift + a column's first letter sorts by that one).
    SortNext,
    /// Go to the jobs screen.
    Jobs,
    /// Go to the snapshots screen.
    Snapshots,
    /// Export what the screen lists (the audit trail, as JSON lines).
    Export,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeymapFile {
    #[serde(default)]
    keys: HashMap<String, Command>,
}

/// A key with its modifiers, as written in a keymap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

/// Parses `j`, `G`, `ctrl-c`, `alt-x`, `enter`, `space`, `pagedown`, ...
pub fn parse_key(s: &str) -> Result<Key, SettingsError> {
    let mut ctrl = false;
    let mut alt = false;
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix("ctrl-") {
            ctrl = true;
            rest = r;
        } else if let Some(r) = rest.strip_prefix("alt-") {
            alt = true;
            rest = r;
        } else {
            break;
        }
    }
    let code = match rest {
        "enter" => KeyCode::Enter,
        "esc" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backtab" => KeyCode::BackTab,
        "space" => KeyCode::Char(' '),
        "backspace" => KeyCode::Backspace,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "pageup" => KeyCode::PageUp,
        "pagedown" => KeyCode::PageDown,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        other => {
            let mut chars = other.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => KeyCode::Char(c),
                _ => return Err(SettingsError::NotAKey { key: s.to_string() }),
            }
        }
    };
    Ok(Key { code, ctrl, alt })
}

/// How a key is shown in help.
pub fn key_label(k: &Key) -> String {
    let base = match k.code {
        KeyCode::Char(' ') => "space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "enter".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Tab => "tab".into(),
        KeyCode::BackTab => "backtab".into(),
        KeyCode::Backspace => "backspace".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageUp => "pgup".into(),
        KeyCode::PageDown => "pgdn".into(),
        KeyCode::Home => "home".into(),
        KeyCode::End => "end".into(),
        other => format!("{other:?}"),
    };
    match (k.ctrl, k.alt) {
        (true, _) => format!("ctrl-{base}"),
        (_, true) => format!("alt-{base}"),
        _ => base,
    }
}

/// The bindings in force.
#[derive(Debug, Clone)]
pub struct Keymap {
    map: HashMap<Key, Command>,
}

impl Keymap {
    /// The defaults only.
    pub fn default_keys() -> Keymap {
        let mut k = Keymap {
            map: HashMap::new(),
        };
        if let Ok(file) = toml::from_str::<KeymapFile>(DEFAULT) {
            for (key, action) in file.keys {
                if let Ok(key) = parse_key(&key) {
                    k.map.insert(key, action);
                }
            }
        }
        k
    }

    /// The defaults with `<config>/keymap.toml` over them; a bad file is an error that
    /// names the file and the key.
    pub fn load(config_dir: &Path) -> Result<Keymap, SettingsError> {
        let mut k = Keymap::default_keys();
        let path = config_dir.join("keymap.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(k),
            Err(source) => return Err(SettingsError::Read { path, source }),
        };
        k.overlay(&text).map_err(|e| SettingsError::Keymap {
            path,
            source: Box::new(e),
        })?;
        Ok(k)
    }

    /// Lays bindings written as TOML over these.
    pub fn overlay(&mut self, text: &str) -> Result<(), SettingsError> {
        let file: KeymapFile = toml::from_str(text)?;
        for (key, action) in file.keys {
            self.map.insert(parse_key(&key)?, action);
        }
        Ok(())
    }

    /// The action bound to a key event.
    pub fn action(&self, ev: &KeyEvent) -> Option<Command> {
        // Shifted letters arrive as upper-case characters: shift is not compared.
        let key = Key {
            code: ev.code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
        };
        self.map.get(&key).copied()
    }

    /// The keys bound to an action, for help, sorted.
    pub fn keys_for(&self, a: Command) -> Vec<String> {
        let mut v: Vec<String> = self
            .map
            .iter()
            .filter(|(_, b)| **b == a)
            .map(|(k, _)| key_label(k))
            .collect();
        v.sort_by_key(|s| (s.chars().count(), s.clone()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn defaults_and_overrides() {
        let mut k = Keymap::default_keys();
        assert_eq!(
            k.action(&ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Command::Down)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Command::Quit)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Command::Bottom)
        );
        k.overlay("[keys]\n\"ctrl-d\" = \"page_down\"\n\"j\" = \"up\"\n")
            .unwrap();
        assert_eq!(
            k.action(&ev(KeyCode::Char('d'), KeyModifiers::CONTROL)),
            Some(Command::PageDown)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Command::Up)
        );
        assert!(k.overlay("[keys]\n\"j\" = \"fly\"\n").is_err());
        assert!(k.overlay("[keys]\n\"jj\" = \"up\"\n").is_err());
        assert!(k.keys_for(Command::Down).contains(&"↓".to_string()));
    }
}
