//! The file sink: one rendered record per line, appended to a 0600 file, rotated by size or
//! age (`path` -> `path.1` -> ... -> `path.<keep>`).
//!
//! Rotation is a handful of renames, so it is written here rather than pulled in as a crate.

use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::PathBuf,
    time::Instant,
};

use super::{SendError, config::FileOptions, format::Format, record::Record};

/// Appends records to a file.
pub struct FileTransport {
    options: FileOptions,
    file: Option<Open>,
}

struct Open {
    file: File,
    size: u64,
    opened: Instant,
}

impl FileTransport {
    /// A transport for `options`; the file is opened at the first delivery.
    pub fn new(options: &FileOptions) -> FileTransport {
        FileTransport {
            options: options.clone(),
            file: None,
        }
    }

    /// Where it writes.
    pub fn describe(&self) -> String {
        self.options.path.display().to_string()
    }

    /// Appends the batch as lines, in one write, rotating first when due.
    pub async fn send(&mut self, batch: &[Record], format: Format) -> Result<(), SendError> {
        let lines = format.render_lines(batch).into_bytes();
        let path = self.options.path.clone();
        let failed =
            |error: std::io::Error| SendError::Retryable(format!("{}: {error}", path.display()));
        if self.rotation_due(lines.len() as u64) {
            self.rotate().map_err(failed)?;
        }
        let open = match &mut self.file {
            Some(open) => open,
            slot @ None => slot.insert(open(&self.options.path).map_err(failed)?),
        };
        if let Err(error) = open.file.write_all(&lines) {
            // The next attempt reopens: the file may have been removed or the disk freed.
            self.file = None;
            return Err(failed(error));
        }
        open.size += lines.len() as u64;
        Ok(())
    }

    fn rotation_due(&self, adding: u64) -> bool {
        let Some(open) = &self.file else {
            return false;
        };
        if open.size == 0 {
            return false;
        }
        self.options
            .rotate_bytes
            .is_some_and(|max| open.size + adding > max)
            || self
                .options
                .rotate_age
                .is_some_and(|max| open.opened.elapsed() >= max)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let keep = self.options.keep.max(1);
        let numbered = |n: usize| -> PathBuf {
            let mut name = self.options.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        remove_if_present(&numbered(keep))?;
        for n in (1..keep).rev() {
            rename_if_present(&numbered(n), &numbered(n + 1))?;
        }
        rename_if_present(&self.options.path, &numbered(1))
    }
}

fn open(path: &PathBuf) -> std::io::Result<Open> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let size = file.metadata()?.len();
    Ok(Open {
        file,
        size,
        opened: Instant::now(),
    })
}

fn remove_if_present(path: &PathBuf) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn rename_if_present(from: &PathBuf, to: &PathBuf) -> std::io::Result<()> {
    match fs::rename(from, to) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::sinks::record::sample_record;

    fn options(path: PathBuf, rotate_bytes: Option<u64>) -> FileOptions {
        FileOptions {
            path,
            rotate_bytes,
            rotate_age: None,
            keep: 2,
        }
    }

    #[tokio::test]
    async fn appends_lines_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/alerts.json");
        let mut sink = FileTransport::new(&options(path.clone(), None));
        sink.send(&[sample_record(1), sample_record(2)], Format::Falco)
            .await
            .unwrap();
        sink.send(&[sample_record(3)], Format::Falco).await.unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let seqs: Vec<u64> = text
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["output_fields"]["vigil.seq"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let mut sink = FileTransport::new(&options(path.clone(), Some(100)));
        for seq in 1..=4 {
            sink.send(&[sample_record(seq)], Format::Cef).await.unwrap();
        }
        // Every record is larger than 100 bytes: each write after the first rotates.
        let name = |suffix: &str| dir.path().join(format!("alerts.json{suffix}"));
        assert!(fs::read_to_string(name("")).unwrap().contains("cn1=4"));
        assert!(fs::read_to_string(name(".1")).unwrap().contains("cn1=3"));
        assert!(fs::read_to_string(name(".2")).unwrap().contains("cn1=2"));
        assert!(!name(".3").exists(), "keeps only 2 rotated files");
    }
}
