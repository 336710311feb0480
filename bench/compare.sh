#!/usr/bin/env bash
# Ferry vs restic and borg, side by side, on the same generated data set.
#
# What it measures (all three with their default settings, local repositories):
#   1. full backup of a generated day-1 tree (throughput and time)
#   2. incremental backup after the tree is mutated into day 2 (time)
#   3. restore of the latest snapshot (throughput and time), verified with diff -r
#   4. repository size after day 2 and the bytes day 2 added
#   5. peak RSS of backup and restore
#   6. (unless --no-throttle) Ferry's --limit-upload / --limit-read / --limit-download
#      against a 50 MiB/s target
# The comparison table goes to stdout (and to bench/results.md with --save);
# every command's output goes to $WORK/bench.log.
#
# Usage: bench/compare.sh [--mib N] [--work DIR] [--keep] [--skip-build]
#                         [--throttle | --no-throttle] [--save]
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/compare.sh [options]
  --mib N          size of the day-1 data set in MiB (default 1024)
  --work DIR       scratch folder (default: a new mktemp folder under /var/tmp)
  --keep           keep the scratch folder at the end (a --work folder is always kept)
  --skip-build     do not run `cargo build --release` first
  --throttle       run the rate-limit checks (default)
  --no-throttle    skip the rate-limit checks
  --save           also write the tables to bench/results.md
  -h, --help       this text
EOF
}

# ------------------------------------------------------------------ arguments
MIB=1024
WORK=""
KEEP=0
SKIP_BUILD=0
THROTTLE=1
SAVE=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --mib) MIB="${2:?--mib needs a value}"; shift 2 ;;
        --mib=*) MIB="${1#*=}"; shift ;;
        --work) WORK="${2:?--work needs a value}"; shift 2 ;;
        --work=*) WORK="${1#*=}"; shift ;;
        --keep) KEEP=1; shift ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --throttle) THROTTLE=1; shift ;;
        --no-throttle) THROTTLE=0; shift ;;
        --save) SAVE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ "$MIB" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --mib must be a positive integer" >&2; exit 2; }

# Throttle settings: the target rate and the size of the throttled data.
LIMIT_MIB=50                                   # 50 MiB/s for all three limits
THR_MIB=$(( MIB < 512 ? MIB : 512 ))           # 512 MiB, or the data-set size if smaller
TOLERANCE_PCT=5

# ------------------------------------------------------------------ locations
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel 2>/dev/null || (cd "$SCRIPT_DIR/.." && pwd))"
SHARED="$ROOT/../shared"
[[ -f "$SHARED/bench/gen_dataset.py" ]] || SHARED=/work/shared
SHARED="$(realpath "$SHARED")"
GEN="$SHARED/bench/gen_dataset.py"
FERRY="${CARGO_TARGET_DIR:-$ROOT/target}/release/ferry"

# Scratch folder: ours (mktemp, removed at the end unless --keep) or the caller's (kept).
OWN_WORK=0
if [[ -z "$WORK" ]]; then
    WORK="$(mktemp -d /var/tmp/ferry-bench.XXXXXX)"
    OWN_WORK=1
else
    # a caller's folder must be new or empty: the generator refuses to overwrite data
    if [[ -d "$WORK" && -n "$(ls -A "$WORK")" ]]; then
        echo "compare.sh: --work $WORK is not empty; give a new or empty folder" >&2
        exit 2
    fi
    mkdir -p "$WORK"
    KEEP=1
fi
# Absolute, symlink-free path: restic restores the absolute source path under its target.
WORK="$(realpath "$WORK")"
LOG="$WORK/bench.log"
: >"$LOG"

