//! Help: the keys of the current screen (from the keymap in force), and the hint line.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::ui::app::{App, View};
use crate::ui::keymap::Action;
use crate::ui::widgets;

/// The actions that mean something on a view, with what they do there.
pub fn actions(view: &View) -> Vec<(Action, &'static str)> {
    let mut v = vec![
        (Action::Down, "next row"),
        (Action::Up, "previous row"),
        (Action::PageDown, "page down"),
        (Action::PageUp, "page up"),
        (Action::Top, "first row"),
        (Action::Bottom, "last row"),
    ];
    match view {
        View::Clusters => v.push((Action::Enter, "open the cluster's namespaces")),
        View::Namespaces { .. } => {
            v.push((Action::Enter, "open the namespace's workloads"));
            v.push((Action::Mark, "mark namespaces"));
            v.push((Action::Backup, "back up the marked namespaces"));
            v.push((Action::Migrate, "migrate them to another cluster"));
            v.push((Action::Clone, "clone them into new namespaces"));
        }
        View::Workloads { .. } => {
            v.push((Action::Enter, "show the YAML"));
            v.push((Action::Switch, "show the PVCs"));
            v.push((Action::Mark, "mark workloads"));
            v.push((
                Action::Backup,
                "back up the marked workloads and what they need",
            ));
            v.push((Action::Migrate, "migrate them to another cluster"));
            v.push((Action::Clone, "clone them into a new namespace"));
        }
        View::Pvcs { .. } => {
            v.push((Action::Enter, "show the YAML"));
            v.push((Action::Switch, "show the workloads"));
        }
        View::Snapshots => {
            v.push((
                Action::Enter,
                "open the snapshot (a folder backup: its files)",
            ));
            v.push((Action::Restore, "restore it (wizard)"));
        }
        View::Snapshot { .. } => {
            v.push((
                Action::Enter,
                "browse a volume's files, or show the object's YAML",
            ));
            v.push((Action::Download, "restore the volume to this machine"));
            v.push((Action::Restore, "restore this snapshot (wizard)"));
        }
        View::Files { .. } => {
            v.push((Action::Enter, "open the folder"));
            v.push((
                Action::Download,
                "restore the file or folder to this machine",
            ));
            v.push((Action::Restore, "restore this snapshot (wizard)"));
        }
        View::Jobs => {
            v.push((Action::Cancel, "cancel the selected job"));
            v.push((Action::Pause, "pause or resume the selected job"));
        }
        View::Audit => {
            v.push((Action::Export, "export the trail as JSON lines"));
        }
    }
    v.extend([
        (Action::Yaml, "show or hide the YAML pane"),
        (Action::Refresh, "load again"),
        (Action::Back, "back (clears a filter first)"),
        (Action::Filter, "filter (fuzzy)"),
        (
            Action::Command,
            "command: clusters, ns, ctx NAME, snapshots, jobs, audit",
        ),
        (Action::Jobs, "jobs"),
        (Action::Snapshots, "snapshots"),
        (Action::Help, "this help"),
        (Action::Quit, "quit"),
    ]);
    v
}

fn changes(a: Action) -> bool {
    matches!(a, Action::Migrate | Action::Clone | Action::Restore)
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
    let mut add = |a: Action, what: &'static str, enabled: bool| {
        let keys = app.env.keymap.keys_for(a);
        let pick = keys.iter().find(|k| *k == "enter").or(keys.first());
        if let Some(k) = pick {
            out.extend(widgets::hint(theme, k.clone(), what, enabled));
        }
    };
    match &app.screen().view {
        View::Clusters => add(Action::Enter, "open", true),
        View::Namespaces { .. } | View::Workloads { .. } => {
            add(Action::Enter, "open", true);
            add(Action::Mark, "mark", true);
            add(Action::Backup, "backup", true);
            add(Action::Migrate, "migrate", !ro);
            add(Action::Clone, "clone", !ro);
        }
        View::Pvcs { .. } => add(Action::Switch, "workloads", true),
        View::Snapshots => {
            add(Action::Enter, "open", true);
            add(Action::Restore, "restore", !ro);
        }
        View::Snapshot { .. } => {
            add(Action::Enter, "open", true);
            add(Action::Download, "restore here", true);
            add(Action::Restore, "restore", !ro);
        }
        View::Files { .. } => {
            add(Action::Enter, "open", true);
            add(Action::Download, "restore here", true);
        }
        View::Jobs => {
            add(Action::Cancel, "cancel", true);
            add(Action::Pause, "pause", true);
        }
        View::Audit => add(Action::Export, "export", true),
    }
    add(Action::Filter, "filter", true);
    add(Action::Command, "command", true);
    add(Action::Help, "help", true);
    add(Action::Quit, "quit", true);
    out
}
