//! Retention: which snapshots to keep, and removing the others.
//!
//! Snapshots are grouped by host and paths. Within a group, newest first, a snapshot is
//! kept if it is among the last N, or is the newest of a new hour, day, week, month or
//! year while that rule still has places left, or is within the `within` window, or has
//! a kept tag. Forgetting removes only snapshot files; `prune` then frees the data.

use std::collections::BTreeMap;

use chrono::Datelike;

use super::backend::FileKind;
use super::lock;
use super::snapshot::{self, Snapshot};
use super::{Repository, Result};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    pub last: Option<usize>,
    pub hourly: Option<usize>,
    pub daily: Option<usize>,
    pub weekly: Option<usize>,
    pub monthly: Option<usize>,
    pub yearly: Option<usize>,
    pub within: Option<chrono::Duration>,
    pub tags: Vec<String>,
}

impl Retention {
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone)]
pub struct Decision {
    pub snapshot: Snapshot,
    pub keep: bool,
    /// Why it is kept (empty when removed).
    pub reasons: Vec<String>,
}

/// Applies `policy` to `snaps` (any order); returns decisions newest first per group.
pub fn apply(
    policy: &Retention,
    snaps: &[Snapshot],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Decision> {
    let mut groups: BTreeMap<(String, Vec<String>), Vec<&Snapshot>> = BTreeMap::new();
    for s in snaps {
        groups
            .entry((s.host.clone(), s.paths.clone()))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    for (_, mut list) in groups {
        list.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        type KeyFn = fn(&chrono::DateTime<chrono::Utc>) -> i64;
        let buckets: [(&str, Option<usize>, KeyFn); 5] = [
            ("hourly", policy.hourly, |t| t.timestamp().div_euclid(3600)),
            ("daily", policy.daily, |t| {
                i64::from(t.year()) * 1000 + i64::from(t.ordinal())
            }),
            ("weekly", policy.weekly, |t| {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }),
            ("monthly", policy.monthly, |t| {
                i64::from(t.year()) * 100 + i64::from(t.month())
            }),
            ("yearly", policy.yearly, |t| i64::from(t.year())),
        ];
        let mut left: Vec<Option<usize>> = buckets.iter().map(|b| b.1).collect();
        let mut last_key: Vec<Option<i64>> = vec![None; buckets.len()];
        for (i, s) in list.iter().enumerate() {
            let mut reasons = Vec::new();
            if policy.last.is_some_and(|n| i < n) {
                reasons.push("last".to_string());
            }
            for (b, (name, _, key)) in buckets.iter().enumerate() {
                let k = key(&s.time);
                if let Some(n) = left[b]
                    && n > 0
                    && last_key[b] != Some(k)
                {
                    left[b] = Some(n - 1);
                    last_key[b] = Some(k);
                    reasons.push((*name).to_string());
                }
            }
            if let Some(w) = policy.within
                && now.signed_duration_since(s.time) <= w
            {
                reasons.push("within".to_string());
            }
            if s.tags.iter().any(|t| policy.tags.contains(t)) {
                reasons.push("tag".to_string());
            }
            out.push(Decision {
                snapshot: (*s).clone(),
                keep: !reasons.is_empty(),
                reasons,
            });
        }
    }
    out
}

/// Removes the snapshots `policy` does not keep (unless `dry_run`).
pub fn forget(repo: &Repository, policy: &Retention, dry_run: bool) -> Result<Vec<Decision>> {
    let _lock = lock::acquire(repo, true, "forget")?;
    let (snaps, _) = snapshot::list(repo)?;
    let decisions = apply(policy, &snaps, chrono::Utc::now());
    if !dry_run {
        for d in decisions.iter().filter(|d| !d.keep) {
            repo.block_on(
                repo.backend()
                    .remove(FileKind::Snapshot, &d.snapshot.id.to_hex()),
            )?;
        }
    }
    Ok(decisions)
}

/// Removes the given snapshots by ID.
pub fn forget_ids(repo: &Repository, ids: &[super::Id]) -> Result<()> {
    let _lock = lock::acquire(repo, true, "forget")?;
    for id in ids {
        repo.block_on(repo.backend().remove(FileKind::Snapshot, &id.to_hex()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn snap(n: u8, t: chrono::DateTime<chrono::Utc>) -> Snapshot {
        Snapshot {
            id: super::super::Id([n; 32]),
            version: 1,
            time: t,
            host: "h".into(),
            username: "u".into(),
            paths: vec!["/data".into()],
            tags: vec![],
            parent: None,
            tree: super::super::Id::default(),
            items: Default::default(),
            meta: Default::default(),
            summary: Default::default(),
            program: "test".into(),
        }
    }

    #[test]
    fn daily_and_last_rules() {
        let base = chrono::Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        // Two snapshots a day for five days.
        let mut snaps = Vec::new();
        for d in 0..5u8 {
            for h in 0..2u8 {
                let t = base - chrono::Duration::days(i64::from(d))
                    + chrono::Duration::hours(i64::from(h));
                snaps.push(snap(d * 2 + h, t));
            }
        }
        let p = Retention {
            last: Some(1),
            daily: Some(3),
            ..Default::default()
        };
        let d = apply(&p, &snaps, base);
        let kept: Vec<_> = d
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.snapshot.time)
            .collect();
        // Newest of each of the 3 newest days; the newest is also "last".
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0], base + chrono::Duration::hours(1));
        assert_eq!(
            kept[1],
            base - chrono::Duration::days(1) + chrono::Duration::hours(1)
        );
        assert!(
            d[0].reasons.contains(&"last".to_string())
                && d[0].reasons.contains(&"daily".to_string())
        );
    }

    #[test]
    fn within_and_tags() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
        let mut old = snap(1, now - chrono::Duration::days(30));
        old.tags.push("keep".into());
        let recent = snap(2, now - chrono::Duration::hours(2));
        let middle = snap(3, now - chrono::Duration::days(3));
        let p = Retention {
            within: Some(chrono::Duration::days(1)),
            tags: vec!["keep".into()],
            ..Default::default()
        };
        let d = apply(&p, &[old, recent, middle], now);
        let keep: Vec<u8> = d
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.snapshot.id.0[0])
            .collect();
        assert_eq!(keep, vec![2, 1]);
    }
}
