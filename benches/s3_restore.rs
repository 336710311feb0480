//! Reading a repository from an object store with latency (issue 14, item 21): moto on
//! 127.0.0.1 behind the fault proxy of the tests (tests/support/faults.rs), which adds
//! a fixed latency to every request and, in a second scenario, delays 2% of answers by
//! seconds. A data set is backed up once, then `ferry restore` and `ferry check
//! --read-data` are timed with each binary given, and with `--connections 1` (one read
//! at a time) for comparison.
//!
//! Prints a markdown table; no assertions (speed is measured, not tested). Binaries:
//! the one built with this bench, and `FERRY_BENCH_BEFORE=/path/to/ferry` (an older
//! build) if set.
//!
//! Each command runs `--repeat` times (default 3), the binaries taking turns, and the
//! proxy's dice are reset before each run so every run meets the same delays; the
//! table shows the median and every run.
//!
//! `cargo bench --bench s3_restore [-- --mib N] [-- --pack-mib P] [-- --latency-ms L]
//! [-- --delays] [-- --repeat R] [-- --data DIR]` (the data set is `../shared/bench/gen_dataset.py day1` when that
//! script is there, else a generated tree of small and large files).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/faults.rs"]
mod faults;
#[path = "../tests/support/moto.rs"]
mod moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use faults::{FaultProxy, Faults};
use moto::Moto;

