//! The plan in words, for a terminal and for `ferry plan`.

use std::fmt::Write as _;

use super::{Change, Plan, PlanItem};

impl Plan {
    /// The plan in words, for a terminal.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Restore plan: snapshot {} from {} into {} ({})",
            self.snapshot, self.source_cluster, self.target_cluster, self.target_version
        );
        if !self.namespace_mapping.is_empty() {
            let m: Vec<String> = self
                .namespace_mapping
                .iter()
                .map(|(a, b)| format!("{a} -> {b}"))
                .collect();
            let _ = writeln!(s, "Namespaces: {}", m.join(", "));
        }
        if !self.storage_class_mapping.is_empty() {
            let m: Vec<String> = self
                .storage_class_mapping
                .iter()
                .map(|(a, b)| format!("{a} -> {b}"))
                .collect();
            let _ = writeln!(s, "Storage classes: {}", m.join(", "));
        }
        let _ = writeln!(
            s,
            "Objects: {} to create, {} to update, {} skipped; conflicts: {:?}",
            self.count(Change::Create),
            self.count(Change::Update),
            self.count(Change::Skip),
            self.conflict
        );
        for (n, wave) in self.waves().iter().enumerate() {
            let _ = writeln!(s, "\nWave {}:", n + 1);
            for i in wave {
                let verb = match i.action {
                    Change::Create => "create",
                    Change::Update => "update",
                    Change::Skip => "skip",
                };
                let _ = writeln!(s, "  {verb:<7} {}", i.target);
                if let Some(why) = &i.included {
                    let _ = writeln!(s, "          (included: {why})");
                }
                for c in &i.changes {
                    let _ = writeln!(s, "          ~ {c}");
                }
            }
        }
        let skipped: Vec<&PlanItem> = self
            .items
            .iter()
            .filter(|i| i.action == Change::Skip)
            .collect();
        if !skipped.is_empty() {
            let _ = writeln!(s, "\nSkipped:");
            for i in skipped {
                let _ = writeln!(s, "  {} ({})", i.source, i.reason.as_deref().unwrap_or(""));
            }
        }
        if !self.volumes.is_empty() {
            let _ = writeln!(s, "\nVolumes:");
            if let Some(d) = &self.data_path {
                let _ = writeln!(s, "  data through {}: {}", d.path, d.why);
            }
            for v in &self.volumes {
                let _ = writeln!(
                    s,
                    "  {} -> {}: class {} -> {}, {} files, {}{}",
                    v.source,
                    v.target,
                    v.storage_class.as_deref().unwrap_or("(default)"),
                    v.target_storage_class.as_deref().unwrap_or("(default)"),
                    v.files,
                    ferry_repo::units::bytes(v.bytes),
                    if v.restore_data {
                        String::new()
                    } else {
                        format!(
                            " (data not restored: {})",
                            v.reason.as_deref().unwrap_or("")
                        )
                    }
                );
            }
        }
        if self.findings.is_empty() {
            if self.namespace_mapping.iter().any(|(a, b)| a != b) {
                let _ = writeln!(s, "\nIsolation: nothing in the copy points at the source.");
            }
        } else {
            let _ = writeln!(
                s,
                "\nIsolation: {} reference(s) in the copy point at the source:",
                self.findings.len()
            );
            for f in &self.findings {
                let _ = writeln!(s, "  {} {}: {}", f.object, f.path, f.message);
                let _ = writeln!(s, "          fix: {}", f.fix);
            }
        }
        if self.problems.is_empty() {
            let _ = writeln!(s, "\nNo problems found.");
        } else {
            let _ = writeln!(s, "\nProblems:");
            for p in &self.problems {
                let _ = writeln!(
                    s,
                    "  {} {}{}",
                    if p.blocking { "BLOCKING" } else { "warning " },
                    p.object
                        .as_ref()
                        .map(|o| format!("{o}: "))
                        .unwrap_or_default(),
                    p.message
                );
            }
        }
        s
    }
}
