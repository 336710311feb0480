//! Volume data through in-cluster agents against the exec path and the raw engine
//! (issue 20), in one run on this machine:
//!
//! - two sandboxes (`ferry sandbox up --name prod --name qa`, their own processes) that
//!   run Ferry's agent image as the built `ferry-agent` (beside `ferry`);
//! - four claims of 256 MiB each, filled with the shared generator's data
//!   (`../shared/bench/gen_dataset.py day1 --mib 256`, seeds 1 to 4), in namespace
//!   `four`; namespace `one` holds a fifth claim (seed 5);
//! - an S3 store (moto on 127.0.0.1; with `-- --store s3s`, s3s-fs served in the
//!   bench's own process, which is not one Python process the agents queue at), and
//!   local folders.
//!
//! Each path captures `one`, then `four` (each into a repository of its own, so nothing
//! deduplicates against an earlier step), and restores each into `qa`:
//! - **agent**: `ferry -r s3://… backup|restore` (a Job per claim, the agents upload and
//!   download themselves);
//! - **exec**: `ferry -r FOLDER backup|restore --data-path exec` (through this machine);
//! - **raw**: the engine backing up and restoring the 256 MiB folder itself, into the
//!   same S3 store and into a folder.
//!
//! For each `ferry` command: wall time, MiB/s, its peak RSS and CPU time (the agents'
//! work is in the sandbox's processes, not Ferry's). Restored claims are compared with
//! their sources. Prints a markdown table; no assertions on speed.
//!
//! `cargo build -p ferry-agent && cargo bench --bench agents --profile test [-- --store
//! s3s] [--paths agent]` (`--paths agent` leaves out the exec path, which does not use the
//! store).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_repo::Repository;
use ferry_repo::backend::DynBackend;
use ferry_repo::backend::local::LocalBackend;
use ferry_repo::backend::s3::S3Backend;
use ferry_repo::backup::{self, BackupOptions};
use ferry_repo::crypto::{KdfParams, Secret};
use ferry_repo::progress::Progress;
use ferry_repo::repo::InitOptions;
use ferry_repo::restore;
use serde_json::json;

#[path = "support/sandboxes.rs"]
mod sandboxes;
use sandboxes::{Run, Sandboxes, create_all, run, sandbox_kubeconfig};

#[path = "../tests/support/moto.rs"]
mod moto;
#[path = "../tests/support/s3s.rs"]
mod s3s;

#[path = "../tests/support/volumes.rs"]
mod claim_dirs;
#[path = "support/volumes.rs"]
mod volumes;
use claim_dirs::volume_dir;
use volumes::{du, same_files};

const MIB: f64 = 1024.0 * 1024.0;
/// Size of each claim's data.
const CLAIM_MIB: u64 = 256;
const PASSWORD: &str = "bench";

/// The generated data sets, kept between runs (the generator is deterministic).
fn dataset(seed: u32) -> PathBuf {
    let d = PathBuf::from(format!(
        "/var/tmp/ferry-bench-agents/{CLAIM_MIB}m-seed{seed}"
    ));
    if !d.exists() {
        let tmp = d.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_dataset.py");
        let st = std::process::Command::new("python3")
            .arg(&script)
            .arg("day1")
            .arg(&tmp)
            .args(["--mib", &CLAIM_MIB.to_string(), "--seed", &seed.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "cannot run {}", script.display());
        std::fs::rename(&tmp, &d).unwrap();
    }
    d
}

/// Claims `data-<i>` of `ns` holding the data sets `seeds`, bound through a mover
/// (their class binds for a first consumer) and filled through their host folders.
async fn claims(
    client: &kube::Client,
    prod_dir: &Path,
    ns: &str,
    seeds: &[u32],
) -> Vec<(PathBuf, PathBuf)> {
    create_all(
        client,
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})],
        1,
    )
    .await;
    let mut out = Vec::new();
    for (i, seed) in seeds.iter().enumerate() {
        let claim = format!("data-{i}");
        create_all(
            client,
            vec![json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": ns},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ebs-sc",
                         "resources": {"requests": {"storage": "1Gi"}}}})],
            1,
        )
        .await;
        let lease = ferry_k8s::lease::JobLease::start(client, Duration::from_secs(30));
        let m = ferry_k8s::mover::Mover::start(
            client,
            ns,
            &claim,
            false,
            None,
            None,
            &Default::default(),
            &Default::default(),
            &lease,
        )
        .await
        .unwrap();
        m.delete().await;
        lease.release().await;
        let vol = volume_dir(client, prod_dir, ns, &claim).await;
        let data = dataset(*seed);
        let st = std::process::Command::new("cp")
            .args([
                "-a",
                &format!("{}/.", data.display()),
                vol.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(st.success());
        out.push((data, vol));
    }
    out
}

