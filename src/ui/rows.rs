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
    /// An age to draw in cell `.0` from the creation time `.1` when the row is drawn,
    /// so that it ticks without the row being made again.
    pub born: Option<(usize, chrono::DateTime<chrono::Utc>)>,
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
            born: None,
            search,
        }
    }

    pub fn group(label: String) -> Row {
        Row {
            key: format!("#group:{label}"),
            cells: vec![label],
            group: true,
            tone: Tone::Normal,
            born: None,
            search: String::new(),
        }
    }

    pub fn tone(mut self, t: Tone) -> Row {
        self.tone = t;
        self
    }

    /// Cell `col` shows the age of something created at `at` (when known), drawn anew
    /// with each frame.
    pub fn born(mut self, col: usize, at: Option<chrono::DateTime<chrono::Utc>>) -> Row {
        self.born = at.map(|at| (col, at));
        self
    }

    /// The cells as they are to be drawn at `now` (an age brought up to date).
    pub fn cells_at(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        let mut cells = self.cells.clone();
        if let Some((col, at)) = self.born
            && let Some(c) = cells.get_mut(col)
        {
            *c = crate::format::age(at, now);
        }
        cells
    }
}

/// True when every character of `pattern` occurs in `text` in order (both lower case).
pub fn fuzzy(pattern: &str, text: &str) -> bool {
    let mut chars = text.chars();
    pattern.chars().all(|p| chars.any(|c| c == p))
}
