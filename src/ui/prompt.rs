//! The restore-to-this-machine prompt: `d` on a file, folder or volume of a snapshot
//! asks for a folder, checks it on a task while the user types, and starts the
//! restore as a job.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::{App, Flow, RestorePrompt, Tone, VOLUMES_PREFIX, View};
use crate::error::TaskError;
use ferry_repo::tree::NodeKind;

impl App {
    /// What the selected row of a snapshot or files screen would restore: (path in the
    /// snapshot, name, what it is in words).
    fn restorable(&self, view: &View) -> Result<(String, String, &'static str), String> {
        let none = "select a file, a folder or a volume to restore".to_string();
        match view {
            View::Files { path, .. } => {
                let n = self.selected_node().ok_or(none)?;
                let name = std::str::from_utf8(&n.name.0)
                    .map_err(|_| {
                        "this name is not UTF-8: restore it with `ferry restore SNAP --path …`"
                            .to_string()
                    })?
                    .to_string();
                let full = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                };
                let what = match n.kind {
                    NodeKind::Dir => "folder",
                    NodeKind::File => "file",
                    NodeKind::Symlink => "link",
                    _ => "special file",
                };
                Ok((full, name, what))
            }
            View::Snapshot { .. } => {
                let row = self.selected_row().ok_or(none.clone())?;
                let claim = row.key.strip_prefix("vol:").ok_or(none)?;
                let name = claim.rsplit('/').next().unwrap_or(claim).to_string();
                Ok((format!("{VOLUMES_PREFIX}{claim}"), name, "volume"))
            }
            _ => Err("d restores files of a snapshot: open one on :snapshots".into()),
        }
    }

    pub(crate) fn open_restore_prompt(&mut self, view: &View) {
        let id = match view {
            View::Snapshot { id } | View::Files { id, .. } => id.clone(),
            _ => String::new(),
        };
        let what = self.restorable(view);
        let snap = self.find_snapshot(&id).cloned();
        match (what, snap) {
            (Ok((path, name, what)), Some(snap)) => {
                self.prompt_gen += 1;
                self.prompt = Some(RestorePrompt {
                    generation: self.prompt_gen,
                    snapshot: Box::new(snap),
                    path,
                    name,
                    is_dir: matches!(what, "folder" | "volume"),
                    what,
                    dest: self.env.downloads.display().to_string(),
                    error: None,
                    checking: false,
                });
            }
            (Err(e), _) => self.say(Tone::Normal, e),
            (Ok(_), None) => self.say(Tone::Warn, "the snapshot is gone: refresh :snapshots"),
        }
    }

    pub(crate) fn prompt_key(&mut self, k: KeyEvent) {
        let Some(p) = &mut self.prompt else { return };
        match k.code {
            KeyCode::Esc => {
                self.prompt = None;
                self.say(Tone::Normal, "nothing was restored");
            }
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.prompt = None;
                self.say(Tone::Normal, "nothing was restored");
            }
            KeyCode::Enter if !p.checking => {
                if p.dest.trim().is_empty() {
                    p.error = Some("type the folder to restore into".into());
                    return;
                }
                // Checked on a blocking thread (the disk may be slow): the answer comes
                // back as `Msg::RestoreChecked`.
                p.checking = true;
                p.error = None;
                self.tasks.check_restore_target(
                    p.generation,
                    p.dest.clone(),
                    p.name.clone(),
                    p.path.clone(),
                    p.is_dir,
                );
            }
            KeyCode::Backspace => {
                p.dest.pop();
                p.error = None;
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                p.dest.push(c);
                p.error = None;
            }
            _ => {}
        }
    }

    /// The answer to a prompt's check: start the job, or say what is wrong in place.
    pub(crate) fn restore_checked(
        &mut self,
        generation: u64,
        r: Result<ferry_repo::restore::RestoreOptions, TaskError>,
    ) {
        let Some(p) = self.prompt.as_mut().filter(|p| p.generation == generation) else {
            return;
        };
        p.checking = false;
        let (opts, repo) = match (r, self.env.repo.clone()) {
            (Ok(o), Ok(repo)) => (o, repo),
            (Err(e), _) | (_, Err(e)) => {
                p.error = Some(e.to_string());
                return;
            }
        };
        let Some(p) = self.prompt.take() else { return };
        let (id, progress) = self.register_job(
            format!(
                "restore {} from {} → {}",
                p.name,
                p.snapshot.id.short(),
                opts.target.display()
            ),
            Flow::Out,
        );
        progress.set_phase("restoring files");
        self.tasks
            .restore_files(id, repo, *p.snapshot, opts, progress);
        self.say(
            Tone::Ok,
            format!("restoring {} to this machine: follow it on :jobs", p.name),
        );
    }
}