struct Args {
    mib: u64,
    pack_mib: u32,
    latency: Duration,
    delays: bool,
    repeat: usize,
    data: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        mib: 64,
        pack_mib: 32,
        latency: Duration::from_millis(20),
        delays: false,
        repeat: 3,
        data: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mib" => a.mib = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.mib),
            "--pack-mib" => {
                a.pack_mib = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.pack_mib)
            }
            "--latency-ms" => {
                a.latency =
                    Duration::from_millis(it.next().and_then(|v| v.parse().ok()).unwrap_or(20))
            }
            "--delays" => a.delays = true,
            "--repeat" => a.repeat = it.next().and_then(|v| v.parse().ok()).unwrap_or(3).max(1),
            "--data" => a.data = it.next().map(PathBuf::from),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn ferry(bin: &str, endpoint: &str, home: &Path, args: &[&str]) -> Output {
    let o = Command::new(bin)
        .args([
            "--s3-endpoint",
            endpoint,
            "--s3-path-style",
            "--s3-region",
            "us-east-1",
            "--quiet",
            "-r",
            "s3://bench/repo",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
        .env("FERRY_PASSWORD", "bench")
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .output()
        .unwrap();
    if !o.status.success() {
        eprintln!(
            "{bin} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    o
}

/// A tree of `mib` MiB: the shared generator's if it is there, else our own.
fn dataset(dir: &Path, mib: u64) -> PathBuf {
    let root = dir.join("day1");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_dataset.py");
    if script.exists() {
        let ok = Command::new("python3")
            .arg(&script)
            .args(["day1", root.to_str().unwrap(), "--mib", &mib.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return root;
        }
    }
    // Half in 2 MiB files, half in 4 KiB files, 200 to a folder.
    let mut state = 0x1234_5678_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let big = (mib / 4).max(1);
    for i in 0..big {
        let data: Vec<u8> = (0..(2 << 20)).map(|_| next() as u8).collect();
        let p = root.join(format!("big/{i}.bin"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    for i in 0..(mib * 128) {
        let data: Vec<u8> = (0..4096).map(|_| next() as u8).collect();
        let p = root.join(format!("small/d{}/{i}.bin", i / 200));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    root
}

struct Row {
    scenario: String,
    binary: String,
    command: String,
    requests: u64,
    seconds: Vec<f64>,
    ok: bool,
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let moto = Moto::start();
    rt.block_on(moto.create_bucket("bench"));
    let proxy = rt.block_on(FaultProxy::start(&moto.endpoint, Faults::default()));
    let work = tempfile::tempdir().unwrap();
    let home = work.path();
    let src = match &a.data {
        Some(d) => d.clone(),
        None => dataset(home, a.mib),
    };
    let after = env!("CARGO_BIN_EXE_ferry").to_string();
    let mut binaries = Vec::new();
    if let Ok(before) = std::env::var("FERRY_BENCH_BEFORE") {
        binaries.push(("before".to_string(), before));
    }
    binaries.push(("after".to_string(), after.clone()));

    let ep = proxy.endpoint.clone();
    let started = Instant::now();
    let pack = a.pack_mib.to_string();
    assert!(
        ferry(&after, &ep, home, &["init", "--pack-size-mib", &pack])
            .status
            .success()
    );
    assert!(
        ferry(&after, &ep, home, &["backup", src.to_str().unwrap()])
            .status
            .success()
    );
    eprintln!("backed up {} in {:.1?}", src.display(), started.elapsed());

    let mut scenarios = vec![(
        format!("{} ms per request", a.latency.as_millis()),
        Faults {
            latency: a.latency,
            ..Faults::default()
        },
    )];
    if a.delays {
        scenarios.push((
            format!(
                "{} ms per request, 2% of answers 2-10 s late",
                a.latency.as_millis()
            ),
            Faults {
                seed: 14,
                latency: a.latency,
                delay: 0.02,
                delay_range: (Duration::from_secs(2), Duration::from_secs(10)),
                ..Faults::default()
            },
        ));
    }
    let mut rows: Vec<Row> = Vec::new();
    for (scenario, faults) in &scenarios {
        let mut variants: Vec<(String, String, Vec<&str>)> = Vec::new();
        for (label, bin) in &binaries {
            variants.push((label.clone(), bin.clone(), vec![]));
            if label == "after" {
                variants.push((
                    "after, --connections 1".into(),
                    bin.clone(),
                    vec!["--connections", "1"],
                ));
            }
        }
        let first = rows.len();
        for rep in 0..a.repeat {
            let mut i = first;
            for (name, bin, extra) in &variants {
                for command in ["restore", "check --read-data"] {
                    proxy.set_faults(faults.clone());
                    proxy.reset_dice();
                    let target = home.join("out");
                    let _ = std::fs::remove_dir_all(&target);
                    let mut args: Vec<&str> = extra.clone();
                    let target_s = target.to_str().unwrap().to_string();
                    match command {
                        "restore" => args.extend(["restore", "latest", "-t", &target_s]),
                        _ => args.extend(["check", "--read-data"]),
                    }
                    let before = proxy.stats().requests;
                    let t = Instant::now();
                    let o = ferry(bin, &ep, home, &args);
                    let seconds = t.elapsed().as_secs_f64();
                    let requests = proxy.stats().requests - before;
                    proxy.set_faults(Faults::default());
                    if rep == 0 {
                        rows.push(Row {
                            scenario: scenario.clone(),
                            binary: name.clone(),
                            command: command.to_string(),
                            requests,
                            seconds: Vec::new(),
                            ok: true,
                        });
                    }
                    rows[i].seconds.push(seconds);
                    rows[i].ok &= o.status.success();
                    i += 1;
                    eprintln!("{scenario} · {name} · {command}: {seconds:.1} s");
                }
            }
        }
    }
    let size: u64 = walk_size(&src);
    println!(
        "\n## Reading from S3 (moto) with latency: {:.0} MiB data set, {} MiB packs\n",
        size as f64 / (1024.0 * 1024.0),
        a.pack_mib
    );
    println!("| scenario | binary | command | requests | median s | runs (s) |");
    println!("|---|---|---|---:|---:|---|");
    for r in rows {
        let mut sorted = r.seconds.clone();
        sorted.sort_by(f64::total_cmp);
        let runs: Vec<String> = r.seconds.iter().map(|s| format!("{s:.1}")).collect();
        println!(
            "| {} | {} | {} | {} | {:.1}{} | {} |",
            r.scenario,
            r.binary,
            r.command,
            r.requests,
            sorted[sorted.len() / 2],
            if r.ok { "" } else { " (failed)" },
            runs.join(", ")
        );
    }
}

fn walk_size(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| walk_size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        m.len()
    }
}