# ------------------------------------------------------------------ cleanup
# On success the scratch folder is removed (unless kept). On failure the bulky parts are
# removed but bench.log stays, so the failure can be read.
OK=0
cleanup() {
    local rc=$?
    if [[ $OK -eq 1 ]]; then
        if [[ $KEEP -eq 0 && $OWN_WORK -eq 1 ]]; then rm -rf -- "$WORK"; fi
    else
        echo "compare.sh: FAILED (exit $rc); log: $LOG" >&2
        if [[ $KEEP -eq 0 ]]; then
            rm -rf -- "$WORK"/data "$WORK"/*-repo "$WORK"/*-restore "$WORK"/throttle-* "$WORK"/xdg
        fi
        echo "---- last 30 lines of $LOG ----" >&2
        tail -n 30 "$LOG" >&2 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ helpers
# note MSG: a progress line on stderr and in the log.
note() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }
die() { note "ERROR: $*"; exit 1; }

# timed NAME CMD...: run CMD with its output in the log; sets SECS[NAME] (wall seconds)
# and RSS[NAME] (max RSS, KiB) from /usr/bin/time.
declare -A SECS RSS
timed() {
    local name="$1"; shift
    local tf="$WORK/time.$name"
    printf '\n$ %s\n' "$*" >>"$LOG"
    if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" >>"$LOG" 2>&1; then
        cat "$tf" >>"$LOG" 2>/dev/null || true
        die "$name failed: $*"
    fi
    # the last line is ours ("Command exited ..." lines only appear on failure)
    read -r "SECS[$name]" "RSS[$name]" < <(tail -n 1 "$tf")
    printf '# %s: %s s, max RSS %s KiB\n' "$name" "${SECS[$name]}" "${RSS[$name]}" >>"$LOG"
    note "$name: ${SECS[$name]} s, max RSS $(( ${RSS[$name]} / 1024 )) MiB"
}

# logged CMD...: run CMD (untimed) with its output in the log.
logged() {
    printf '\n$ %s\n' "$*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 || die "failed: $*"
}

# tree_bytes DIR: the sum of the sizes of the regular files under DIR.
tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d\n", s}'; }

# repo_bytes DIR: the on-disk size of a repository (apparent bytes).
repo_bytes() { du -sb "$1" | cut -f1; }

# warm DIR: read every file once, so that both tools read from the page cache.
# (GNU tar skips reading file data when the archive is literally /dev/null, hence the pipe.)
warm() { tar -cf - -C "$1" . | cat >/dev/null; }


# ------------------------------------------------------------------ environment
# Keep both tools away from the user's home: logs, config and caches live in $WORK/xdg.
export XDG_STATE_HOME="$WORK/xdg/state" XDG_DATA_HOME="$WORK/xdg/data"
export XDG_CONFIG_HOME="$WORK/xdg/config" XDG_CACHE_HOME="$WORK/xdg/cache"
export RESTIC_CACHE_DIR="$WORK/xdg/cache/restic"
export RESTIC_PASSWORD=bench
export BORG_PASSPHRASE=bench BORG_BASE_DIR="$WORK/xdg/borg" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no
# Settings from the caller's shell must not change what is measured.
unset FERRY_REPO FERRY_PASSWORD FERRY_PASSWORD_FILE FERRY_KEY_FILE RESTIC_REPOSITORY \
      RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND RESTIC_COMPRESSION RESTIC_PACK_SIZE GOMAXPROCS
mkdir -p "$XDG_STATE_HOME" "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"

note "work folder: $WORK (log: $LOG)"
command -v restic >/dev/null || die "restic not found (apt-get install restic)"
command -v borg >/dev/null || die "borg not found (apt-get install borgbackup)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install time)"
command -v python3 >/dev/null || die "python3 not found"
[[ -f "$GEN" ]] || die "dataset generator not found: $GEN"

if [[ $SKIP_BUILD -eq 0 ]]; then
    note "building ferry (cargo build --release; waits if another build holds the lock)"
    (cd "$ROOT" && logged cargo build --release)
fi
[[ -x "$FERRY" ]] || die "ferry binary not found: $FERRY (build it, or drop --skip-build)"

FERRY_VERSION="$("$FERRY" --version) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+dirty'))"
RESTIC_VERSION="$(restic version | awk '{print $1, $2}')"
BORG_VERSION="$(borg --version)"
note "$FERRY_VERSION; $RESTIC_VERSION; $BORG_VERSION"

# ------------------------------------------------------------------ day 1 data
DATA="$WORK/data"
note "generating day 1: $MIB MiB into $DATA"
logged python3 "$GEN" day1 "$DATA" --mib "$MIB"
DAY1_BYTES=$(tree_bytes "$DATA")
DAY1_FILES=$(find "$DATA" -type f | wc -l)
note "day 1: $DAY1_FILES files, $DAY1_BYTES bytes; warming the page cache"
warm "$DATA"

# ------------------------------------------------------------------ day 1 backups
# Commands as arrays (not functions: /usr/bin/time can only run programs).
FREPO="$WORK/ferry-repo"
RREPO="$WORK/restic-repo"
FERRY_R=("$FERRY" -r "$FREPO" --key-file "$WORK/ferry.key")
RESTIC_R=(restic -r "$RREPO")
BREPO="$WORK/borg-repo"

note "ferry: init + full backup"
logged "$FERRY" -r "$FREPO" init --generate-key-file "$WORK/ferry.key"
timed ferry_full "${FERRY_R[@]}" backup "$DATA"
F_SIZE1=$(repo_bytes "$FREPO")

note "restic: init + full backup"
logged "${RESTIC_R[@]}" init
timed restic_full "${RESTIC_R[@]}" backup "$DATA"
R_SIZE1=$(repo_bytes "$RREPO")

note "borg: init + full backup (borg 1.2 defaults: lz4, repokey-blake2)"
logged borg init --encryption repokey-blake2 "$BREPO"
timed borg_full borg create "$BREPO::day1" "$DATA"
B_SIZE1=$(repo_bytes "$BREPO")

# ------------------------------------------------------------------ day 2
note "mutating the tree into day 2 (in place)"
logged python3 "$GEN" mutate "$DATA"
DAY2_BYTES=$(tree_bytes "$DATA")
warm "$DATA"

note "ferry: incremental backup"
timed ferry_incr "${FERRY_R[@]}" backup "$DATA"
F_SIZE2=$(repo_bytes "$FREPO")

note "restic: incremental backup"
timed restic_incr "${RESTIC_R[@]}" backup "$DATA"
R_SIZE2=$(repo_bytes "$RREPO")

note "borg: incremental backup"
timed borg_incr borg create "$BREPO::day2" "$DATA"
B_SIZE2=$(repo_bytes "$BREPO")

# Make sure Ferry's incremental run really used the day-1 snapshot as its parent.
"${FERRY_R[@]}" snapshots --json >"$WORK/ferry-snapshots.json" 2>>"$LOG" || die "ferry snapshots failed"
cat "$WORK/ferry-snapshots.json" >>"$LOG"
python3 - "$WORK/ferry-snapshots.json" <<'EOF' || die "ferry's second snapshot has no parent"
import json, sys
snaps = json.load(open(sys.argv[1]))
sys.exit(0 if len(snaps) == 2 and snaps[1].get("parent") == snaps[0]["id"] else 1)
EOF
logged "${FERRY_R[@]}" stats
logged "${RESTIC_R[@]}" stats --mode raw-data

# ------------------------------------------------------------------ restores
note "ferry: restore"
timed ferry_restore "${FERRY_R[@]}" restore latest -t "$WORK/ferry-restore"
note "restic: restore"
timed restic_restore "${RESTIC_R[@]}" restore latest --target "$WORK/restic-restore"
note "borg: restore"
mkdir -p "$WORK/borg-restore"
# borg extracts into the current folder (the archived path without its leading /).
timed borg_restore bash -c 'cd "$1" && exec borg extract "$2"' _ "$WORK/borg-restore" "$BREPO::day2"

note "verifying the restored trees against $DATA"
diff -r -q "$DATA" "$WORK/ferry-restore" >>"$LOG" 2>&1 \
    || die "ferry's restore differs from the source tree (see diff in the log)"
diff -r -q "$DATA" "$WORK/restic-restore$DATA" >>"$LOG" 2>&1 \
    || die "restic's restore differs from the source tree (see diff in the log)"
diff -r -q "$DATA" "$WORK/borg-restore$DATA" >>"$LOG" 2>&1 \
    || die "borg's restore differs from the source tree (see diff in the log)"
note "all three restores match"
rm -rf -- "$WORK/ferry-restore" "$WORK/restic-restore" "$WORK/borg-restore"   # free the space early

note "ferry: check --read-data (not timed)"
logged "${FERRY_R[@]}" check --read-data

# ------------------------------------------------------------------ throttle checks
THR_ROWS=""
if [[ $THROTTLE -eq 1 ]]; then
    THR_SRC="$WORK/throttle-src"
    mkdir -p "$THR_SRC"
    note "throttle: generating $THR_MIB MiB of random data (does not compress: stored ~ raw)"
    head -c $(( THR_MIB * 1024 * 1024 )) /dev/urandom >"$THR_SRC/random.bin"
    THR_BYTES=$(tree_bytes "$THR_SRC")
    warm "$THR_SRC"

    # --limit-upload: achieved = bytes stored by the snapshot / wall time
    note "throttle: backup with --limit-upload ${LIMIT_MIB}MiB"
    logged "$FERRY" -r "$WORK/throttle-up-repo" init --generate-key-file "$WORK/ferry.key.up"
    timed thr_upload "$FERRY" -r "$WORK/throttle-up-repo" --key-file "$WORK/ferry.key.up" \
        --limit-upload "${LIMIT_MIB}MiB" backup "$THR_SRC"
    THR_STORED=$("$FERRY" -r "$WORK/throttle-up-repo" --key-file "$WORK/ferry.key.up" snapshots --json \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["summary"]["bytes_stored"])')
    printf '# throttle upload: bytes_stored=%s, repo=%s\n' "$THR_STORED" \
        "$(repo_bytes "$WORK/throttle-up-repo")" >>"$LOG"

    # --limit-read: achieved = bytes read (the file size) / wall time
    note "throttle: backup with --limit-read ${LIMIT_MIB}MiB"
    logged "$FERRY" -r "$WORK/throttle-read-repo" init --generate-key-file "$WORK/ferry.key.read"
    timed thr_read "$FERRY" -r "$WORK/throttle-read-repo" --key-file "$WORK/ferry.key.read" \
        backup --limit-read "${LIMIT_MIB}MiB" "$THR_SRC"

    # --limit-download: restore from the upload repo; achieved = bytes stored / wall time
    note "throttle: restore with --limit-download ${LIMIT_MIB}MiB"
    timed thr_download "$FERRY" -r "$WORK/throttle-up-repo" --key-file "$WORK/ferry.key.up" \
        --limit-download "${LIMIT_MIB}MiB" restore latest -t "$WORK/throttle-restore"
    cmp "$THR_SRC/random.bin" "$WORK/throttle-restore/random.bin" >>"$LOG" 2>&1 \
        || die "throttled restore differs from the source"

    THR_ROWS="upload $THR_STORED ${SECS[thr_upload]}
read $THR_BYTES ${SECS[thr_read]}
download $THR_STORED ${SECS[thr_download]}"
fi

# ------------------------------------------------------------------ report
note "writing the report"
REPORT="$WORK/report.md"
python3 - >"$REPORT" <<EOF
MiB = 1024 * 1024
day1, day2, files = $DAY1_BYTES, $DAY2_BYTES, $DAY1_FILES
t = dict(ff=${SECS[ferry_full]}, rf=${SECS[restic_full]}, fi=${SECS[ferry_incr]},
         ri=${SECS[restic_incr]}, fr=${SECS[ferry_restore]}, rr=${SECS[restic_restore]})
rss = dict(fb=max(${RSS[ferry_full]}, ${RSS[ferry_incr]}) / 1024,
           rb=max(${RSS[restic_full]}, ${RSS[restic_incr]}) / 1024,
           fr=${RSS[ferry_restore]} / 1024, rr=${RSS[restic_restore]} / 1024)
fs1, fs2, rs1, rs2 = $F_SIZE1, $F_SIZE2, $R_SIZE1, $R_SIZE2
fadd, radd = fs2 - fs1, rs2 - rs1
b = dict(f=${SECS[borg_full]}, i=${SECS[borg_incr]}, r=${SECS[borg_restore]},
         rb=max(${RSS[borg_full]}, ${RSS[borg_incr]}) / 1024, rr=${RSS[borg_restore]} / 1024,
         s1=$B_SIZE1, s2=$B_SIZE2)

def rate(b, s): return b / MiB / s if s > 0 else float("inf")
def ratio(a, b): return "%.2fx" % (a / b) if b else "n/a"

rows = [
    # (metric, format, ferry value, restic value, borg value)
    ("full backup throughput (MiB/s, higher is better)", "%.1f", rate(day1, t["ff"]), rate(day1, t["rf"]), rate(day1, b["f"])),
    ("full backup time (s)", "%.2f", t["ff"], t["rf"], b["f"]),
    ("incremental backup time (s)", "%.2f", t["fi"], t["ri"], b["i"]),
    ("restore throughput (MiB/s, higher is better)", "%.1f", rate(day2, t["fr"]), rate(day2, t["rr"]), rate(day2, b["r"])),
    ("restore time (s)", "%.2f", t["fr"], t["rr"], b["r"]),
    ("repo size after day 2 (MiB)", "%.1f", fs2 / MiB, rs2 / MiB, b["s2"] / MiB),
    ("day-2 bytes added (MiB)", "%.2f", fadd / MiB, radd / MiB, (b["s2"] - b["s1"]) / MiB),
    ("peak RSS, backup (MiB)", "%.0f", rss["fb"], rss["rb"], b["rb"]),
    ("peak RSS, restore (MiB)", "%.0f", rss["fr"], rss["rr"], b["rr"]),
]
print("## Ferry vs restic and borg: %d MiB generated data set" % (day1 // MiB))
print()
print("Data: %d files, day 1 %.1f MiB, day 2 %.1f MiB (raw). $FERRY_VERSION vs $RESTIC_VERSION and $BORG_VERSION, "
      "default settings, local repositories, page cache warm, %s cores." % (files, day1 / MiB, day2 / MiB, "$(nproc)"))
print()
print("| metric | ferry | restic | borg | ferry/restic | ferry/borg |")
print("|---|---:|---:|---:|---:|---:|")
for name, fmt, f, r, bo in rows:
    fcell, rcell, bcell = fmt % f, fmt % r, fmt % bo
    if name.startswith("repo size"):
        fcell += " (%.1f%% of raw)" % (100 * fs2 / day2)
        rcell += " (%.1f%% of raw)" % (100 * rs2 / day2)
        bcell += " (%.1f%% of raw)" % (100 * b["s2"] / day2)
    print("| %s | %s | %s | %s | %s | %s |" % (name, fcell, rcell, bcell, ratio(f, r), ratio(f, bo)))

def met(ok): return "MET" if ok else "NOT MET"
targets = [
    ("first backup >= 2x restic throughput", rate(day1, t["ff"]) >= 2 * rate(day1, t["rf"]),
     "%.2fx" % (rate(day1, t["ff"]) / rate(day1, t["rf"]))),
    ("incremental <= 0.5x restic time", t["fi"] <= 0.5 * t["ri"], "%.2fx" % (t["fi"] / t["ri"])),
    ("restore >= 2x restic throughput", rate(day2, t["fr"]) >= 2 * rate(day2, t["rr"]),
     "%.2fx" % (rate(day2, t["fr"]) / rate(day2, t["rr"]))),
    ("repo size <= restic", fs2 <= rs2, "%.1f vs %.1f MiB" % (fs2 / MiB, rs2 / MiB)),
    ("day-2 added <= restic", fadd <= radd, "%.2f vs %.2f MiB" % (fadd / MiB, radd / MiB)),
    ("Ferry backup peak RSS <= 150 MiB", rss["fb"] <= 150, "%.0f MiB" % rss["fb"]),
    ("Ferry restore peak RSS <= 150 MiB", rss["fr"] <= 150, "%.0f MiB" % rss["fr"]),
]
print()
print("Targets:")
for name, ok, detail in targets:
    print("- %s: **%s** (%s)" % (name, met(ok), detail))

thr = """$THR_ROWS""".strip()
if thr:
    limit = $LIMIT_MIB
    print()
    print("### Ferry rate limits (target %d MiB/s, pass within %d%%, $THR_MIB MiB of random data, fresh repos)" % (limit, $TOLERANCE_PCT))
    print()
    print("| limit | bytes counted | seconds | achieved (MiB/s) | error | result |")
    print("|---|---:|---:|---:|---:|---|")
    what = {"upload": ("--limit-upload (backup)", "stored"),
            "read": ("--limit-read (backup)", "read"),
            "download": ("--limit-download (restore)", "stored")}
    for line in thr.splitlines():
        kind, b, s = line.split()
        b, s = int(b), float(s)
        got = rate(b, s)
        err = 100 * (got - limit) / limit
        label, counted = what[kind]
        print("| %s | %.1f MiB %s | %.2f | %.1f | %+.1f%% | %s |" % (
            label, b / MiB, counted, s, got, err, "pass" if abs(err) <= $TOLERANCE_PCT else "FAIL"))
EOF

cat "$REPORT"
if [[ $SAVE -eq 1 ]]; then
    { printf '<!-- bench/compare.sh --mib %s, %s -->\n\n' "$MIB" "$(date -u +%Y-%m-%dT%H:%MZ)"; cat "$REPORT"; } \
        >"$SCRIPT_DIR/results.md"
    note "saved to $SCRIPT_DIR/results.md"
fi
OK=1
note "done"
