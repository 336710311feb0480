//! The console's screens as components. Each screen ([`View`]) has a [`Page`]: its
//! columns and rows, what it loads, the commands it offers ([`Offer`]: what the
//! command does there, its word in the hint line) and what each does. The app routes a
//! command to the current page only when the page offers it, and the help screen and
//! the hint line are drawn from the same offers, so what a key does and what the
//! console says it does cannot drift apart.
//!
//! Commands every screen shares (moving the selection, filter, `:`, help, quit, going
//! to jobs or snapshots, refresh) are [`NAVIGATION`] and [`GLOBAL`], handled by the app.

use std::borrow::Cow;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use serde_json::Value;

use crate::app::{App, Load, Row, View};
use crate::keymap::Command;
use crate::screens;

/// One command a screen offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub command: Command,
    /// What it does on this screen (the help screen's line).
    pub help: &'static str,
    /// Its word in the hint line, if it has a place there.
    pub hint: Option<&'static str>,
    /// It changes a cluster: a read-only console shows it disabled (the wizard then
    /// plans only).
    pub changes: bool,
}

impl Offer {
    /// An offer shown in help only.
    pub const fn new(command: Command, help: &'static str) -> Offer {
        Offer {
            command,
            help,
            hint: None,
            changes: false,
        }
    }

    /// Also in the hint line, as `word`.
    pub const fn hint(mut self, word: &'static str) -> Offer {
        self.hint = Some(word);
        self
    }

    /// It changes a cluster.
    pub const fn changes(mut self) -> Offer {
        self.changes = true;
        self
    }
}

/// Moving in a list: first in help, handled by the app on every screen.
pub const NAVIGATION: &[Offer] = &[
    Offer::new(Command::Down, "next row"),
    Offer::new(Command::Up, "previous row"),
    Offer::new(Command::PageDown, "page down"),
    Offer::new(Command::PageUp, "page up"),
    Offer::new(Command::Top, "first row"),
    Offer::new(Command::Bottom, "last row"),
];

/// What every screen has besides its own commands: last in help and the hint line.
pub const GLOBAL: &[Offer] = &[
    Offer::new(Command::Refresh, "load again"),
    Offer::new(
        Command::SortNext,
        "sort by next column; shift+letter: by its column",
    ),
    Offer::new(Command::Back, "back (clears a filter first)"),
    Offer::new(Command::Filter, "filter (fuzzy)").hint("filter"),
    Offer::new(
        Command::CommandLine,
        "command, tab completes: ns, ctx [NAME], pvc, jobs, audit…",
    )
    .hint("command"),
    Offer::new(Command::Jobs, "jobs"),
    Offer::new(Command::Snapshots, "snapshots"),
    Offer::new(Command::Help, "this help").hint("help"),
    Offer::new(Command::Quit, "quit").hint("quit"),
];

/// The YAML, on screens whose rows are objects.
pub const YAML: Offer = Offer::new(
    Command::Yaml,
    "the object's YAML, full screen: / searches, n/N next/previous, m field managers",
)
.hint("yaml");
/// An object described, on screens whose rows are objects.
pub const DESCRIBE: Offer = Offer::new(
    Command::Describe,
    "describe it: its state, and what a backup or clone of it takes along",
)
.hint("describe");
/// The YAML pane beside the list.
pub const YAML_PANE: Offer = Offer::new(
    Command::YamlPane,
    "show or hide the YAML pane (follows the selection)",
);

/// A command typed after `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineCommand {
    Clusters,
    Namespaces,
    Context,
    /// The workloads of the current (or a named) namespace.
    Workloads,
    /// Workloads of one kind.
    Deployments,
    StatefulSets,
    DaemonSets,
    /// The pods of the current (or a named) namespace.
    Pods,
    Claims,
    Snapshots,
    Jobs,
    Audit,
    Help,
    Quit,
}

