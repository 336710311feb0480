//! Console colours: themes as TOML files (`themes/*.toml`, embedded), the user's
//! overrides from `<config>/themes/`, per-context accents, and the fall back to the 16
//! terminal colours when the terminal does not announce true colour.

use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use crate::error::SettingsError;

const DARK: &str = include_str!("../../themes/dark.toml");
const LIGHT: &str = include_str!("../../themes/light.toml");
const HIGH_CONTRAST: &str = include_str!("../../themes/high-contrast.toml");

/// A context-name pattern and the console border colour for it.
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccentRule {
    pub pattern: String,
    pub color: String,
}

/// The names of the built-in themes.
pub const BUILTIN: [&str; 3] = ["dark", "light", "high-contrast"];

/// A theme file: every key optional, missing keys keep the dark theme's colour.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    fg: Option<String>,
    bg: Option<String>,
    dim: Option<String>,
    title: Option<String>,
    border: Option<String>,
    header: Option<String>,
    selected_fg: Option<String>,
    selected_bg: Option<String>,
    marked: Option<String>,
    group: Option<String>,
    ok: Option<String>,
    warn: Option<String>,
    error: Option<String>,
    input: Option<String>,
}

/// Resolved colours.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub fg: Color,
    pub bg: Color,
    pub dim: Color,
    pub title: Color,
    pub border: Color,
    pub header: Color,
    pub selected_fg: Color,
    pub selected_bg: Color,
    pub marked: Color,
    pub group: Color,
    pub ok: Color,
    pub warn: Color,
    pub error: Color,
    pub input: Color,
    /// Border colours for contexts matching a pattern.
    pub accents: Vec<(String, Color)>,
}

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    TrueColor,
    Ansi16,
}

impl ColorDepth {
    /// From `COLORTERM` (`truecolor`/`24bit`) and `TERM` (`*-direct`).
    pub fn detect() -> ColorDepth {
        let colorterm = std::env::var("COLORTERM").unwrap_or_default();
        let term = std::env::var("TERM").unwrap_or_default();
        if matches!(colorterm.as_str(), "truecolor" | "24bit") || term.ends_with("-direct") {
            ColorDepth::TrueColor
        } else {
            ColorDepth::Ansi16
        }
    }
}

/// Parses `#rrggbb` or a terminal colour name.
pub fn parse_color(s: &str) -> Result<Color, SettingsError> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix('#') {
        let not_hex = || SettingsError::NotHex {
            text: s.to_string(),
        };
        let v = u32::from_str_radix(hex, 16).map_err(|_| not_hex())?;
        if hex.len() != 6 {
            return Err(not_hex());
        }
        return Ok(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    }
    Ok(
        match s.to_ascii_lowercase().replace(['-', '_', ' '], "").as_str() {
            "reset" | "default" => Color::Reset,
            "black" => Color::Black,
            "red" => Color::Red,
            "green" => Color::Green,
            "yellow" => Color::Yellow,
            "blue" => Color::Blue,
            "magenta" => Color::Magenta,
            "cyan" => Color::Cyan,
            "gray" | "grey" => Color::Gray,
            "darkgray" | "darkgrey" => Color::DarkGray,
            "lightred" => Color::LightRed,
            "lightgreen" => Color::LightGreen,
            "lightyellow" => Color::LightYellow,
            "lightblue" => Color::LightBlue,
            "lightmagenta" => Color::LightMagenta,
            "lightcyan" => Color::LightCyan,
            "white" => Color::White,
            _ => {
                return Err(SettingsError::NotAColour {
                    text: s.to_string(),
                });
            }
        },
    )
}

/// The nearest of the 16 terminal colours.
pub fn to_ansi16(c: Color) -> Color {
    let Color::Rgb(r, g, b) = c else { return c };
    const PALETTE: [(Color, (i32, i32, i32)); 16] = [
        (Color::Black, (0, 0, 0)),
        (Color::Red, (170, 0, 0)),
        (Color::Green, (0, 170, 0)),
        (Color::Yellow, (170, 85, 0)),
        (Color::Blue, (0, 0, 170)),
        (Color::Magenta, (170, 0, 170)),
        (Color::Cyan, (0, 170, 170)),
        (Color::Gray, (170, 170, 170)),
        (Color::DarkGray, (85, 85, 85)),
        (Color::LightRed, (255, 85, 85)),
        (Color::LightGreen, (85, 255, 85)),
        (Color::LightYellow, (255, 255, 85)),
        (Color::LightBlue, (85, 85, 255)),
        (Color::LightMagenta, (255, 85, 255)),
        (Color::LightCyan, (85, 255, 255)),
        (Color::White, (255, 255, 255)),
    ];
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    PALETTE
        .iter()
        .min_by_key(|(_, (pr, pg, pb))| (pr - r).pow(2) + (pg - g).pow(2) + (pb - b).pow(2))
        .map(|(c, _)| *c)
        .unwrap_or(Color::Reset)
}

