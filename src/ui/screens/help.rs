//! Help: the keys of the current screen (from the keymap in force), and the hint line.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::app::{App, View};
use crate::keymap::Command;
use crate::widgets;

/// The actions that mean something on a view, with what they do there.
pub fn actions(view: &View) -> Vec<(Command, &'static str)> {
    let mut v = vec![
        (Command::Down, "next row"),
        (Command::Up, "previous row"),
        (Command::PageDown, "page down"),
        (Command::PageUp, "page up"),
        (Command::Top, "first row"),
        (Command::Bottom, "last row"),
    ];
    match view {
        View::Clusters => v.push((Command::Enter, "open the cluster's namespaces")),
        View::Namespaces { .. } => {
            v.push((Command::Enter, "open the namespace's workloads"));
            v.push((Command::Mark, "mark namespaces"));
            v.push((Command::Backup, "back up the marked namespaces"));
            v.push((Command::Migrate, "migrate them to another cluster"));
            v.push((Command::Clone, "clone them into new namespaces"));
        }
        View::Workloads { .. } => {
            v.push((Command::Enter, "show the YAML"));
            v.push((Command::Switch, "show the PVCs"));
            v.push((Command::Mark, "mark workloads"));
            v.push((
                Command::Backup,
                "back up the marked workloads and what they need",
            ));
            v.push((Command::Migrate, "migrate them to another cluster"));
            v.push((Command::Clone, "clone them into a new namespace"));
        }
        View::Pvcs { .. } => {
            v.push((Command::Enter, "show the YAML"));
            v.push((Command::Switch, "show the workloads"));
        }
        View::Snapshots => {
            v.push((
                Command::Enter,
                "open the snapshot (a folder backup: its files)",
            ));
            v.push((Command::Restore, "restore it (wizard)"));
        }
        View::Snapshot { .. } => {
            v.push((
                Command::Enter,
                "browse a volume's files, or show the object's YAML",
            ));
            v.push((Command::Download, "restore the volume to this machine"));
            v.push((Command::Restore, "restore this snapshot (wizard)"));
        }
        View::Files { .. } => {
            v.push((Command::Enter, "open the folder"));
            v.push((
                Command::Download,
                "restore the file or folder to this machine",
            ));
            v.push((Command::Restore, "restore this snapshot (wizard)"));
        }
        View::Jobs => {
            v.push((Command::Cancel, "cancel the selected job"));
            v.push((Command::Pause, "pause or resume the selected job"));
        }
        View::Audit => {
            v.push((Command::Export, "export the trail as JSON lines"));
        }
    }
    v.extend([
        (Command::Yaml, "show or hide the YAML pane"),
        (Command::Refresh, "load again"),
        (Command::Back, "back (clears a filter first)"),
        (Command::Filter, "filter (fuzzy)"),
        (
            Command::CommandLine,
            "command: clusters, ns, ctx NAME, snapshots, jobs, audit",
        ),
        (Command::Jobs, "jobs"),
        (Command::Snapshots, "snapshots"),
        (Command::Help, "this help"),
        (Command::Quit, "quit"),
    ]);
    v
}

fn changes(a: Command) -> bool {
    matches!(a, Command::Migrate | Command::Clone | Command::Restore)
}

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let theme = &app.env.theme;
    let view = &app.screen().view;
    let ro = app.env.read_only;
    let mut lines = Vec::new();
    for (a, what) in actions(view) {
        let keys = app.env.keymap.keys_for(a).join(" ");
        if keys.is_empty() {
            continue;
        }
        let disabled = ro && changes(a);
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
    let mut add = |a: Command, what: &'static str, enabled: bool| {
        let keys = app.env.keymap.keys_for(a);
        let pick = keys.iter().find(|k| *k == "enter").or(keys.first());
        if let Some(k) = pick {
            out.extend(widgets::hint(theme, k.clone(), what, enabled));
        }
    };
    match &app.screen().view {
        View::Clusters => add(Command::Enter, "open", true),
        View::Namespaces { .. } | View::Workloads { .. } => {
            add(Command::Enter, "open", true);
            add(Command::Mark, "mark", true);
            add(Command::Backup, "backup", true);
            add(Command::Migrate, "migrate", !ro);
            add(Command::Clone, "clone", !ro);
        }
        View::Pvcs { .. } => add(Command::Switch, "workloads", true),
        View::Snapshots => {
            add(Command::Enter, "open", true);
            add(Command::Restore, "restore", !ro);
        }
        View::Snapshot { .. } => {
            add(Command::Enter, "open", true);
            add(Command::Download, "restore here", true);
            add(Command::Restore, "restore", !ro);
        }
        View::Files { .. } => {
            add(Command::Enter, "open", true);
            add(Command::Download, "restore here", true);
        }
        View::Jobs => {
            add(Command::Cancel, "cancel", true);
            add(Command::Pause, "pause", true);
        }
        View::Audit => add(Command::Export, "export", true),
    }
    add(Command::Filter, "filter", true);
    add(Command::CommandLine, "command", true);
    add(Command::Help, "help", true);
    add(Command::Quit, "quit", true);
    out
}