/// The `:` commands: each with the words that name it and how it is written.
pub const LINE_COMMANDS: &[(LineCommand, &[&str], &str)] = &[
    (LineCommand::Clusters, &["clusters", "cl"], "clusters"),
    (LineCommand::Namespaces, &["ns", "namespaces"], "ns [NAME]"),
    (LineCommand::Context, &["ctx", "context"], "ctx [NAME]"),
    (
        LineCommand::Workloads,
        &["workloads", "wl", "all"],
        "workloads [NS]",
    ),
    (
        LineCommand::Deployments,
        &["deploy", "deployments", "dp"],
        "deploy [NS]",
    ),
    (
        LineCommand::StatefulSets,
        &["sts", "statefulsets"],
        "sts [NS]",
    ),
    (LineCommand::DaemonSets, &["ds", "daemonsets"], "ds [NS]"),
    (LineCommand::Pods, &["po", "pods", "pod"], "po [NS]"),
    (LineCommand::Claims, &["pvc", "pvcs", "claims"], "pvc [NS]"),
    (
        LineCommand::Snapshots,
        &["snapshots", "snap", "ss"],
        "snapshots",
    ),
    (LineCommand::Jobs, &["jobs", "j"], "jobs"),
    (LineCommand::Audit, &["audit", "a"], "audit"),
    (LineCommand::Help, &["help"], "help"),
    (LineCommand::Quit, &["q", "quit"], "q"),
];

impl LineCommand {
    /// The command a word names.
    pub fn named(word: &str) -> Option<LineCommand> {
        LINE_COMMANDS
            .iter()
            .find(|(_, names, _)| names.contains(&word))
            .map(|(c, _, _)| *c)
    }

    /// Every word that names a command, for completion.
    pub fn words() -> impl Iterator<Item = &'static str> {
        LINE_COMMANDS
            .iter()
            .flat_map(|(_, names, _)| names.iter().copied())
    }

    /// How each command is written, joined by `sep` and each after `prefix`.
    pub fn usage(prefix: &str, sep: &str) -> String {
        LINE_COMMANDS
            .iter()
            .map(|(_, _, u)| format!("{prefix}{u}"))
            .collect::<Vec<_>>()
            .join(sep)
    }
}

/// A screen of the console: what it shows and what its commands do.
pub trait Page: Sync {
    /// How other screens' messages name it ("jobs", "a snapshot's files").
    fn name(&self) -> &'static str;

    /// The table's header and column widths.
    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>);

    /// The columns (indices into [`Page::columns`]) left out first, in this order, when
    /// the screen is too narrow for all of them: the identifying ones stay.
    fn narrow(&self) -> &'static [usize] {
        &[]
    }

    /// The commands this screen handles, in the order help lists them.
    fn offers(&self) -> &'static [Offer];

    /// The rows of `view` (borrowed where the state already holds them).
    fn rows<'a>(&self, app: &'a App, view: &View) -> Load<Cow<'a, [Row]>>;

    /// Starts loading what `view` shows, again with `force`.
    fn load(&self, app: &mut App, view: &View, force: bool);

    /// Does `command`, one of [`Page::offers`], on `view`.
    fn run(&self, app: &mut App, view: &View, command: Command);

    /// The object the row `key` stands for (the YAML pane shows it).
    fn object<'a>(&self, _app: &'a App, _view: &View, _key: &str) -> Option<&'a Value> {
        None
    }

    /// Every object the screen's rows come from (a namespace's, a capture's): what a
    /// description relates the selected one to.
    fn objects<'a>(&self, _app: &'a App, _view: &View) -> &'a [Value] {
        &[]
    }

    /// Draws what goes below the list (the selected job, the selected audit record);
    /// `None` when the screen has nothing there.
    fn detail(&self) -> Option<fn(&mut Frame, Rect, &App)> {
        None
    }
}

/// The rows held in a loaded value: loading, failed, or borrowed from it.
pub fn held<'a, T>(
    load: Option<&'a Load<T>>,
    rows: impl FnOnce(&'a T) -> &'a [Row],
) -> Load<Cow<'a, [Row]>> {
    match load {
        Some(Load::Ready(t)) => Load::Ready(Cow::Borrowed(rows(t))),
        Some(Load::Failed(e)) => Load::Failed(e.clone()),
        Some(Load::Loading) | None => Load::Loading,
    }
}

