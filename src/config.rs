//! Where Ferry keeps its files, found with the `directories` crate (XDG on Linux):
//! - data: the default local repository (`repository/`);
//! - config: keys Ferry generated (`keys/`);
//! - state: the log file (`ferry.log`).
//!
//! Settings live in `<config>/config.yaml` (all optional):
//! ```yaml
//! kubeconfigs: [~/clusters, /etc/ferry/prod.yaml]   # extra kubeconfig files or folders
//! moverImage: registry.example.com/busybox:1.36      # image of the volume mover pods
//! tolerations: [dedicated=db:NoSchedule]   # taints mover and agent pods also tolerate
//! agent:                     # in-cluster agents, used when the repository is in S3
//!   dataPath: auto           # auto (agents for S3, exec for a folder), agent, exec
//!   image: registry.example.com/ferry-agent:0.1.0
//!   serviceAccount: ferry-s3 # an identity with bucket access (IRSA); else credentials go in a Secret
//!   perJob: 4                # volumes moved at once by a job
//!   perNode: 2               # ... and on one node
//!   cpu: 250m                # request, or request:limit (500m:2)
//!   memory: 256Mi:1Gi
//! theme: dark                # console theme: dark, light, high-contrast, or <config>/themes/NAME.toml
//! readOnly: false            # console: disable every action that changes a cluster
//! readOnlyContexts: [prod]   # console: read-only for contexts whose name contains one of these
//! accent:                    # console: border colour of contexts whose name contains the pattern
//!   - {pattern: prod, color: red}
//! aws:                       # linked AWS accounts: EKS clusters of these profiles and regions
//!   - profile: work          # a profile of ~/.aws/config or credentials (omit: the default chain)
//!     regions: [eu-west-1, us-east-1]
//!   - profile: ferry-sandbox
//!     regions: [us-east-1]
//!     endpoint: http://127.0.0.1:4599   # EKS and STS API endpoint override (`ferry sandbox cloud`)
//! azure:                     # linked Azure subscriptions: their AKS clusters
//!   - id: 00000000-0000-0000-0000-000000000000
//!     name: prod             # label in cluster names (aks:prod/<group>/<cluster>); the id if absent
//!     endpoint: https://management.azure.com       # ARM base URL (default)
//!     authority: https://login.microsoftonline.com # token endpoint host (default)
//! ```
//!
//! Azure credentials come from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
//! `AZURE_CLIENT_SECRET` (a service principal), else from the Azure CLI's login.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_providers::aks::{Azure, AzureSubscription};
use ferry_providers::cloud::Clouds;
use ferry_providers::eks::{Aws, AwsAccount};

/// User settings from `config.yaml`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub kubeconfigs: Vec<String>,
    #[serde(default)]
    pub mover_image: Option<String>,
    /// Archive streams per volume on the exec path.
    #[serde(default)]
    pub mover_streams: Option<usize>,
    /// How long a mover or agent pod may wait for a node and start (`10m`).
    #[serde(default)]
    pub start_timeout: Option<String>,
    /// Taints mover and agent pods also tolerate (`dedicated=db:NoSchedule`).
    #[serde(default)]
    pub tolerations: Vec<String>,
    /// In-cluster agents.
    #[serde(default)]
    pub agent: AgentSettings,
    /// The console's theme name.
    #[serde(default)]
    pub theme: Option<String>,
    /// The console changes nothing on any cluster.
    #[serde(default)]
    pub read_only: bool,
    /// The console changes nothing on contexts whose name contains one of these.
    #[serde(default)]
    pub read_only_contexts: Vec<String>,
    /// Border colours for contexts whose name contains a pattern (first match wins).
    #[serde(default)]
    pub accent: Vec<ferry_console::theme::AccentRule>,
    /// Linked AWS accounts (profiles and their regions) whose EKS clusters are listed.
    #[serde(default)]
    pub aws: Vec<AwsAccount>,
    /// Linked Azure subscriptions whose AKS clusters are listed.
    #[serde(default)]
    pub azure: Vec<AzureSubscription>,
}

/// `agent:` in `config.yaml`: how in-cluster agents run (flags override each).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSettings {
    #[serde(default)]
    pub data_path: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub service_account: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub per_job: Option<usize>,
    #[serde(default)]
    pub per_node: Option<usize>,
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

impl Settings {
    /// The clouds, with the accounts linked under `aws:` and `azure:`.
    pub fn clouds(&self) -> Clouds {
        Clouds::new(vec![
            Arc::new(Aws::new(self.aws.clone())),
            Arc::new(Azure::new(self.azure.clone())),
        ])
    }

    /// Reads the settings file; a missing file means defaults.
    pub fn load(dirs: &Dirs) -> anyhow::Result<Settings> {
        let path = dirs.config.join("config.yaml");
        let text = match read_limited(&path, SETTINGS_MAX) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!(
                    "cannot read the settings {}: it is not UTF-8 text. Fix the file or move it away",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot read the settings {}: {e}. Fix the file or move it away",
                    path.display()
                ));
            }
        };
        serde_saphyr::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the settings {}: {e}. Fix the file or move it away",
                path.display()
            )
        })
    }

    /// The extra kubeconfig paths, `~` expanded.
    pub fn kubeconfig_paths(&self) -> Vec<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        self.kubeconfigs
            .iter()
            .map(|p| match (p.strip_prefix("~/"), &home) {
                (Some(rest), Some(h)) => h.join(rest),
                _ => PathBuf::from(p),
            })
            .collect()
    }
}

/// The largest settings file read: settings are a few lines.
const SETTINGS_MAX: u64 = 1 << 20;

/// Reads a whole file of at most `limit` bytes; a larger one (or an endless one such as
/// `/dev/zero`) fails with [`std::io::ErrorKind::FileTooLarge`] after `limit + 1` bytes.
pub fn read_limited(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("it holds more than {limit} bytes"),
        ));
    }
    Ok(buf)
}

#[derive(Debug, Clone)]
pub struct Dirs {
    pub data: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
}

impl Dirs {
    /// The user's directories for Ferry, or folders under the current directory when the
    /// system has no home directory.
    pub fn discover() -> Dirs {
        match directories::ProjectDirs::from("", "", "ferry") {
            Some(p) => Dirs {
                data: p.data_dir().to_path_buf(),
                config: p.config_dir().to_path_buf(),
                state: p
                    .state_dir()
                    .unwrap_or_else(|| p.data_local_dir())
                    .to_path_buf(),
            },
            None => {
                let base = PathBuf::from(".ferry");
                Dirs {
                    data: base.join("data"),
                    config: base.join("config"),
                    state: base.join("state"),
                }
            }
        }
    }

    /// The embedded default repository used when no `--repo` or `FERRY_REPO` is given.
    pub fn default_repository(&self) -> PathBuf {
        self.data.join("repository")
    }

    /// The key file Ferry generates for the default repository.
    pub fn default_key_file(&self) -> PathBuf {
        self.config.join("keys").join("default-repository.key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A settings file far larger than settings can be is refused after a bounded read.
    #[test]
    fn an_oversized_settings_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            data: dir.path().join("data"),
            config: dir.path().to_path_buf(),
            state: dir.path().join("state"),
        };
        std::fs::write(dir.path().join("config.yaml"), vec![b'#'; 2 << 20]).unwrap();
        let err = Settings::load(&dirs).unwrap_err().to_string();
        assert!(err.contains("more than 1048576 bytes"), "{err}");
        std::fs::write(dir.path().join("config.yaml"), "theme: light\n").unwrap();
        assert_eq!(
            Settings::load(&dirs).unwrap().theme.as_deref(),
            Some("light")
        );
    }
}
