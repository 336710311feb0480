//! The processes the sandbox starts for containers and execs: each the leader of its
//! own process group, killed with everything it started when it ends, when its client
//! leaves or when the sandbox stops, together with what an OCI runtime started out of
//! the group's reach ([`oci::Stop`]).
//!
//! Owns starting, waiting for and killing processes. Must not decide what they run
//! (`runtime.rs` and `oci.rs` do).

use std::process::{ExitStatus, Stdio};

use super::oci;

/// A command ready to spawn, and what else ends it (an OCI runtime's container).
pub struct Launch {
    pub cmd: tokio::process::Command,
    pub(super) stop: Option<oci::Stop>,
}

/// A process of an exec: the leader of its own process group, never reaped before its
/// group is killed (so the group id cannot be reused by another process meanwhile).
pub struct Process {
    child: Option<tokio::process::Child>,
    pid: i32,
    exited: Option<tokio::task::JoinHandle<()>>,
    /// The container or exec'd process an OCI runtime started, out of the group's reach.
    stop: Option<oci::Stop>,
}

/// The pipes of a [`Process`] that were asked for.
pub struct Pipes {
    pub stdin: Option<tokio::process::ChildStdin>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
}

impl Process {
    /// Starts `cmd` with the given pipes; `Err` when it cannot start (no such program).
    pub fn spawn(
        launch: Launch,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> std::io::Result<(Process, Pipes)> {
        let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        Process::spawn_with(launch, pipe(stdin), pipe(stdout), pipe(stderr))
    }

    /// Starts `cmd` with the given stdin, stdout and stderr (the [`Pipes`] hold those
    /// that are `Stdio::piped()`).
    pub fn spawn_with(
        launch: Launch,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> std::io::Result<(Process, Pipes)> {
        let Launch { mut cmd, stop } = launch;
        cmd.stdin(stdin).stdout(stdout).stderr(stderr);
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| std::io::Error::other("the process has no id"))?;
        let pipes = Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        };
        let exited = tokio::task::spawn_blocking(move || wait_no_reap(pid));
        Ok((
            Process {
                child: Some(child),
                pid,
                exited: Some(exited),
                stop,
            },
            pipes,
        ))
    }

    /// Kills the whole process group (while the leader is not reaped, its id cannot
    /// name another group).
    pub fn kill(&self) {
        if self.child.as_ref().is_some_and(|c| c.id().is_some()) {
            if let Some(stop) = &self.stop {
                // The leader is the runtime's process: while it runs, what it started
                // may not have said its pid yet.
                let alive = self.exited.as_ref().is_some_and(|e| !e.is_finished());
                stop.stop(alive);
            }
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Waits until the leader exits, kills what is left of its group, reaps it.
    /// Cancel-safe: it may be called again after being dropped.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(exited) = self.exited.as_mut() {
            let _ = exited.await;
            self.exited = None;
        }
        self.kill();
        match self.child.as_mut() {
            Some(child) => child.wait().await,
            None => Err(std::io::Error::other("the process has no child")),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A dropped Child is reaped by tokio in the background once it has exited.
        self.kill();
        if let Some(stop) = &self.stop {
            stop.forget();
        }
    }
}

/// Blocks until `pid` has exited, leaving it a zombie (`WNOWAIT`).
fn wait_no_reap(pid: i32) {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    loop {
        match waitid(
            Id::Pid(nix::unistd::Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// The exit code a container runtime reports: the code, or 128 + the signal.
pub fn exit_code(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
