//! The pieces every list is made of: a row (key, cells, tone), something loading, and
//! the fuzzy filter.

use crate::error::TaskError;

/// Something that is loading, loaded, or failed (with what to do).
#[derive(Debug, Clone)]
pub enum Load<T> {
    Loading,
    Ready(T),
    Failed(TaskError),
}

impl<T> Load<T> {
    pub fn ready(&self) -> Option<&T> {
        match self {
            Load::Ready(t) => Some(t),
            _ => None,
        }
    }

    /// The value, if loaded.
    pub fn into_ready(self) -> Option<T> {
        match self {
            Load::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// How a row is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    #[default]
    Normal,
    Ok,
    Warn,
    Error,
    Dim,
}

/// One row of a list: a stable key (for marks and selection) and its cells.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub key: String,
    pub cells: Vec<String>,
    /// A group heading (e.g. a kubeconfig file): shown, never selected.
    pub group: bool,
    pub tone: Tone,
    /// The cells in lower case, for the filter.
    pub(crate) search: String,
}

impl Row {
    pub fn new(key: impl Into<String>, cells: Vec<String>) -> Row {
        let search = cells.join(" ").to_lowercase();
        Row {
            key: key.into(),
            cells,
            group: false,
            tone: Tone::Normal,
            search,
        }
    }

    pub fn group(label: String) -> Row {
        Row {
            key: format!("#group:{label}"),
            cells: vec![label],
            group: true,
            tone: Tone::Normal,
            search: String::new(),
        }
    }

    pub fn tone(mut self, t: Tone) -> Row {
        self.tone = t;
        self
    }
}

/// True when every character of `pattern` occurs in `text` in order (both lower case).
pub fn fuzzy(pattern: &str, text: &str) -> bool {
    let mut chars = text.chars();
    pattern.chars().all(|p| chars.any(|c| c == p))
}
