//! The agent's command line as a Job meets it: what it says, and with which exit status,
//! when it cannot do its work. Its data path (capture and restore through an object
//! store) is tested from Ferry's side, in the sandbox (`tests/moving/agents.rs`).
//!
//! These tests are also why `cargo test --workspace` builds the `ferry-agent` binary in
//! the same invocation (and with the same features) as every other test, which run it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Command, Output};

use ferry_repo::agent::{AgentLine, EXIT_REFUSED, KEY_ENV, VERSION};
use ferry_repo::crypto::MasterKey;

fn agent(args: &[&str], key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry-agent"));
    cmd.args(args)
        .env_remove(KEY_ENV)
        // Credentials that need no lookup: the chain must not wander off to an instance
        // metadata service.
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    if let Some(k) = key {
        cmd.env(KEY_ENV, k);
    }
    cmd.output().expect("run ferry-agent")
}

/// Its reports, in order; every line of standard output must be one.
fn reports(out: &Output) -> Vec<AgentLine> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| AgentLine::parse(l).unwrap_or_else(|| panic!("not a report: {l:?}")))
        .collect()
}

fn failure(out: &Output) -> String {
    match reports(out).last() {
        Some(AgentLine::Failed { message }) => message.clone(),
        other => panic!("the last report is not a failure: {other:?}"),
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn another_ferrys_agent_refuses_and_names_the_image_to_use() {
    let out = agent(
        &[
            "--expect-version",
            "0.0.0-other",
            "backup",
            "--repo",
            "s3://bucket",
            "--path",
            "/nonexistent",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(EXIT_REFUSED));
    let lines = reports(&out);
    assert!(
        matches!(&lines[0], AgentLine::Hello { version, .. } if version == VERSION),
        "{lines:?}"
    );
    let m = failure(&out);
    assert!(m.contains(VERSION) && m.contains("0.0.0-other"), "{m}");
    assert!(
        m.contains("--agent-image") && m.contains("agent.image"),
        "{m}"
    );
}

#[test]
fn a_command_line_it_cannot_use_is_refused_not_retried() {
    // A Job's pod is restarted on failure; exit status 2 tells Ferry that a restart
    // cannot help.
    let out = agent(&["backup", "--repo", "s3://bucket"], None);
    assert_eq!(out.status.code(), Some(EXIT_REFUSED));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--path"));
}

#[test]
fn without_the_repository_key_it_says_ferry_must_start_it() {
    let out = agent(
        &[
            "restore",
            "--repo",
            "s3://bucket",
            "--path",
            "/tmp/x",
            "--tree",
            "00",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let m = failure(&out);
    assert!(m.contains(KEY_ENV) && m.contains("started by Ferry"), "{m}");
}

#[test]
fn a_store_the_pod_cannot_reach_is_reported_within_the_reach_timeout() {
    let key = MasterKey::generate().unwrap().export();
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let started = std::time::Instant::now();
    let out = agent(
        &[
            "backup",
            "--repo",
            "s3://bucket/team",
            "--endpoint",
            &endpoint,
            "--region",
            "us-east-1",
            "--path-style",
            "--reach-timeout",
            "1",
            "--path",
            "/nonexistent",
        ],
        Some(&key),
    );
    assert_eq!(out.status.code(), Some(1));
    let m = failure(&out);
    assert!(
        m.contains("cannot reach the repository s3://bucket/team"),
        "{m}"
    );
    assert!(
        m.contains(&endpoint) && m.contains("--agent-endpoint"),
        "{m}"
    );
    // Not the five-minute retry budget of an outage met later on.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}
