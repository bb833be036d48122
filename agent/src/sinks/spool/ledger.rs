//! The ledger: the highest acknowledged id and the spool's format version, replaced atomically.
//!
//! ```text
//! offset  size  field
//!      0     8  magic b"VIGILSPL"
//!      8     4  format version, u32 LE (covers the segment frame layout too)
//!     12     8  highest acknowledged id, u64 LE
//!     20     4  CRC-32C of bytes 0..20, u32 LE
//! ```
//!
//! The file is written beside its final name and renamed over it, so a reader sees the old or the
//! new ledger, never a mix. When the rename is not fsynced (`FsyncPolicy::Interval` or `Never`) a
//! power loss can still leave an empty or stale file; the checksum catches the former, and both
//! only cause records to be delivered again, never lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::SpoolError;

/// The ledger's file name in the spool directory.
pub(super) const FILE_NAME: &str = "ledger";
const TMP_NAME: &str = "ledger.tmp";
const MAGIC: &[u8; 8] = b"VIGILSPL";
const LEN: usize = 24;

/// The format version this build reads and writes.
pub(super) const VERSION: u32 = 1;

/// What was found on disk.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Loaded {
    /// No ledger: a new spool, or one never acknowledged.
    Missing,
    /// The highest acknowledged id.
    Acked(u64),
    /// The file exists but is not a ledger (torn by a power loss, or damaged).
    Invalid(&'static str),
}

/// Reads the ledger in `dir`.
pub(super) fn load(dir: &Path) -> Result<Loaded, SpoolError> {
    let path = dir.join(FILE_NAME);
    let mut bytes = Vec::with_capacity(LEN);
    match File::open(&path) {
        Ok(file) => {
            // A ledger is tiny; reading a little more than one shows an oversized file as such
            // without reading all of it.
            file.take(LEN as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(SpoolError::io(&path))?;
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(error) => return Err(SpoolError::io(&path)(error)),
    }
    decode(&bytes).map_err(|found| SpoolError::UnsupportedVersion {
        path,
        found,
        supported: VERSION,
    })
}

/// Decodes a ledger; `Err` carries an unsupported version.
fn decode(bytes: &[u8]) -> Result<Loaded, u32> {
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Ok(Loaded::Invalid("not a spool ledger"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    // A checksum failure on a ledger of another version says nothing; check the version first
    // so a downgrade is refused instead of treated as damage.
    if version != VERSION {
        return Err(version);
    }
    if bytes.len() != LEN {
        return Ok(Loaded::Invalid("wrong ledger length"));
    }
    let crc = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if crc32c::crc32c(&bytes[..20]) != crc {
        return Ok(Loaded::Invalid("ledger checksum mismatch"));
    }
    let mut acked = [0u8; 8];
    acked.copy_from_slice(&bytes[12..20]);
    Ok(Loaded::Acked(u64::from_le_bytes(acked)))
}

fn encode(acked: u64) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&acked.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..20]);
    bytes[20..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Replaces the ledger in `dir`. With `durable`, the new contents and the rename are fsynced
/// (`dir_handle` is the open directory) before this returns.
pub(super) fn store(
    dir: &Path,
    dir_handle: &File,
    acked: u64,
    durable: bool,
) -> Result<(), SpoolError> {
    let tmp = dir.join(TMP_NAME);
    let path = dir.join(FILE_NAME);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(SpoolError::io(&tmp))?;
    file.write_all(&encode(acked))
        .map_err(SpoolError::io(&tmp))?;
    if durable {
        file.sync_all().map_err(SpoolError::io(&tmp))?;
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(SpoolError::io(&path))?;
    if durable {
        dir_handle.sync_all().map_err(SpoolError::io(dir))?;
    }
    Ok(())
}

/// Fsyncs the ledger's contents (after non-durable stores); the caller fsyncs the directory.
pub(super) fn sync(dir: &Path) -> Result<(), SpoolError> {
    let path = dir.join(FILE_NAME);
    match File::open(&path) {
        Ok(file) => file.sync_all().map_err(SpoolError::io(&path)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(SpoolError::io(&path)(error)),
    }
}

/// Removes a temporary ledger left by a crash between writing and renaming it.
pub(super) fn remove_stale_tmp(dir: &Path) -> Result<(), SpoolError> {
    let tmp = dir.join(TMP_NAME);
    match fs::remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(SpoolError::io(&tmp)(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let handle = File::open(dir.path()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Loaded::Missing);
        store(dir.path(), &handle, 42, true).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Loaded::Acked(42));
        store(dir.path(), &handle, u64::MAX, false).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Loaded::Acked(u64::MAX));
        assert!(!dir.path().join(TMP_NAME).exists());
    }

    #[test]
    fn damage_is_invalid_and_newer_versions_are_refused() {
        let good = encode(7);
        for at in 12..LEN {
            let mut bad = good;
            bad[at] ^= 0x10;
            assert!(
                matches!(decode(&bad), Ok(Loaded::Invalid(_))),
                "flip at {at}"
            );
        }
        assert!(matches!(decode(&good[..20]), Ok(Loaded::Invalid(_))));
        assert!(matches!(decode(b""), Ok(Loaded::Invalid(_))));
        let mut newer = good;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(decode(&newer), Err(2));

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), newer).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(SpoolError::UnsupportedVersion { found: 2, .. })
        ));
    }
}
