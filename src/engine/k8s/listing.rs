//! The mover's exec protocol: how a volume is listed and how chosen files are read out
//! of it, safely for any file name, with nothing but the tools of a minimal image.
//!
//! A mover image is only assumed to have a POSIX `sh`, `find` (`-mindepth`, `-path`,
//! `-exec … {} +`, `-print0`), `stat -c`, `tar -c` with `--no-recursion`, and for
//! restores `tar -x`, `rm`, `touch -h -d @SECONDS` and, for sparse files, `truncate` and
//! `dd` with `oflag=seek_bytes`: busybox has all of them, and so has every GNU userland. Busybox's `tar` has no `-T` (files from a
//! list), and `-T` of GNU tar reads names starting with `-` as options and undoes
//! backslashes, so names never travel as a list:
//!
//! - **Listing** ([`list_script`], [`parse_listing`]): one `stat` line per entry, its
//!   fields separated by `|`, the name last (it may hold `|`). Names holding a newline
//!   are listed in a second part, after a marker line, as a `stat` line without the
//!   name followed by the name ended by a NUL (`-print0`): every byte of every name
//!   arrives, whatever it is (non-UTF-8 too). Times carry their nanoseconds (taken
//!   from `%y`/`%z`), and each entry its ctime and inode, so an incremental capture can
//!   tell a rewritten file from an unchanged one as local backups do.
//! - **Reading** ([`fetch_script`]): a shell script sent on the exec's stdin to `sh -s`,
//!   running `tar -c --no-recursion` over the chosen names, each a single-quoted shell
//!   word starting with `./` (so no name reads as an option, and no byte is
//!   interpreted; GNU tar also gets `--no-unquote`, as it undoes backslashes even in
//!   its arguments), in batches that stay well below the kernel's argument limits. The
//!   archives of the batches follow each other on stdout.
//!
//! - **Finishing a restore** ([`finish_script`]): after `tar -x` of the archive
//!   `ferry_repo::ingest::write_tar` wrote, another `sh -s` script, its names quoted the
//!   same way, puts sparse files' data regions around their holes (`truncate`, `dd`) and
//!   sets symlinks' own times (`touch -h`), which busybox's `tar -x` leaves at now.
//!
//! The caller checks what arrived against what was asked for: a name missing from the
//! archives, or a file whose data ended early, fails the volume by name.

use ferry_repo::ingest::TarRest;
use ferry_repo::tree::NodeKind;

/// Marker line between the listing's two parts.
pub const NEWLINE_MARKER: &[u8] = b"@@ferry-names-with-newlines@@";

/// The `stat` fields of every entry: mode (hex), size, mtime, ctime, inode, links, uid,
/// gid, the human mtime and ctime (which carry nanoseconds), then the 512-byte blocks
/// allocated (fewer than the size needs: a sparse file).
const FIELDS: &str = "%f|%s|%Y|%Z|%i|%h|%u|%g|%y|%z|%b|";

/// Names given to one `tar` at most, in bytes of script (Linux takes 2 MiB of
/// arguments and environment; one argument at most 128 KiB).
const BATCH_BYTES: usize = 128 * 1024;

/// One entry of a volume listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Path relative to the volume root, without `./`.
    pub path: Vec<u8>,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub links: u64,
    pub uid: u32,
    pub gid: u32,
    /// `st_blocks`: 512-byte blocks allocated.
    pub blocks: u64,
}

impl Listed {
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
    /// A regular file with fewer bytes allocated than its size: it has holes.
    pub fn is_sparse(&self) -> bool {
        self.is_file() && self.blocks.saturating_mul(512) < self.size
    }
    /// The kind of a FIFO, socket or device node: entries with nothing to read, which
    /// the mover must never open (a FIFO blocks whoever opens it).
    pub fn special_kind(&self) -> Option<NodeKind> {
        match self.mode & 0o170000 {
            0o010000 => Some(NodeKind::Fifo),
            0o140000 => Some(NodeKind::Socket),
            0o020000 => Some(NodeKind::CharDev),
            0o060000 => Some(NodeKind::BlockDev),
            _ => None,
        }
    }
}