/// Every page, for messages that say where a command does something.
const ALL: &[&dyn Page] = &[
    &screens::clusters::Clusters,
    &screens::namespaces::Namespaces,
    &screens::workloads::Workloads,
    &screens::workloads::Claims,
    &screens::workloads::Pods,
    &screens::snapshots::Snapshots,
    &screens::snapshots::SnapshotDetail,
    &screens::files::Files,
    &screens::jobs::Jobs,
    &screens::audit::Audit,
];

/// The page that shows `view`.
pub fn of(view: &View) -> &'static dyn Page {
    match view {
        View::Clusters => &screens::clusters::Clusters,
        View::Namespaces { .. } => &screens::namespaces::Namespaces,
        View::Workloads { .. } => &screens::workloads::Workloads,
        View::Pods { .. } => &screens::workloads::Pods,
        View::Pvcs { .. } => &screens::workloads::Claims,
        View::Snapshots => &screens::snapshots::Snapshots,
        View::Snapshot { .. } => &screens::snapshots::SnapshotDetail,
        View::Files { .. } => &screens::files::Files,
        View::Jobs => &screens::jobs::Jobs,
        View::Audit => &screens::audit::Audit,
    }
}

/// What `view`'s screen offers for `command`, if it handles it there.
pub fn offer(view: &View, command: Command) -> Option<&'static Offer> {
    of(view).offers().iter().find(|o| o.command == command)
}

/// Every command a screen lists in help: moving, its own, then the global ones.
pub fn help(view: &View) -> impl Iterator<Item = &'static Offer> {
    NAVIGATION
        .iter()
        .chain(of(view).offers())
        .chain(GLOBAL.iter())
}

/// Why `command` did nothing on `view`: where it does something, and what.
pub fn elsewhere(view: &View, command: Command, key: &str) -> String {
    let places: Vec<(&str, &str)> = ALL
        .iter()
        .filter_map(|p| {
            p.offers()
                .iter()
                .find(|o| o.command == command)
                .map(|o| (p.name(), o.help))
        })
        .collect();
    let here = of(view).name();
    match places.as_slice() {
        [] => format!("{key} does nothing on {here}"),
        [(name, what)] => format!("{key} does nothing on {here}; on {name} it does: {what}"),
        more => format!(
            "{key} does nothing on {here}; it works on {}",
            more.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command a key can be bound to is either handled by the app on every
    /// screen or offered by some page: none is dead.
    #[test]
    fn every_command_is_offered_somewhere() {
        use Command::*;
        let all = [
            Down,
            Up,
            PageDown,
            PageUp,
            Top,
            Bottom,
            Enter,
            Back,
            Filter,
            CommandLine,
            Mark,
            MarkAll,
            Help,
            Quit,
            Backup,
            Migrate,
            Clone,
            Restore,
            Download,
            Cancel,
            Pause,
            Yaml,
            YamlPane,
            Describe,
            Switch,
            Refresh,
            SortNext,
            Jobs,
            Snapshots,
            Export,
        ];
        for c in all {
            let shared = NAVIGATION.iter().chain(GLOBAL).any(|o| o.command == c);
            let paged = ALL
                .iter()
                .any(|p| p.offers().iter().any(|o| o.command == c));
            assert!(shared ^ paged, "{c:?}: shared {shared}, on a page {paged}");
        }
    }

    #[test]
    fn pages_offer_a_command_once() {
        for p in ALL {
            let offers = p.offers();
            for (i, o) in offers.iter().enumerate() {
                assert!(
                    !offers[i + 1..].iter().any(|x| x.command == o.command),
                    "{} offers {:?} twice",
                    p.name(),
                    o.command
                );
            }
        }
    }

    #[test]
    fn elsewhere_names_the_screens() {
        assert_eq!(
            elsewhere(&View::Clusters, Command::Cancel, "x"),
            "x does nothing on clusters; on jobs it does: cancel the selected job"
        );
        assert!(
            elsewhere(&View::Jobs, Command::Restore, "r")
                .ends_with("it works on snapshots, a snapshot, a snapshot's files")
        );
    }
}
