//! The console's errors: [`SettingsError`] when its own files cannot be used (a theme,
//! a keymap, the settings' accent rules), naming the file or key and what to write
//! instead; [`TaskError`] when background work fails (a list, a plan, a job), in the
//! words the screen shows, with what to do next.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_jobs::Failed;
use ferry_k8s::K8sError;
use ferry_policy::PolicyError;
use ferry_providers::kubeconfig::KubeconfigError;
use ferry_providers::probe::explain;

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

/// Why background work of the console failed: what a list, the wizard or a job's end
/// shows. The app keeps it in its state, so it is cheap to clone (sources are shared).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    /// The repository could not be opened when the console started (the reason, with
    /// what to do, composed where it was opened).
    #[error("{reason}")]
    NoRepository { reason: String },
    /// No client could be made for a linked cluster.
    #[error(transparent)]
    Client(Arc<KubeconfigError>),
    /// The API server refused a list or did not answer; `next` says what to do.
    #[error("cannot list {what}: {}{next}", explain(source))]
    List {
        what: String,
        source: Arc<kube::Error>,
        next: &'static str,
    },
    /// The API's types could not be discovered.
    #[error("cannot discover the types of {cluster}: {source}")]
    Discover {
        cluster: String,
        source: Arc<K8sError>,
    },
    /// The cloud settings of a cluster could not be read.
    #[error(transparent)]
    Envelope(Arc<KubeconfigError>),
    /// The snapshots could not be listed.
    #[error("cannot list the snapshots: {0}")]
    Snapshots(Arc<ferry_repo::Error>),
    /// The audit trail could not be read.
    #[error("cannot read the audit trail: {0}")]
    Audit(Arc<PolicyError>),
    /// A capture's objects could not be read from the repository.
    #[error("cannot read the snapshot's objects: {0}")]
    SnapshotObjects(Arc<ferry_repo::Error>),
    /// A folder of a snapshot's tree could not be read.
    #[error("cannot read /{path} of the snapshot: {source}")]
    SnapshotTree {
        path: String,
        source: Arc<ferry_repo::Error>,
    },
    /// The snapshot has nothing at a path (it was deleted and made again, most likely).
    #[error("the snapshot has no /{path}")]
    NoSuchPath { path: String },
    /// A path of a snapshot that is not a folder was opened as one.
    #[error("/{path} is not a folder")]
    NotAFolder { path: String },
    /// The destination of a restore to this machine cannot be used.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// Restoring files of a snapshot into a folder of this machine failed.
    #[error("restore of /{path} into {} failed: {source}", target.display())]
    Download {
        path: String,
        target: PathBuf,
        source: Arc<ferry_repo::Error>,
    },
    /// A job failed (its step and what it leaves behind in the words of the job layer).
    #[error("{0}")]
    Job(Arc<Failed>),
    /// A job failed after it created a cluster: what exists, and what to do with it.
    #[error("{}; {leftover}", after_create(failure))]
    AfterCreate {
        failure: Arc<Failed>,
        leftover: String,
    },
    /// A restore's report could not be saved.
    #[error("the report was not saved: {0}")]
    Report(Arc<K8sError>),
    /// The audit trail could not be exported.
    #[error("cannot write {}: {source}", path.display())]
    Export {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    /// A background task ended without an answer (a bug: see the log).
    #[error("a background task stopped unexpectedly: {0}. See the log in the state folder")]
    Stopped(Arc<tokio::task::JoinError>),
    /// A whole-cluster job would take no namespace (why, in words).
    #[error("{0}")]
    Nothing(String),
    /// What the task needed is no longer linked (a cluster the user removed).
    #[error("the {role} cluster {name} is gone: pick another")]
    Gone { role: &'static str, name: String },
}

impl TaskError {
    /// A failed list of the API, with what to do next (`next`, empty or starting with
    /// a separator).
    pub fn list(what: impl Into<String>, source: kube::Error, next: &'static str) -> TaskError {
        TaskError::List {
            what: what.into(),
            source: Arc::new(source),
            next,
        }
    }
}

/// A failure after a cluster was created, in words: a blocked plan names its problems
/// (the console shows no plan for a new cluster before it exists).
fn after_create(failure: &Failed) -> String {
    match &failure.error {
        ferry_jobs::JobError::Blocked { problems, .. } => format!(
            "the restore plan has blocking problems: {}",
            problems.join("; ")
        ),
        _ => failure.to_string(),
    }
}

/// Why a folder of this machine cannot take a restore, with what to type instead.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DestinationError {
    /// `~` was typed and HOME is not set.
    #[error("HOME is not set: type a full path")]
    NoHome,
    /// A relative path was typed and the current folder is unknown.
    #[error("cannot tell the current folder ({0}): type a full path")]
    NoCurrentFolder(Arc<std::io::Error>),
    /// The destination is a file.
    #[error("{} is a file, not a folder", .0.display())]
    IsAFile(PathBuf),
    /// A parent of the destination is a file, so the folder cannot be created.
    #[error("{} is a file: {} cannot be created", parent.display(), dest.display())]
    ParentIsAFile { parent: PathBuf, dest: PathBuf },
    /// The destination (or a parent) could not be examined.
    #[error("cannot use {}: {source}", path.display())]
    Unusable {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    /// No parent of the destination exists (not even the root).
    #[error("{} cannot be created", .0.display())]
    Uncreatable(PathBuf),
    /// The folder (or the parent that would hold it) is not writable.
    #[error("{} is not writable", .0.display())]
    NotWritable(PathBuf),
    /// What would be restored exists already there: nothing is replaced.
    #[error("{} already exists: choose another folder or move it away", .0.display())]
    Exists(PathBuf),
}
