//! Where Ferry keeps its files, found with the `directories` crate (XDG on Linux):
//! - data: the default local repository (`repository/`);
//! - config: keys Ferry generated (`keys/`);
//! - state: the log file (`ferry.log`).

use std::path::PathBuf;

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
