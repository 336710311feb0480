//! `ferry-agent`: Ferry's engine next to the data. A Job that Ferry starts in a cluster
//! runs it to store one mounted volume into an object-store repository (`backup`), or to
//! write one stored folder into a mounted volume (`restore`); Ferry removes the Job when
//! it ends. It is built from the repository engine only (no Kubernetes client, no
//! terminal): the cluster is Ferry's business, the data the agent's.
//!
//! It speaks to Ferry in JSON lines on standard output (`ferry_repo::agent`), which
//! Ferry reads from the pod's log; anything for a person goes to standard error. The
//! repository's key comes from the environment (`FERRY_AGENT_KEY`, a Secret that
//! exists for the job only), the object store's credentials from the usual AWS chain:
//! the pod's identity (IRSA, EKS Pod Identity) or `AWS_ACCESS_KEY_ID`/`…SECRET…` from
//! that Secret.
//!
//! Both jobs resume: a backup killed half-way re-indexes the packs it uploaded and
//! reads again only what they do not hold; a restore finishes what an interrupted one
//! of the same tree began.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ferry_repo::agent::{AgentLine, EXIT_REFUSED, KEY_ENV, VERSION};
use ferry_repo::backend::retry::{RetryPolicy, Retrying};
use ferry_repo::backend::s3::{S3Backend, S3Config};
use ferry_repo::backend::throttled::Throttled;
use ferry_repo::backend::{DynBackend, FileKind};
use ferry_repo::crypto::MasterKey;
use ferry_repo::progress::Progress;
use ferry_repo::repo::FORMAT_VERSION;
use ferry_repo::restore::RestoreOptions;
use ferry_repo::{Id, Repository};

#[derive(Debug, Parser)]
#[command(
    name = "ferry-agent",
    version,
    about = "Ferry's in-cluster agent: moves one volume's data to or from a repository"
)]
struct Cli {
    /// The Ferry version that started this agent: any other is refused, since both sides
    /// must read and write the same format and reports.
    #[arg(long, global = true)]
    expect_version: Option<String>,
    #[command(subcommand)]
    job: Job,
}

#[derive(Debug, Subcommand)]
enum Job {
    /// Stores the folder `--path` into the repository; prints its tree.
    Backup {
        #[command(flatten)]
        store: Store,
        /// The mounted volume.
        #[arg(long)]
        path: PathBuf,
        /// The tree of this volume's previous copy: unchanged files are not read.
        #[arg(long)]
        parent: Option<String>,
        /// Upload limit in bytes per second.
        #[arg(long)]
        limit_upload: Option<u64>,
        /// Read limit on the volume in bytes per second.
        #[arg(long)]
        limit_read: Option<u64>,
        /// Compare files with the parent by type, size and modification time only (the
        /// volume is a copy: a CSI snapshot made by copying files has new inodes).
        #[arg(long)]
        ignore_inode: bool,
    },
    /// Writes the stored folder `--tree` into the folder `--path`.
    Restore {
        #[command(flatten)]
        store: Store,
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        tree: String,
        /// Download limit in bytes per second.
        #[arg(long)]
        limit_download: Option<u64>,
    },
}

/// Where the repository is.
#[derive(Debug, Args)]
struct Store {
    /// `s3://bucket` or `s3://bucket/prefix`.
    #[arg(long)]
    repo: String,
    /// A custom endpoint for S3-compatible stores.
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long)]
    region: Option<String>,
    #[arg(long)]
    path_style: bool,
    /// How long the agent keeps trying to reach the store at start before it says the
    /// cluster cannot reach it, in seconds (afterwards, outages are waited out for
    /// `--retry-budget`).
    #[arg(long, default_value_t = 30)]
    reach_timeout: u64,
    /// How long one storage operation may keep retrying a transient failure, in seconds.
    #[arg(long, default_value_t = 300)]
    retry_budget: u64,
}

fn say(line: &AgentLine) {
    println!("{}", line.to_line());
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_REFUSED as u8),
            };
        }
    };
    say(&AgentLine::Hello {
        version: VERSION.into(),
        format: FORMAT_VERSION,
    });
    if let Some(want) = &cli.expect_version
        && want != VERSION
    {
        let message = format!(
            "this agent is ferry-agent {VERSION}, but Ferry {want} started it: set the agent image to the one built with Ferry {want} (`agent.image` in Ferry's config.yaml, or --agent-image)"
        );
        say(&AgentLine::Failed { message });
        return ExitCode::from(EXIT_REFUSED as u8);
    }
    match run(cli.job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(mut message) => {
            if message.contains("loading credentials") {
                message.push_str(
                    ". In a cluster, the agent's credentials come from its service account's identity (IRSA, EKS Pod Identity) when Ferry names one (--agent-service-account), else from the job's Secret: give that identity access to the bucket, or let Ferry hand over its own credentials",
                );
            }
            // The report is the message: `kubectl logs` shows it too.
            say(&AgentLine::Failed { message });
            ExitCode::FAILURE
        }
    }
}

