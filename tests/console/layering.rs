//! The architecture's rules, checked on the source: which Ferry crates each crate may
//! depend on, and that the front ends (the CLI and the console) move workloads only
//! through `ferry-jobs`' jobs, whose permits only the policy gate issues (the permits'
//! steps are private to `ferry-jobs`, so the compiler checks the rest).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `ferry-*` crates in a manifest's `[dependencies]` (not dev-dependencies).
fn ferry_dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[dependencies]"
            && let Some((name, _)) = line.split_once('=')
            && name.trim().starts_with("ferry-")
        {
            out.push(name.trim().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn each_crate_depends_only_on_the_crates_below_it() {
    let allowed: &[(&str, &[&str])] = &[
        ("src/engine/patch", &[]),
        ("src/engine/repo", &[]),
        // The in-cluster agent: the repository engine and nothing else.
        ("src/agent", &["ferry-repo"]),
        ("src/engine/k8s", &["ferry-patch", "ferry-repo"]),
        ("src/providers/clusters", &["ferry-k8s"]),
        ("src/providers/sandbox", &["ferry-patch"]),
        (
            "src/policy",
            &["ferry-k8s", "ferry-providers", "ferry-repo"],
        ),
        (
            "src/jobs",
            &["ferry-k8s", "ferry-policy", "ferry-providers", "ferry-repo"],
        ),
        ("tests/testing", &["ferry-repo"]),
        (
            "src/ui",
            &[
                "ferry-jobs",
                "ferry-k8s",
                "ferry-policy",
                "ferry-providers",
                "ferry-repo",
            ],
        ),
    ];
    for (dir, want) in allowed {
        let got = ferry_dependencies(&root().join(dir).join("Cargo.toml"));
        assert_eq!(got, *want, "{dir}/Cargo.toml's Ferry dependencies");
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn front_ends_move_workloads_only_through_permits() {
    // The engines' entry points that read a cluster for a job or change one, and the
    // gate's check (which only `ferry_jobs::authorize` calls for a job).
    let mut found = forbidden_calls(
        &["src/cli", "src/ui"],
        &[
            "capture::capture(",
            "plan::build(",
            "apply::apply(",
            "gate::check(",
        ],
    );
    // The console creates clusters to restore into only as `ferry_jobs::create_and_restore`.
    found.extend(forbidden_calls(&["src/ui"], &["::create_cluster("]));
    assert!(
        found.is_empty(),
        "front ends must go through ferry_jobs' jobs: {found:#?}"
    );
}

/// Where the Rust files below `dirs` call one of `forbidden` (outside comments).
fn forbidden_calls(dirs: &[&str], forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    for dir in dirs {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 5, "the front ends' sources were not found");
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for call in forbidden {
                if code.contains(call) {
                    found.push(format!("{}:{}: {call}", f.display(), i + 1));
                }
            }
        }
    }
    found
}