fn builtin_text(name: &str) -> Option<&'static str> {
    match name {
        "dark" => Some(DARK),
        "light" => Some(LIGHT),
        "high-contrast" => Some(HIGH_CONTRAST),
        _ => None,
    }
}

/// Sets every key `over` has on `base`.
fn overlay(base: &mut ThemeFile, over: ThemeFile) {
    macro_rules! take {
        ($($f:ident),*) => { $( if over.$f.is_some() { base.$f = over.$f; } )* };
    }
    take!(
        name,
        fg,
        bg,
        dim,
        title,
        border,
        header,
        selected_fg,
        selected_bg,
        marked,
        group,
        ok,
        warn,
        error,
        input
    );
}

fn parse_file(text: &str, what: &str) -> Result<ThemeFile, SettingsError> {
    toml::from_str(text).map_err(|e| SettingsError::ThemeFile {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

impl Theme {
    /// The built-in theme `name` (dark for unknown names).
    pub fn builtin(name: &str) -> Theme {
        let base = parse_file(DARK, "dark").unwrap_or_default();
        let file = builtin_text(name)
            .and_then(|t| parse_file(t, name).ok())
            .unwrap_or_default();
        Theme::resolve(&base, &file).unwrap_or_else(|_| Theme::fallback())
    }

    /// The theme named in the settings: `<config>/themes/NAME.toml` if present (its
    /// keys over the built-in of that name, else over dark), else the built-in. An
    /// unreadable user file is an error that says which file.
    pub fn load(
        name: Option<&str>,
        config_dir: &Path,
        depth: ColorDepth,
    ) -> Result<Theme, SettingsError> {
        let name = name.unwrap_or("dark");
        let base_text = builtin_text(name).unwrap_or(DARK);
        let mut base = parse_file(DARK, "dark")?;
        overlay(&mut base, parse_file(base_text, name)?);
        let user_path = config_dir.join("themes").join(format!("{name}.toml"));
        let user = match std::fs::read_to_string(&user_path) {
            Ok(t) => parse_file(&t, &user_path.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if builtin_text(name).is_none() {
                    return Err(SettingsError::NoTheme {
                        name: name.to_string(),
                        builtin: BUILTIN.join(", "),
                        path: user_path,
                    });
                }
                ThemeFile::default()
            }
            Err(source) => {
                return Err(SettingsError::Read {
                    path: user_path,
                    source,
                });
            }
        };
        let mut t = Theme::resolve(&base, &user)?;
        if depth == ColorDepth::Ansi16 {
            t = t.degraded();
        }
        Ok(t)
    }

    fn resolve(base: &ThemeFile, over: &ThemeFile) -> Result<Theme, SettingsError> {
        let pick = |b: &Option<String>,
                    o: &Option<String>,
                    key: &'static str|
         -> Result<Color, SettingsError> {
            let s = o
                .as_ref()
                .or(b.as_ref())
                .ok_or(SettingsError::MissingColour { key })?;
            parse_color(s).map_err(|e| SettingsError::ThemeColour {
                key,
                source: Box::new(e),
            })
        };
        Ok(Theme {
            name: over
                .name
                .clone()
                .or(base.name.clone())
                .unwrap_or_else(|| "dark".into()),
            fg: pick(&base.fg, &over.fg, "fg")?,
            bg: pick(&base.bg, &over.bg, "bg")?,
            dim: pick(&base.dim, &over.dim, "dim")?,
            title: pick(&base.title, &over.title, "title")?,
            border: pick(&base.border, &over.border, "border")?,
            header: pick(&base.header, &over.header, "header")?,
            selected_fg: pick(&base.selected_fg, &over.selected_fg, "selected_fg")?,
            selected_bg: pick(&base.selected_bg, &over.selected_bg, "selected_bg")?,
            marked: pick(&base.marked, &over.marked, "marked")?,
            group: pick(&base.group, &over.group, "group")?,
            ok: pick(&base.ok, &over.ok, "ok")?,
            warn: pick(&base.warn, &over.warn, "warn")?,
            error: pick(&base.error, &over.error, "error")?,
            input: pick(&base.input, &over.input, "input")?,
            accents: Vec::new(),
        })
    }

    /// Terminal colours only, used when nothing in the embedded files parses.
    fn fallback() -> Theme {
        Theme {
            name: "dark".into(),
            fg: Color::Gray,
            bg: Color::Reset,
            dim: Color::DarkGray,
            title: Color::LightBlue,
            border: Color::DarkGray,
            header: Color::Yellow,
            selected_fg: Color::Black,
            selected_bg: Color::LightBlue,
            marked: Color::LightYellow,
            group: Color::Magenta,
            ok: Color::Green,
            warn: Color::Yellow,
            error: Color::Red,
            input: Color::White,
            accents: Vec::new(),
        }
    }

    /// Every colour mapped to the nearest of the 16 terminal colours.
    pub fn degraded(mut self) -> Theme {
        for c in [
            &mut self.fg,
            &mut self.bg,
            &mut self.dim,
            &mut self.title,
            &mut self.border,
            &mut self.header,
            &mut self.selected_fg,
            &mut self.selected_bg,
            &mut self.marked,
            &mut self.group,
            &mut self.ok,
            &mut self.warn,
            &mut self.error,
            &mut self.input,
        ] {
            *c = to_ansi16(*c);
        }
        for (_, c) in &mut self.accents {
            *c = to_ansi16(*c);
        }
        self
    }

    /// Adds the settings' accent rules; a rule with a bad colour is an error.
    pub fn with_accents(
        mut self,
        rules: &[AccentRule],
        depth: ColorDepth,
    ) -> Result<Theme, SettingsError> {
        for r in rules {
            let c = parse_color(&r.color).map_err(|e| SettingsError::Accent {
                pattern: r.pattern.clone(),
                source: Box::new(e),
            })?;
            let c = if depth == ColorDepth::Ansi16 {
                to_ansi16(c)
            } else {
                c
            };
            self.accents.push((r.pattern.clone(), c));
        }
        Ok(self)
    }

    /// The border colour for a context: its accent if one matches, else the theme's.
    pub fn border_for(&self, context: Option<&str>) -> Color {
        context
            .and_then(|ctx| {
                self.accents
                    .iter()
                    .find(|(p, _)| !p.is_empty() && ctx.contains(p.as_str()))
            })
            .map(|(_, c)| *c)
            .unwrap_or(self.border)
    }

    pub fn base(&self) -> Style {
        Style::new().fg(self.fg).bg(self.bg)
    }
    pub fn dim(&self) -> Style {
        Style::new().fg(self.dim)
    }
    pub fn title(&self) -> Style {
        Style::new().fg(self.title).add_modifier(Modifier::BOLD)
    }
    pub fn header(&self) -> Style {
        Style::new().fg(self.header).add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        Style::new().fg(self.selected_fg).bg(self.selected_bg)
    }
    pub fn marked(&self) -> Style {
        Style::new().fg(self.marked).add_modifier(Modifier::BOLD)
    }
    pub fn group(&self) -> Style {
        Style::new().fg(self.group).add_modifier(Modifier::BOLD)
    }
    pub fn ok(&self) -> Style {
        Style::new().fg(self.ok)
    }
    pub fn warn(&self) -> Style {
        Style::new().fg(self.warn)
    }
    pub fn error(&self) -> Style {
        Style::new().fg(self.error).add_modifier(Modifier::BOLD)
    }
    pub fn input(&self) -> Style {
        Style::new().fg(self.input).add_modifier(Modifier::BOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_themes_parse_and_differ() {
        let dir = tempfile::tempdir().unwrap();
        let themes: Vec<Theme> = BUILTIN
            .iter()
            .map(|n| Theme::load(Some(n), dir.path(), ColorDepth::TrueColor).unwrap())
            .collect();
        assert_eq!(themes[0].name, "dark");
        assert_ne!(themes[0].fg, themes[1].fg);
        assert_eq!(themes[2].bg, Color::Black);
    }

    #[test]
    fn user_file_overrides_and_unknown_names_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("themes")).unwrap();
        std::fs::write(dir.path().join("themes/mine.toml"), "fg = \"#010203\"\n").unwrap();
        let t = Theme::load(Some("mine"), dir.path(), ColorDepth::TrueColor).unwrap();
        assert_eq!(t.fg, Color::Rgb(1, 2, 3));
        assert_eq!(t.bg, Theme::builtin("dark").bg);
        let e = Theme::load(Some("nope"), dir.path(), ColorDepth::TrueColor).unwrap_err();
        assert!(matches!(e, SettingsError::NoTheme { .. }), "{e}");
        assert!(e.to_string().contains("there is no theme"), "{e}");
        std::fs::write(dir.path().join("themes/bad.toml"), "fg = \"#zz\"\n").unwrap();
        let e = Theme::load(Some("bad"), dir.path(), ColorDepth::TrueColor).unwrap_err();
        assert!(
            matches!(e, SettingsError::ThemeColour { key: "fg", .. }),
            "{e}"
        );
    }

    #[test]
    fn sixteen_colours_and_accents() {
        assert_eq!(to_ansi16(Color::Rgb(250, 10, 10)), Color::Red);
        assert_eq!(to_ansi16(Color::Rgb(0, 0, 0)), Color::Black);
        let dir = tempfile::tempdir().unwrap();
        let t = Theme::load(None, dir.path(), ColorDepth::Ansi16).unwrap();
        assert!(!matches!(t.fg, Color::Rgb(..)));
        let t = t
            .with_accents(
                &[AccentRule {
                    pattern: "prod".into(),
                    color: "red".into(),
                }],
                ColorDepth::Ansi16,
            )
            .unwrap();
        assert_eq!(t.border_for(Some("ferry-prod")), Color::Red);
        assert_eq!(t.border_for(Some("ferry-qa")), t.border);
    }
}
