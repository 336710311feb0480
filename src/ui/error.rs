//! Why the console's own files could not be used: a theme, a keymap, the settings'
//! accent rules. Each error names the file or key and says what to write instead.

use std::path::PathBuf;

/// A theme, keymap or accent rule Ferry cannot use.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A colour written `#…` that is not six hex digits.
    #[error("{text:?} is not #rrggbb")]
    NotHex { text: String },
    /// A colour that is neither `#rrggbb` nor a terminal colour's name.
    #[error("{text:?} is not a colour: use #rrggbb or a name like red")]
    NotAColour { text: String },
    /// A key written in a way the keymap does not know.
    #[error(
        "{key:?} is not a key: use a character, or a name such as enter, esc, pagedown, with an optional ctrl- or alt-"
    )]
    NotAKey { key: String },
    /// A file that exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A theme file that is not valid TOML of a theme.
    #[error("cannot read the theme {what}: {reason}")]
    ThemeFile { what: String, reason: String },
    /// The settings name a theme that is neither built in nor a file.
    #[error("there is no theme {name:?}: use one of {builtin} or add {}", path.display())]
    NoTheme {
        name: String,
        builtin: String,
        path: PathBuf,
    },
    /// A theme without a colour every theme needs.
    #[error("the theme lacks {key}")]
    MissingColour { key: &'static str },
    /// A theme colour that does not parse.
    #[error("theme key {key}: {source}")]
    ThemeColour {
        key: &'static str,
        source: Box<SettingsError>,
    },
    /// An accent rule of the settings with a bad colour.
    #[error("accent for {pattern:?} in the settings: {source}")]
    Accent {
        pattern: String,
        source: Box<SettingsError>,
    },
    /// Keymap text that is not TOML of `[keys]` with known commands.
    #[error("{0}")]
    KeymapText(#[from] toml::de::Error),
    /// The user's keymap file is wrong.
    #[error("{}: {source}. Fix the file or move it away", path.display())]
    Keymap {
        path: PathBuf,
        source: Box<SettingsError>,
    },
}
