//! kubectl v1.33 as `scripts/install-kubectl.sh` installs it: a client we did not write.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Where the install script puts kubectl.
pub fn path() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/ferry-tools/kubectl")
}

/// Runs kubectl with `kubeconfig`; its output, or a failure with its stderr.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let bin = path();
    let out = std::process::Command::new(&bin)
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (run scripts/install-kubectl.sh)",
                bin.display()
            )
        });
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