/// Why a listing could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the mover's listing is not understood at entry {entry}: {detail}")]
pub struct ListingError {
    pub entry: usize,
    pub detail: String,
}

/// The script (for `sh -c`) that lists the folder `root`.
pub fn list_script(root: &str) -> String {
    format!(
        "cd {root} || exit 2\nNL='\n'\n\
         find . -mindepth 1 ! -path \"*$NL*\" -exec stat -c '{FIELDS}%n' {{}} + || exit 3\n\
         echo '{marker}'\n\
         find . -mindepth 1 -path \"*$NL*\" -exec stat -c '{FIELDS}' {{}} \\; -print0 || exit 3\n",
        marker = String::from_utf8_lossy(NEWLINE_MARKER),
    )
}

/// Parses what [`list_script`] printed.
pub fn parse_listing(out: &[u8]) -> Result<Vec<Listed>, ListingError> {
    let mut v = Vec::new();
    let marker = find_marker(out).ok_or_else(|| ListingError {
        entry: 0,
        detail: "the listing ended early (no end marker): the mover's `find` or `stat` failed"
            .into(),
    })?;
    let (first, rest) = (&out[..marker], &out[marker + NEWLINE_MARKER.len() + 1..]);
    for line in first.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let (meta, name) = split_fields(line).ok_or_else(|| bad(v.len(), line))?;
        v.push(entry(meta, name).ok_or_else(|| bad(v.len(), line))?);
    }
    let mut rest = rest;
    while !rest.is_empty() {
        let nl = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad(v.len(), rest))?;
        let (meta_line, after) = (&rest[..nl], &rest[nl + 1..]);
        let nul = after
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| bad(v.len(), rest))?;
        let (meta, _) = split_fields(meta_line).ok_or_else(|| bad(v.len(), meta_line))?;
        v.push(entry(meta, &after[..nul]).ok_or_else(|| bad(v.len(), meta_line))?);
        rest = &after[nul + 1..];
    }
    Ok(v)
}

fn bad(entry: usize, line: &[u8]) -> ListingError {
    let shown = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
    ListingError {
        entry,
        detail: format!("{shown:?}"),
    }
}

