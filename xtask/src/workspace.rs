//! Where the workspace is, and how child commands are set up to run in it.

use std::{
    env,
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

/// The Vigil workspace and the environment child commands run with.
pub struct Workspace {
    /// The workspace root (the directory holding the top-level `Cargo.toml`).
    pub root: PathBuf,
    /// The cargo to invoke: the one running this xtask when known, so the toolchain stays the same.
    cargo: OsString,
    /// `PATH` for children, with cargo's bin directory added: `cargo install` puts bpf-linker
    /// there, and agent/build.rs looks for it on `PATH`.
    path: OsString,
}

impl Workspace {
    /// Locates the workspace from this crate's manifest directory, so tasks work from any
    /// current directory.
    pub fn locate() -> Result<Self> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .with_context(|| format!("{} has no parent directory", manifest_dir.display()))?
            .to_path_buf();
        let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let path = path_with_cargo_bin(env::var_os("PATH"), cargo_bin_dir())?;
        Ok(Self { root, cargo, path })
    }

    /// A command for `program`, run in the workspace root with the adjusted `PATH`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.root).env("PATH", &self.path);
        cmd
    }

    /// A `cargo` command, using the same cargo as the one running this task.
    pub fn cargo(&self) -> Command {
        self.command(&self.cargo)
    }

    /// The `PATH` given to child commands.
    pub fn path_env(&self) -> &OsStr {
        &self.path
    }

    /// Where cargo puts build output: `CARGO_TARGET_DIR` if set (relative to the root, where
    /// our cargo commands run), else `target/` in the root.
    pub fn target_dir(&self) -> PathBuf {
        match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => self.root.join(dir),
            _ => self.root.join("target"),
        }
    }
}

/// Cargo's bin directory: `$CARGO_HOME/bin`, else `~/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// `path` with `bin` put first when it is not on it yet: first, so the bpf-linker that bootstrap
/// installs there wins over an older one elsewhere.
fn path_with_cargo_bin(path: Option<OsString>, bin: Option<PathBuf>) -> Result<OsString> {
    let mut dirs: Vec<PathBuf> = path
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(bin) = bin
        && !dirs.contains(&bin)
    {
        dirs.insert(0, bin);
    }
    env::join_paths(dirs).context("PATH contains a directory with a ':' in its name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_bin_is_added_once() {
        let bin = PathBuf::from("/root/.cargo/bin");
        let added = path_with_cargo_bin(Some("/usr/bin:/bin".into()), Some(bin.clone()));
        assert_eq!(
            added.ok(),
            Some(OsString::from("/root/.cargo/bin:/usr/bin:/bin"))
        );
        let kept = path_with_cargo_bin(Some("/usr/bin:/root/.cargo/bin".into()), Some(bin));
        assert_eq!(kept.ok(), Some(OsString::from("/usr/bin:/root/.cargo/bin")));
    }
}
