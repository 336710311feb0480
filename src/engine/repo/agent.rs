//! What an in-cluster agent (`ferry-agent`, `src/agent/`) and the Ferry that started it
//! say to each other. The agent is told what to do by its command line and environment
//! (the names below) and answers with one JSON object per line on its standard output
//! ([`AgentLine`]), which Ferry reads from the pod's log. Both sides are built from this
//! module, so they cannot drift apart; [`AgentLine::Hello`] carries the version, and an
//! agent of another version is refused by both.

use serde::{Deserialize, Serialize};

use super::Id;
use super::tree::Node;

/// The environment variable holding the repository's master key
/// ([`crate::crypto::MasterKey::export`]), from a Secret that exists only for the job.
pub const KEY_ENV: &str = "FERRY_AGENT_KEY";

/// The version both sides must share: the workspace's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The exit status of an agent refusing to run for another version of Ferry, or with
/// an unusable command line: running it again cannot help.
pub const EXIT_REFUSED: i32 = 2;

/// One line of an agent's standard output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "agent", rename_all = "kebab-case")]
pub enum AgentLine {
    /// First: who is speaking.
    Hello {
        version: String,
        /// The repository format version it writes.
        format: u32,
    },
    /// Every half second while data moves.
    Progress {
        files: u64,
        bytes: u64,
        files_total: u64,
        bytes_total: u64,
        /// Bytes sent to (backup) or read from (restore) the repository.
        stored: u64,
    },
    /// A warning for the job's log (a file that could not be read, …).
    Warning { message: String },
    /// A backup ended: the folder's tree and its root node.
    Stored {
        tree: Id,
        root: Box<Node>,
        files: u64,
        bytes: u64,
        /// Files read (new or changed since the parent).
        files_read: u64,
        bytes_new: u64,
        /// What those new bytes took in the repository.
        #[serde(default)]
        bytes_stored: u64,
    },
    /// A restore ended.
    Restored { files: u64, bytes: u64 },
    /// The agent failed; `message` says what happened and what to do.
    Failed { message: String },
}

impl AgentLine {
    /// The line's JSON, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"agent":"failed","message":"cannot encode a report: {e}"}}"#)
        })
    }

    /// A line of an agent's log, or `None` for anything else (a runtime's message, a
    /// line of another program).
    pub fn parse(line: &str) -> Option<AgentLine> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_and_other_lines_are_not_reports() {
        let l = AgentLine::Progress {
            files: 3,
            bytes: 10,
            files_total: 4,
            bytes_total: 20,
            stored: 7,
        };
        assert_eq!(AgentLine::parse(&l.to_line()), Some(l));
        assert_eq!(AgentLine::parse("runc: container started"), None);
        assert_eq!(AgentLine::parse(r#"{"agent":"unknown"}"#), None);
        assert_eq!(AgentLine::parse("{not json"), None);
    }
}