/// The marker line's offset: at the start or after a newline, followed by a newline.
fn find_marker(out: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = out[from..]
        .windows(NEWLINE_MARKER.len())
        .position(|w| w == NEWLINE_MARKER)
    {
        let at = from + i;
        let starts = at == 0 || out[at - 1] == b'\n';
        let ends = out.get(at + NEWLINE_MARKER.len()) == Some(&b'\n');
        if starts && ends {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The eleven fields and what follows the eleventh `|` (the name, or nothing).
fn split_fields(line: &[u8]) -> Option<([&[u8]; 11], &[u8])> {
    let mut parts = line.splitn(12, |b| *b == b'|');
    let mut f: [&[u8]; 11] = [&[]; 11];
    for slot in &mut f {
        *slot = parts.next()?;
    }
    Some((f, parts.next()?))
}

fn entry(f: [&[u8]; 11], name: &[u8]) -> Option<Listed> {
    fn text(b: &[u8]) -> Option<&str> {
        std::str::from_utf8(b).ok().map(str::trim)
    }
    let num = |b: &[u8]| text(b)?.parse::<i64>().ok();
    let unum = |b: &[u8]| text(b)?.parse::<u64>().ok();
    let path = name.strip_prefix(b"./").unwrap_or(name);
    if path.is_empty() || path == b"." {
        return None;
    }
    let mtime = num(f[2])?;
    let ctime = num(f[3])?;
    Some(Listed {
        path: path.to_vec(),
        mode: u32::from_str_radix(text(f[0])?, 16).ok()?,
        size: unum(f[1])?,
        mtime_ns: nanos(mtime, text(f[8])?),
        ctime_ns: nanos(ctime, text(f[9])?),
        inode: unum(f[4])?,
        links: unum(f[5])?,
        uid: u32::try_from(unum(f[6])?).ok()?,
        gid: u32::try_from(unum(f[7])?).ok()?,
        blocks: unum(f[10])?,
    })
}

/// Seconds plus the fraction a `%y`-style time carries (`2024-01-02 03:04:05.123456789
/// +0000`); a time without a fraction counts as whole seconds.
fn nanos(secs: i64, human: &str) -> i64 {
    let frac = human
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.split_once('.'))
        .map(|(_, f)| f)
        .unwrap_or("");
    let digits: String = frac
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    let ns = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse::<i64>().unwrap_or(0)
    };
    secs.saturating_mul(1_000_000_000).saturating_add(ns)
}

/// `name` as one single-quoted shell word, starting with `./`.
fn quoted(name: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(name.len() + 6);
    w.extend_from_slice(b"'./");
    for b in name {
        if *b == b'\'' {
            w.extend_from_slice(b"'\\''");
        } else {
            w.push(*b);
        }
    }
    w.push(b'\'');
    w
}

/// The script (for `sh -s`, run in the volume's root) that writes a tar archive of
/// each batch of `names` to stdout; it stops at the first `tar` that fails.
pub fn fetch_script(names: &[Vec<u8>]) -> Vec<u8> {
    // GNU tar undoes backslash escapes in names unless told not to; busybox's does not,
    // and does not know the option.
    let mut script =
        b"set --\ncase \"$(tar --version 2>/dev/null)\" in *GNU*) set -- --no-unquote ;; esac\n"
            .to_vec();
    let mut line = Vec::new();
    let flush = |line: &mut Vec<u8>, script: &mut Vec<u8>| {
        if !line.is_empty() {
            script.extend_from_slice(b"tar -c -f - --no-recursion \"$@\"");
            script.append(line);
            script.extend_from_slice(b" || exit $?\n");
        }
    };
    for n in names {
        let w = quoted(n);
        if !line.is_empty() && line.len() + w.len() + 1 > BATCH_BYTES {
            flush(&mut line, &mut script);
        }
        line.push(b' ');
        line.extend_from_slice(&w);
    }
    flush(&mut line, &mut script);
    script.extend_from_slice(b"exit 0\n");
    script
}

/// The script (for `sh -s`, run in the volume's root after `tar -x` of a
/// [`ferry_repo::ingest::write_tar`] archive) that does what the archive could not: puts
/// each sparse file's data regions in place around its holes (then its mode and time
/// again) and removes the regions' folder, and sets the symlinks' own times. It prints
/// a line per file done, so a long one is seen moving; a sparse file it cannot write
/// fails it.
pub fn finish_script(rest: &TarRest) -> Vec<u8> {
    let mut s = Vec::new();
    let line = |s: &mut Vec<u8>, parts: &[&[u8]]| {
        for p in parts {
            s.extend_from_slice(p);
        }
        s.push(b'\n');
    };
    for f in &rest.sparse {
        let p = quoted(&f.path);
        line(
            &mut s,
            &[
                b"chmod u+w ",
                &p,
                b" && truncate -s ",
                f.size.to_string().as_bytes(),
                b" ",
                &p,
                b" || exit 5",
            ],
        );
        for r in &f.regions {
            let seek = r.offset.to_string();
            line(
                &mut s,
                &[
                    b"dd if=",
                    &quoted(&r.member),
                    b" of=",
                    &p,
                    b" bs=65536 oflag=seek_bytes seek=",
                    seek.as_bytes(),
                    b" conv=notrunc 2>/dev/null || exit 5",
                ],
            );
        }
        let mode = format!("{:o}", f.mode);
        let time = format!("@{}", f.mtime_secs);
        line(
            &mut s,
            &[
                b"chmod ",
                mode.as_bytes(),
                b" ",
                &p,
                b" && touch -c -d ",
                time.as_bytes(),
                b" ",
                &p,
                b" || exit 5",
            ],
        );
        line(&mut s, &[b"echo ."]);
    }
    if let Some(dir) = &rest.sparse_dir {
        line(&mut s, &[b"rm -rf ", &quoted(dir), b" || exit 5"]);
    }
    for (path, mtime) in &rest.symlinks {
        // A `touch` without `-h` would follow the link: leave the time then.
        let time = format!("@{mtime}");
        line(
            &mut s,
            &[
                b"touch -h -c -d ",
                time.as_bytes(),
                b" ",
                &quoted(path),
                b" 2>/dev/null; echo .",
            ],
        );
    }
    s.extend_from_slice(b"exit 0\n");
    s
}

/// The exec command that runs a [`fetch_script`] or a [`finish_script`] (sent on
/// stdin) in the folder `root`.
pub fn fetch_command(root: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("cd {root} || exit 2\nexec sh -s"),
    ]
}