/// The S3 store the bench's repositories are in.
enum Store {
    Moto(moto::Moto),
    S3s(s3s::S3sFs),
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::Moto(_) => "moto",
            Store::S3s(_) => "s3s-fs",
        }
    }

    fn endpoint(&self) -> &str {
        match self {
            Store::Moto(m) => &m.endpoint,
            Store::S3s(s) => &s.endpoint,
        }
    }

    /// Access key, secret key, region.
    fn keys(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Store::Moto(_) => (moto::ACCESS_KEY_ID, moto::SECRET_ACCESS_KEY, moto::REGION),
            Store::S3s(_) => (s3s::ACCESS_KEY_ID, s3s::SECRET_ACCESS_KEY, s3s::REGION),
        }
    }

    fn backend(&self, rt: &tokio::runtime::Runtime, prefix: &str) -> DynBackend {
        let config = match self {
            Store::Moto(m) => m.s3_config("bench", prefix),
            Store::S3s(s) => s.config("bench", prefix, s3s::SECRET_ACCESS_KEY),
        };
        Arc::new(rt.block_on(S3Backend::connect(config)).unwrap())
    }
}

/// The value of `--name VALUE` on the command line.
fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn init(rt: &tokio::runtime::Runtime, backend: DynBackend) -> Repository {
    Repository::init(
        backend,
        rt.handle().clone(),
        &Secret::Password(PASSWORD.into()),
        &InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..InitOptions::default()
        },
    )
    .unwrap()
}

/// The snapshot ID `ferry backup` printed.
fn snapshot_of(r: &Run) -> String {
    r.out
        .lines()
        .find_map(|l| {
            l.strip_prefix("snapshot ")
                .and_then(|s| s.split_whitespace().next())
        })
        .unwrap_or_else(|| panic!("no snapshot in:\n{}", r.out))
        .to_string()
}

struct Row {
    path: &'static str,
    step: String,
    mib: f64,
    wall: f64,
    raw: f64,
    run: Option<Run>,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let agent = Path::new(env!("CARGO_BIN_EXE_ferry")).with_file_name("ferry-agent");
    assert!(
        agent.is_file(),
        "{} is missing: build it first (cargo build -p ferry-agent --profile test)",
        agent.display()
    );
    let seeds_four = [1, 2, 3, 4];
    for s in seeds_four.iter().chain(&[5]) {
        dataset(*s);
    }
    let home_dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let home = home_dir.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = match arg("--store").as_deref() {
        Some("s3s") => Store::S3s(s3s::S3sFs::start_in(&rt, &home.join("s3s"), &["bench"])),
        _ => {
            let m = moto::Moto::start();
            rt.block_on(m.create_bucket("bench"));
            Store::Moto(m)
        }
    };
    let paths = arg("--paths").unwrap_or_else(|| "agent,exec".into());
    let sandboxes = Sandboxes::up(home, &["prod", "qa"]);
    let prod_pid = sandboxes.pid("prod");
    let qa_pid = sandboxes.pid("qa");
    let kc = home.join("kubeconfig-bench");
    std::fs::write(
        &kc,
        serde_json::to_vec_pretty(&sandbox_kubeconfig(home)).unwrap(),
    )
    .unwrap();
    let linked = ferry_providers::kubeconfig::Linked::load(&ferry_providers::kubeconfig::Sources {
        paths: vec![kc],
    });
    let prod = rt
        .block_on(linked.get("ferry-prod").unwrap().client())
        .unwrap();
    let qa = rt
        .block_on(linked.get("ferry-qa").unwrap().client())
        .unwrap();
    let prod_dir = home.join("data/ferry/sandbox/prod");
    let qa_dir = home.join("data/ferry/sandbox/qa");
    let one = rt.block_on(claims(&prod, &prod_dir, "one", &[5]));
    let four = rt.block_on(claims(&prod, &prod_dir, "four", &seeds_four));
    let one_mib = du(&one[0].0) as f64 / MIB;
    let four_mib: f64 = four.iter().map(|(d, _)| du(d) as f64 / MIB).sum();

    // The raw engine on one claim's folder, into S3 and into a folder.
    let raw = |backend: DynBackend| -> (f64, f64) {
        let repo = init(&rt, backend);
        let t = Instant::now();
        let snap = backup::backup(
            &repo,
            &BackupOptions {
                source: one[0].0.clone(),
                ..Default::default()
            },
            &Arc::new(Progress::new()),
        )
        .unwrap()
        .snapshot;
        let b = t.elapsed().as_secs_f64();
        let target = home.join(format!("raw-restore-{}", snap.id.short()));
        let t = Instant::now();
        restore::restore(
            &repo,
            &snap,
            &restore::RestoreOptions {
                target,
                ..Default::default()
            },
            &Arc::new(Progress::new()),
        )
        .unwrap();
        (b, t.elapsed().as_secs_f64())
    };
    let (raw_s3_backup, raw_s3_restore) = raw(store.backend(&rt, "raw"));
    let (raw_local_backup, raw_local_restore) =
        raw(Arc::new(LocalBackend::new(home.join("raw-local"))));
    let raw_s3 = (one_mib / raw_s3_backup, one_mib / raw_s3_restore);
    let raw_local = (one_mib / raw_local_backup, one_mib / raw_local_restore);