/// Reads the repository's config within `--reach-timeout`: a store the pod cannot
/// reach at all is the cluster's network or the endpoint it was given, said at once
/// instead of waited on for the whole retry budget.
fn reach(rt: &tokio::runtime::Runtime, s3: &DynBackend, store: &Store) -> Result<(), String> {
    let probe = Retrying::wrap(
        s3.clone(),
        RetryPolicy::with_budget(Duration::from_secs(store.reach_timeout)),
        None,
    );
    match rt.block_on(probe.read(FileKind::Config, "config")) {
        Ok(_) => Ok(()),
        // Not found, denied, a wrong key: the store answered; opening says what it means.
        Err(e) if !e.is_transient() || e.to_string().contains("loading credentials") => Ok(()),
        Err(e) => {
            let at = store
                .endpoint
                .clone()
                .unwrap_or_else(|| "its AWS endpoint".to_string());
            Err(format!(
                "cannot reach the repository {} at {at} from this pod within {} s ({e}): the cluster must reach the object store itself; give the agents the address pods reach it at (--agent-endpoint, agent.endpoint in config.yaml), or allow this namespace's egress to it",
                store.repo, store.reach_timeout
            ))
        }
    }
}

fn run(job: Job) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ferry-agent-io")
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    let key = std::env::var(KEY_ENV)
        .ok()
        .and_then(|k| MasterKey::import(&k))
        .ok_or_else(|| {
            format!("{KEY_ENV} holds no repository key: this agent must be started by Ferry, which hands it the key in a Secret")
        })?;
    let (store, upload, download) = match &job {
        Job::Backup {
            store,
            limit_upload,
            ..
        } => (store, *limit_upload, None),
        Job::Restore {
            store,
            limit_download,
            ..
        } => (store, None, *limit_download),
    };
    let mut cfg = S3Config::parse_url(&store.repo).map_err(|e| e.to_string())?;
    cfg.endpoint = store.endpoint.clone();
    cfg.region = store.region.clone();
    cfg.path_style = store.path_style;
    let s3: DynBackend = Arc::new(
        rt.block_on(S3Backend::connect(cfg))
            .map_err(|e| e.to_string())?,
    );
    reach(&rt, &s3, store)?;
    let backend: DynBackend = Retrying::wrap(
        Throttled::wrap(s3, upload, download),
        RetryPolicy::with_budget(Duration::from_secs(store.retry_budget)),
        None,
    );
    let repo =
        Repository::open_with_key(backend, rt.handle().clone(), key).map_err(|e| e.to_string())?;
    let progress = Arc::new(Progress::new());
    let reporter = Reporter::start(progress.clone());
    let result = match job {
        Job::Backup {
            path,
            parent,
            limit_read,
            ignore_inode,
            ..
        } => {
            let parent = match parent.as_deref().map(Id::from_str) {
                Some(Ok(id)) => Some(id),
                Some(Err(_)) => return Err("--parent is not a tree ID".into()),
                None => None,
            };
            let opts = ferry_repo::backup::FolderOptions {
                parent,
                read_limit: limit_read,
                threads: None,
                ignore_inode,
            };
            ferry_repo::backup::archive_folder(&repo, &path, &opts, &progress).map(|a| {
                for w in &a.warnings {
                    say(&AgentLine::Warning { message: w.clone() });
                }
                AgentLine::Stored {
                    tree: a.tree,
                    root: Box::new(a.root),
                    files: a.summary.files,
                    bytes: a.summary.bytes,
                    files_read: a.summary.files_new + a.summary.files_changed,
                    bytes_new: a.summary.bytes_new,
                    bytes_stored: a.summary.bytes_stored,
                }
            })
        }
        Job::Restore { path, tree, .. } => {
            let tree = Id::from_str(&tree).map_err(|_| "--tree is not a tree ID".to_string())?;
            let opts = RestoreOptions {
                target: path,
                path: String::new(),
                overwrite: true,
                threads: None,
            };
            ferry_repo::restore::restore_tree(&repo, &tree, &opts, &progress).map(|o| {
                for w in &o.warnings {
                    say(&AgentLine::Warning { message: w.clone() });
                }
                AgentLine::Restored {
                    files: o.files,
                    bytes: o.bytes,
                }
            })
        }
    };
    reporter.stop();
    for w in progress.drain_warnings() {
        say(&AgentLine::Warning { message: w });
    }
    let done = result.map_err(|e| e.to_string())?;
    say(&done);
    Ok(())
}

/// Prints a progress line every half second until stopped (and a last one then).
struct Reporter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    fn start(progress: Arc<Progress>) -> Reporter {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ferry-agent-report".into())
            .spawn(move || {
                loop {
                    let last = flag.load(Ordering::Relaxed);
                    let s = progress.snapshot();
                    say(&AgentLine::Progress {
                        files: s.files_done,
                        bytes: s.bytes_done,
                        files_total: s.files_total,
                        bytes_total: s.bytes_total,
                        stored: s.bytes_stored,
                    });
                    if last {
                        return;
                    }
                    std::thread::park_timeout(Duration::from_millis(500));
                }
            })
            .ok();
        Reporter { stop, thread }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