pub use ferry_repo::ingest::member_path;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::unix::ffi::OsStrExt as _;
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// The hostile names of the campaign, and then some.
    fn hostile() -> Vec<Vec<u8>> {
        vec![
            b"--exclude=*".to_vec(),
            b"-C..".to_vec(),
            b"report\\2024.txt".to_vec(),
            b"tab\there".to_vec(),
            b"new\nline".to_vec(),
            b"trailing-newline\n".to_vec(),
            b"bad\xff\xfe".to_vec(),
            b"it's \"quoted\" $HOME `id`".to_vec(),
            b"..dots".to_vec(),
            b"...".to_vec(),
            b"pipe|in|name".to_vec(),
            b" leading space".to_vec(),
            b"-".to_vec(),
            b"*".to_vec(),
            b"x".repeat(200),
        ]
    }

    /// Which shells run the scripts here: the real busybox when installed, and the
    /// host's `sh` with GNU tools.
    fn shells() -> Vec<Vec<&'static str>> {
        let mut v = vec![vec!["sh"]];
        if Command::new("busybox").arg("true").status().is_ok() {
            v.push(vec!["busybox", "sh"]);
        }
        v
    }

    fn make_tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("sub/--files-from=x")).unwrap();
        for (i, n) in hostile().iter().enumerate() {
            let p = dir.join(std::ffi::OsStr::from_bytes(n));
            std::fs::write(&p, format!("content {i}\n").repeat(i + 1)).unwrap();
            let q = dir.join("sub").join(std::ffi::OsStr::from_bytes(n));
            std::fs::write(&q, format!("deep {i}")).unwrap();
        }
    }

    /// Runs `sh -c script` with the busybox applets first on the PATH when `shell`
    /// is busybox (as in a busybox image).
    fn run(shell: &[&str], script: &str, stdin: &[u8]) -> (bool, Vec<u8>, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = if shell[0] == "busybox" {
            for applet in [
                "sh", "find", "stat", "tar", "echo", "chmod", "truncate", "dd", "touch", "rm",
            ] {
                std::os::unix::fs::symlink(
                    which("busybox").expect("busybox"),
                    dir.path().join(applet),
                )
                .unwrap();
            }
            let mut c = Command::new(dir.path().join("sh"));
            c.env("PATH", dir.path());
            c
        } else {
            Command::new("sh")
        };
        let mut child = cmd
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut si = child.stdin.take().unwrap();
        let input = stdin.to_vec();
        let feeder = std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = si.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        (
            out.status.success(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn which(p: &str) -> Option<std::path::PathBuf> {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(p))
                .find(|c| c.is_file())
        })
    }

    #[test]
    fn every_name_is_listed_exactly_with_nanoseconds() {
        let dir = tempfile::tempdir().unwrap();
        make_tree(dir.path());
        let root = dir.path().to_str().unwrap();
        for shell in shells() {
            let (ok, out, err) = run(&shell, &list_script(root), b"");
            assert!(ok, "{shell:?}: {err}");
            let listed = parse_listing(&out).unwrap();
            let mut want: Vec<Vec<u8>> = hostile();
            want.extend(
                hostile()
                    .into_iter()
                    .map(|n| [b"sub/".to_vec(), n].concat()),
            );
            want.push(b"sub".to_vec());
            want.push(b"sub/--files-from=x".to_vec());
            want.sort();
            let mut got: Vec<Vec<u8>> = listed.iter().map(|l| l.path.clone()).collect();
            got.sort();
            assert_eq!(got, want, "{shell:?}");
            for l in &listed {
                let p = dir.path().join(std::ffi::OsStr::from_bytes(&l.path));
                let md = std::fs::symlink_metadata(&p).unwrap();
                use std::os::unix::fs::MetadataExt as _;
                assert_eq!(l.size, if l.is_dir() { l.size } else { md.size() });
                assert_eq!(l.inode, md.ino(), "{shell:?}");
                assert_eq!(
                    l.mtime_ns,
                    md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                    "{shell:?}"
                );
                assert_eq!(
                    l.ctime_ns,
                    md.ctime() * 1_000_000_000 + md.ctime_nsec(),
                    "{shell:?}"
                );
            }
        }
    }

    #[test]
    fn chosen_files_arrive_whatever_their_names() {
        let dir = tempfile::tempdir().unwrap();
        make_tree(dir.path());
        let root = dir.path().to_str().unwrap();
        let mut names = hostile();
        names.push(b"sub/new\nline".to_vec());
        names.push(b"sub/--exclude=*".to_vec());
        for shell in shells() {
            let script = fetch_command(root)[2].clone();
            let (ok, out, err) = run(&shell, &script, &fetch_script(&names));
            assert!(ok, "{shell:?}: {err}");
            let mut a = tar::Archive::new(&out[..]);
            a.set_ignore_zeros(true);
            let mut got = Vec::new();
            for e in a.entries().unwrap() {
                let mut e = e.unwrap();
                let path = member_path(&e.path_bytes()).to_vec();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                let want =
                    std::fs::read(dir.path().join(std::ffi::OsStr::from_bytes(&path))).unwrap();
                assert_eq!(data, want, "{shell:?} {:?}", String::from_utf8_lossy(&path));
                got.push(path);
            }
            got.sort();
            let mut want = names.clone();
            want.sort();
            assert_eq!(got, want, "{shell:?}");
        }
    }

    /// What `tar -x` left undone is finished in place: a sparse file's regions go
    /// around its holes (odd name, read-only mode and time kept), the regions' folder
    /// goes, and a dangling symlink gets its own time.
    #[test]
    fn the_finish_script_fills_sparse_files_and_sets_symlink_times() {
        use ferry_repo::ingest::{Region, SparseFile};
        use std::os::unix::fs::MetadataExt as _;
        for shell in shells() {
            let dir = tempfile::tempdir().unwrap();
            let name: &[u8] = b"it's -sparse\nx";
            let path = dir.path().join(std::ffi::OsStr::from_bytes(name));
            std::fs::write(&path, b"").unwrap();
            std::fs::create_dir(dir.path().join(".regions")).unwrap();
            std::fs::write(dir.path().join(".regions/0-0"), [1u8; 4096]).unwrap();
            std::fs::write(dir.path().join(".regions/0-1"), [2u8; 100]).unwrap();
            std::os::unix::fs::symlink("nowhere", dir.path().join("-link")).unwrap();
            let size = 48u64 << 20;
            let rest = TarRest {
                sparse: vec![SparseFile {
                    path: name.to_vec(),
                    size,
                    mode: 0o400,
                    mtime_secs: 1_600_000_000,
                    regions: vec![
                        Region {
                            offset: 8192,
                            length: 4096,
                            member: b".regions/0-0".to_vec(),
                        },
                        Region {
                            offset: 30 << 20,
                            length: 100,
                            member: b".regions/0-1".to_vec(),
                        },
                    ],
                }],
                sparse_dir: Some(b".regions".to_vec()),
                symlinks: vec![(b"-link".to_vec(), 1_400_000_000)],
            };
            let root = dir.path().to_str().unwrap();
            let script = fetch_command(root)[2].clone();
            let (ok, _, err) = run(&shell, &script, &finish_script(&rest));
            assert!(ok, "{shell:?}: {err}");
            let data = std::fs::read(&path).unwrap();
            assert_eq!(data.len() as u64, size, "{shell:?}");
            assert!(data[..8192].iter().all(|b| *b == 0));
            assert!(data[8192..12288].iter().all(|b| *b == 1));
            assert!(data[30 << 20..(30 << 20) + 100].iter().all(|b| *b == 2));
            assert_eq!(data.iter().filter(|b| **b != 0).count(), 4196);
            let m = std::fs::metadata(&path).unwrap();
            assert!(
                m.blocks() * 512 < 1 << 20,
                "{shell:?}: {} blocks",
                m.blocks()
            );
            assert_eq!(m.mode() & 0o7777, 0o400, "{shell:?}");
            assert_eq!(m.mtime(), 1_600_000_000, "{shell:?}");
            assert!(!dir.path().join(".regions").exists(), "{shell:?}");
            let l = std::fs::symlink_metadata(dir.path().join("-link")).unwrap();
            assert_eq!(l.mtime(), 1_400_000_000, "{shell:?}");
        }
    }

    #[test]
    fn many_names_are_split_into_batches_below_the_argument_limit() {
        let names: Vec<Vec<u8>> = (0..20_000)
            .map(|i| format!("folder/file-{i:06}-with-a-long-name").into_bytes())
            .collect();
        let s = fetch_script(&names);
        let lines: Vec<&[u8]> = s.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        assert!(lines.len() > 3);
        for l in &lines {
            assert!(l.len() <= BATCH_BYTES + 64);
        }
        assert_eq!(lines.last().copied(), Some(&b"exit 0"[..]));
    }

    #[test]
    fn damaged_listings_are_errors_not_guesses() {
        assert!(parse_listing(b"81a4|5|1|1|1|1|0|0|x|y|./a\n").is_err());
        assert!(
            parse_listing(b"zz|5|1|1|1|1|0|0|x|y|./a\n@@ferry-names-with-newlines@@\n").is_err()
        );
        let ok = parse_listing(
            b"81a4|5|10|11|7|1|0|0|2024-01-01 00:00:10.5 +0000|2024-01-01 00:00:11 +0000|8|./a|b\n\
              @@ferry-names-with-newlines@@\n\
              81a4|1|10|11|8|1|0|0|x 00:00:10.000000001 +0|y|0|\n./c\nd\0",
        )
        .unwrap();
        assert_eq!(ok[0].path, b"a|b");
        assert_eq!(ok[0].mtime_ns, 10_500_000_000);
        assert_eq!(ok[0].ctime_ns, 11_000_000_000);
        assert_eq!(ok[1].path, b"c\nd");
        assert_eq!(ok[1].mtime_ns, 10_000_000_001);
        // A name record without its NUL.
        assert!(
            parse_listing(b"@@ferry-names-with-newlines@@\n81a4|1|1|1|1|1|0|0|x|y|\n./c").is_err()
        );
    }

    #[test]
    fn member_paths_lose_dot_slash_and_trailing_slashes() {
        assert_eq!(member_path(b"./a/b/"), b"a/b");
        assert_eq!(member_path(b"./-C.."), b"-C..");
        assert_eq!(member_path(b"a"), b"a");
    }
}