    let (access, secret, region) = store.keys();
    let s3_env: Vec<(&str, String)> = vec![
        ("FERRY_PASSWORD", PASSWORD.into()),
        ("AWS_ACCESS_KEY_ID", access.into()),
        ("AWS_SECRET_ACCESS_KEY", secret.into()),
        ("AWS_REGION", region.into()),
        ("FERRY_S3_ENDPOINT", store.endpoint().to_string()),
        ("FERRY_S3_PATH_STYLE", "true".into()),
    ];
    let env: Vec<(&str, &str)> = s3_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut rows: Vec<Row> = Vec::new();
    let mut checks: Vec<String> = Vec::new();
    for (path, base) in [("agent", "s3://bench/agents"), ("exec", "local")] {
        if !paths.split(',').any(|p| p == path) {
            continue;
        }
        for (ns, mib, vols) in [("one", one_mib, &one), ("four", four_mib, &four)] {
            let repo = match base {
                "local" => home.join(format!("exec-{ns}")).display().to_string(),
                _ => format!("{base}-{ns}"),
            };
            if base == "local" {
                init(&rt, Arc::new(LocalBackend::new(PathBuf::from(&repo))));
            } else {
                init(&rt, store.backend(&rt, &format!("agents-{ns}")));
            }
            let common = ["-r", repo.as_str(), "--data-path", path];
            let mut args: Vec<&str> = common.to_vec();
            args.extend([
                "backup",
                "--context",
                "ferry-prod",
                "-n",
                ns,
                "--no-snapshots",
            ]);
            let b = run(home, &prod_pid, &env, &args);
            let snap = snapshot_of(&b);
            let (raw_b, raw_r) = if base == "local" { raw_local } else { raw_s3 };
            rows.push(Row {
                path,
                step: format!("capture `{ns}` ({} claim(s))", vols.len()),
                mib,
                wall: b.wall.as_secs_f64(),
                raw: raw_b,
                run: Some(b),
            });
            let mut args: Vec<&str> = common.to_vec();
            let target_ns = format!("{ns}-{path}");
            let map = format!("{ns}={target_ns}");
            args.extend([
                "restore",
                &snap,
                "--context",
                "ferry-qa",
                "--map-namespace",
                &map,
                "--map-storage-class",
                "ebs-sc=gp2",
                "--yes",
            ]);
            let r = run(home, &qa_pid, &env, &args);
            rows.push(Row {
                path,
                step: format!("restore `{ns}` into qa"),
                mib,
                wall: r.wall.as_secs_f64(),
                raw: raw_r,
                run: Some(r),
            });
            for (i, (data, _)) in vols.iter().enumerate() {
                let got = rt.block_on(volume_dir(&qa, &qa_dir, &target_ns, &format!("data-{i}")));
                checks.push(format!(
                    "{path} {target_ns}/data-{i}: {}",
                    if same_files(data, &got) {
                        "identical"
                    } else {
                        "DIFFERENT"
                    }
                ));
            }
        }
    }
    drop(sandboxes);

    println!("## Volume data: agents vs exec vs the raw engine\n");
    println!(
        "Claims of {CLAIM_MIB} MiB (the shared generator's data): `one` holds {one_mib:.0} MiB, `four` {four_mib:.0} MiB. S3 is {} on 127.0.0.1; the sandboxes and the agents share this machine's two cores with Ferry and the store.\n",
        store.name()
    );
    println!("| raw engine, one {one_mib:.0} MiB folder | backup MiB/s | restore MiB/s |");
    println!("|---|---:|---:|");
    println!(
        "| into S3 ({}) | {:.1} | {:.1} |",
        store.name(),
        raw_s3.0,
        raw_s3.1
    );
    println!(
        "| into a folder | {:.1} | {:.1} |",
        raw_local.0, raw_local.1
    );
    println!();
    println!(
        "| path | step | MiB | wall s | MiB/s | vs raw (same store) | ferry peak RSS | ferry CPU s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let rate = r.mib / r.wall;
        let (rss, cpu) = r
            .run
            .as_ref()
            .map(|x| {
                (
                    format!("{:.0} MiB", x.peak as f64 / MIB),
                    format!("{:.2}", x.cpu.as_secs_f64()),
                )
            })
            .unwrap_or_default();
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.1} | {:.2}x | {rss} | {cpu} |",
            r.path,
            r.step,
            r.mib,
            r.wall,
            rate,
            rate / r.raw
        );
    }
    println!();
    // Four volumes at once against one: throughput over throughput.
    for path in ["agent", "exec"] {
        let rate = |step: &str| {
            rows.iter()
                .find(|r| r.path == path && r.step.starts_with(step))
                .map(|r| r.mib / r.wall)
        };
        for (what, one, four) in [
            ("capture", "capture `one`", "capture `four`"),
            ("restore", "restore `one`", "restore `four`"),
        ] {
            if let (Some(a), Some(b)) = (rate(one), rate(four)) {
                println!(
                    "- {path} {what}: four volumes at {:.2}x one volume's throughput",
                    b / a
                );
            }
        }
    }
    println!();
    for c in &checks {
        println!("- {c}");
    }
}
