//! The snapshot writer: repository work is blocking, so a capture's documents and
//! volume archives go to one thread that builds the snapshot's tree ([`Writer`]), over a
//! channel of [`Cmd`]s. A volume's archive is checked against the files asked for as it
//! arrives ([`Arrived`]).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc;

use super::volumes::set_meta;
use crate::mover::Listed;
use crate::{K8sError, Result};
use ferry_repo::ingest::{self, IngestStats, TarEntry, TreeBuilder};
use ferry_repo::saver::Saver;
use ferry_repo::tree::{Node, NodeKind};
use ferry_repo::{self as eng, Id, Repository, lock};

/// Commands to the thread that writes the snapshot (repository work is blocking).
pub(super) enum Cmd {
    Doc {
        path: String,
        bytes: Vec<u8>,
    },
    Node {
        path: Vec<u8>,
        node: Node,
    },
    Tar {
        prefix: Vec<u8>,
        reader: Box<dyn Read + Send>,
        /// The files asked for, by path below `prefix`: each must arrive once.
        expect: HashMap<Vec<u8>, Listed>,
        reply: tokio::sync::oneshot::Sender<eng::Result<Arrived>>,
    },
    /// A folder already stored (by an agent) placed at a path whole.
    Graft {
        path: Vec<u8>,
        node: Node,
    },
    /// Drops what was added below a path (a volume that failed half-way).
    Remove {
        path: Vec<u8>,
    },
}

/// What a volume's archive brought, checked against what was asked for.
#[derive(Debug, Default)]
pub(super) struct Arrived {
    pub(super) warnings: Vec<String>,
    /// Asked for, never arrived.
    pub(super) missing: Vec<Vec<u8>>,
    /// Arrived without being asked for (skipped, not stored).
    pub(super) unexpected: Vec<Vec<u8>>,
    /// Files whose size changed between the listing and the read.
    pub(super) resized: Vec<(Vec<u8>, u64, u64)>,
}

/// What the writer thread ends with: the root tree, counts and warnings.
pub(super) type Written = (Id, IngestStats, Vec<String>);

/// The snapshot writer running on its own thread.
pub(super) struct Writer {
    tx: Option<mpsc::Sender<Cmd>>,
    handle: Option<std::thread::JoinHandle<eng::Result<Written>>>,
}

impl Writer {
    pub(super) fn start(repo: &Repository, progress: Arc<eng::progress::Progress>) -> Writer {
        let (tx, rx) = mpsc::channel::<Cmd>();
        let repo = repo.clone();
        let handle = std::thread::Builder::new()
            .name("ferry-capture".into())
            .spawn(move || -> eng::Result<Written> {
                let _lock = lock::acquire(&repo, false, "capture")?;
                repo.load_index()?;
                repo.recover_unindexed_packs()?;
                let saver = Saver::new(&repo, progress.clone(), true)?;
                let mut b = TreeBuilder::new(&repo, &saver, &progress);
                let mut failed = None;
                for cmd in rx {
                    let r = match cmd {
                        Cmd::Doc { path, bytes } => {
                            b.add_document(path.as_bytes(), &bytes, chrono::Utc::now().timestamp())
                        }
                        Cmd::Node { path, node } => b.add(&path, node, None),
                        Cmd::Remove { path } => b.remove(&path),
                        Cmd::Graft { path, node } => b.graft(&path, node),
                        Cmd::Tar {
                            prefix,
                            mut reader,
                            mut expect,
                            reply,
                        } => {
                            let mut arrived = Arrived::default();
                            let r =
                                ingest::read_tar(&mut b, &mut reader, &prefix, &mut |rel, e| {
                                    let Some(l) = expect.remove(rel) else {
                                        arrived.unexpected.push(rel.to_vec());
                                        return false;
                                    };
                                    if let TarEntry::Node(node) = e {
                                        if node.kind == NodeKind::File && node.size != l.size {
                                            arrived.resized.push((rel.to_vec(), l.size, node.size));
                                        }
                                        set_meta(node, &l);
                                    }
                                    true
                                })
                                .map(|_| {
                                    arrived.warnings = b.take_warnings();
                                    arrived.missing = expect.into_keys().collect();
                                    arrived.missing.sort();
                                    arrived
                                });
                            // Drain what the stream still holds so the sender can end.
                            let _ = std::io::copy(&mut reader, &mut std::io::sink());
                            let _ = reply.send(r);
                            Ok(())
                        }
                    };
                    if let Err(e) = r {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    drop(saver.finish());
                    return Err(e);
                }
                let warnings = b.take_warnings();
                let (root, stats) = b.finish()?;
                saver.finish()?;
                Ok((root, stats, warnings))
            })
            .ok();
        Writer {
            tx: Some(tx),
            handle,
        }
    }

    pub(super) fn send(&self, cmd: Cmd) -> Result<()> {
        self.tx
            .as_ref()
            .and_then(|t| t.send(cmd).ok())
            .ok_or_else(|| K8sError::Invalid("the snapshot writer stopped early".into()))
    }

    pub(super) async fn finish(mut self) -> Result<Written> {
        drop(self.tx.take());
        let h = self
            .handle
            .take()
            .ok_or_else(|| K8sError::Invalid("cannot start the snapshot writer thread".into()))?;
        tokio::task::spawn_blocking(move || h.join())
            .await
            .map_err(|e| K8sError::Invalid(format!("snapshot writer: {e}")))?
            .map_err(|_| K8sError::Invalid("the snapshot writer thread panicked".into()))?
            .map_err(K8sError::from)
    }
}
