use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// Frame size of a test payload of `len` bytes.
fn frame_len(len: usize) -> u64 {
    HEADER_LEN + len as u64
}

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.join("spool"),
        max_bytes: 1 << 20,
        // Three 8-byte records per segment.
        segment_bytes: 3 * frame_len(8),
        fsync: FsyncPolicy::Never,
        when_full: FullPolicy::DropNewest,
    }
}

fn open(config: &SpoolConfig) -> Spool {
    Spool::open(config.clone()).unwrap().0
}

/// An 8-byte payload naming `n`.
fn payload(n: u64) -> Vec<u8> {
    format!("rec{n:05}").into_bytes()
}

/// Appends records `range` with payload `payload(n)` and creation time `n * 10`.
fn append(spool: &mut Spool, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        let outcome = spool.append(&payload(n), n as i64 * 10).unwrap();
        assert!(
            matches!(outcome, AppendOutcome::Stored { .. }),
            "{n}: {outcome:?}"
        );
    }
}

fn ids(records: &[SpoolRecord]) -> Vec<u64> {
    records.iter().map(|r| r.id).collect()
}

fn read_all(spool: &mut Spool) -> Vec<SpoolRecord> {
    spool.read(usize::MAX, usize::MAX).unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

#[test]
fn appends_read_and_acks_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = open(&config(tmp.path()));
    assert_eq!(spool.pending_records(), 0);
    assert!(read_all(&mut spool).is_empty());
    append(&mut spool, 1..=10);
    assert_eq!(spool.pending_records(), 10);
    assert_eq!(spool.pending_bytes(), 10 * frame_len(8));

    let first = spool.read(4, usize::MAX).unwrap();
    assert_eq!(ids(&first), [1, 2, 3, 4]);
    assert_eq!(first[2].payload, payload(3));
    assert_eq!(first[2].created_unix_ns, 30);
    assert_eq!(ids(&read_all(&mut spool)), (5..=10).collect::<Vec<_>>());
    assert!(read_all(&mut spool).is_empty());

    spool.ack(4).unwrap();
    assert_eq!(spool.pending_records(), 6);
    assert_eq!(spool.pending_bytes(), 6 * frame_len(8));
    spool.ack(10).unwrap();
    assert_eq!((spool.pending_records(), spool.pending_bytes()), (0, 0));
    assert_eq!(spool.oldest_pending_unix_ns(), None);
    // Acknowledging again, or ids never handed out, changes nothing.
    spool.ack(3).unwrap();
    spool.ack(1000).unwrap();
    append(&mut spool, 11..=11);
    assert_eq!(ids(&read_all(&mut spool)), [11]);
    assert_eq!(spool.pending_records(), 1);
}

#[test]
fn rewind_rereads_what_was_not_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = open(&config(tmp.path()));
    append(&mut spool, 1..=8);
    assert_eq!(read_all(&mut spool).len(), 8);
    spool.ack(2).unwrap();
    spool.rewind();
    let again = read_all(&mut spool);
    assert_eq!(ids(&again), (3..=8).collect::<Vec<_>>());
    assert_eq!(again[0].payload, payload(3));
    // Acknowledging past the read position moves it too.
    spool.rewind();
    spool.ack(5).unwrap();
    assert_eq!(ids(&read_all(&mut spool)), [6, 7, 8]);
}

#[test]
fn reopen_replays_exactly_the_unacknowledged_records() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=20);
    spool.read(10, usize::MAX).unwrap();
    spool.ack(7).unwrap();
    let (records, bytes) = (spool.pending_records(), spool.pending_bytes());
    drop(spool);

    let (mut spool, report) = Spool::open(config.clone()).unwrap();
    assert_eq!(
        report,
        OpenReport {
            pending_records: 13,
            pending_bytes: 13 * frame_len(8),
            ..OpenReport::default()
        }
    );
    assert_eq!(
        (spool.pending_records(), spool.pending_bytes()),
        (records, bytes)
    );
    assert_eq!(spool.oldest_pending_unix_ns(), Some(80));
    let replayed = read_all(&mut spool);
    let expected: Vec<_> = (8..=20)
        .map(|n| SpoolRecord {
            id: n,
            created_unix_ns: n as i64 * 10,
            payload: payload(n),
        })
        .collect();
    assert_eq!(replayed, expected);
}

#[test]
fn rolls_segments_and_deletes_acknowledged_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=10);
    let names: Vec<_> = segment_files(&config.dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "segment-00000000000000000001.log",
            "segment-00000000000000000004.log",
            "segment-00000000000000000007.log",
            "segment-00000000000000000010.log",
        ]
    );
    spool.ack(5).unwrap();
    assert_eq!(segment_files(&config.dir).len(), 3, "segment 1..=3 deleted");
    spool.ack(9).unwrap();
    assert_eq!(
        segment_files(&config.dir).len(),
        1,
        "only the one being written"
    );
    spool.ack(10).unwrap();
    // Fully acknowledged but still being written: kept until the spool rolls past it.
    assert_eq!(segment_files(&config.dir).len(), 1);
    assert_eq!(spool.pending_bytes(), 0);
    append(&mut spool, 11..=12);
    spool.ack(12).unwrap();
    assert_eq!(segment_files(&config.dir).len(), 1);
    append(&mut spool, 13..=13);
    assert_eq!(
        segment_files(&config.dir),
        [config.dir.join("segment-00000000000000000013.log")],
        "rolling past the acknowledged segment deleted it"
    );
    assert_eq!(ids(&read_all(&mut spool)), [13]);
}

#[test]
fn a_record_larger_than_a_segment_gets_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=1);
    let big = vec![7u8; 500];
    assert_eq!(
        spool.append(&big, 0).unwrap(),
        AppendOutcome::Stored { id: 2, evicted: 0 }
    );
    append(&mut spool, 3..=3);
    assert_eq!(segment_files(&config.dir).len(), 3);
    let records = read_all(&mut spool);
    assert_eq!(ids(&records), [1, 2, 3]);
    assert_eq!(records[1].payload, big);
}

#[test]
fn torn_tail_is_truncated_and_the_good_prefix_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path());
    config.segment_bytes = 1 << 20;
    let mut spool = open(&config);
    append(&mut spool, 1..=5);
    drop(spool);
    let file = segment_files(&config.dir).remove(0);
    let len = fs::metadata(&file).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let (mut spool, report) = Spool::open(config.clone()).unwrap();
    assert_eq!(report.truncated_bytes, frame_len(8) - 3);
    assert!(report.corrupt_segments.is_empty());
    assert_eq!(report.pending_records, 4);
    assert_eq!(fs::metadata(&file).unwrap().len(), 4 * frame_len(8));
    assert_eq!(ids(&read_all(&mut spool)), [1, 2, 3, 4]);
    // Appends continue in the same file, after the good prefix.
    append(&mut spool, 5..=6);
    assert_eq!(ids(&read_all(&mut spool)), [5, 6]);
    assert_eq!(segment_files(&config.dir), [file]);
    drop(spool);
    let (mut spool, report) = Spool::open(config).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(ids(&read_all(&mut spool)), [1, 2, 3, 4, 5, 6]);
}

#[test]
fn every_cut_through_the_last_frame_recovers_the_prefix() {
    for cut in 1..frame_len(8) {
        let tmp = tempfile::tempdir().unwrap();
        let config = config(tmp.path());
        let mut spool = open(&config);
        append(&mut spool, 1..=3);
        drop(spool);
        let file = segment_files(&config.dir).remove(0);
        let bytes = fs::read(&file).unwrap();
        fs::write(&file, &bytes[..bytes.len() - cut as usize]).unwrap();
        let (mut spool, report) = Spool::open(config).unwrap();
        assert_eq!(report.truncated_bytes, frame_len(8) - cut, "cut {cut}");
        assert!(report.corrupt_segments.is_empty(), "cut {cut}");
        assert_eq!(ids(&read_all(&mut spool)), [1, 2], "cut {cut}");
        append(&mut spool, 3..=3);
        assert_eq!(ids(&read_all(&mut spool)), [3], "cut {cut}");
    }
}

#[test]
fn a_header_cut_short_is_a_torn_tail_too() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=2);
    drop(spool);
    let file = segment_files(&config.dir).remove(0);
    let mut bytes = fs::read(&file).unwrap();
    bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
    fs::write(&file, bytes).unwrap();
    let (mut spool, report) = Spool::open(config).unwrap();
    assert_eq!(report.truncated_bytes, 5);
    assert_eq!(ids(&read_all(&mut spool)), [1, 2]);
}

#[test]
fn a_flipped_byte_mid_segment_is_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=9);
    drop(spool);
    // Record 5 is the second frame of segment 4..=6; damage its payload.
    let damaged = config.dir.join("segment-00000000000000000004.log");
    flip_byte(&damaged, frame_len(8) + HEADER_LEN + 2);

    let (mut spool, report) = Spool::open(config.clone()).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(
        report.corrupt_segments,
        [CorruptSegment {
            path: damaged.clone(),
            offset: frame_len(8),
            skipped_bytes: 2 * frame_len(8),
            reason: "frame checksum mismatch".into(),
        }]
    );
    assert_eq!(report.pending_records, 7);
    assert_eq!(spool.pending_bytes(), 7 * frame_len(8));
    assert_eq!(spool.skipped_bytes(), 2 * frame_len(8));
    assert_eq!(ids(&read_all(&mut spool)), [1, 2, 3, 4, 7, 8, 9]);
    append(&mut spool, 10..=10);
    assert_eq!(ids(&read_all(&mut spool)), [10]);
    spool.ack(4).unwrap();
    assert!(
        !damaged.exists(),
        "deleted once its valid records are acknowledged"
    );
    assert_eq!(spool.pending_records(), 4);
}

#[test]
fn a_damaged_length_is_never_believed() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=6);
    drop(spool);
    let damaged = config.dir.join("segment-00000000000000000001.log");
    let mut bytes = fs::read(&damaged).unwrap();
    let at = frame_len(8) as usize;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&damaged, bytes).unwrap();

    let (mut spool, report) = Spool::open(config).unwrap();
    assert_eq!(report.corrupt_segments.len(), 1);
    assert!(report.corrupt_segments[0].reason.contains("length"));
    assert_eq!(ids(&read_all(&mut spool)), [1, 4, 5, 6]);
}

#[test]
fn damage_in_the_last_segment_seals_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path());
    config.segment_bytes = 1 << 20;
    let mut spool = open(&config);
    append(&mut spool, 1..=3);
    drop(spool);
    let file = segment_files(&config.dir).remove(0);
    flip_byte(&file, frame_len(8) + 9);

    let (mut spool, report) = Spool::open(config.clone()).unwrap();
    assert_eq!(report.truncated_bytes, 0, "damage is kept, not truncated");
    assert_eq!(report.corrupt_segments.len(), 1);
    assert_eq!(fs::metadata(&file).unwrap().len(), 3 * frame_len(8));
    let outcome = spool.append(b"after", 1).unwrap();
    let AppendOutcome::Stored { id, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        segment_files(&config.dir).len(),
        2,
        "appends go to a new segment"
    );
    let records = read_all(&mut spool);
    assert_eq!(ids(&records), [1, id]);
    drop(spool);
    let mut spool = open(&config);
    assert_eq!(ids(&read_all(&mut spool)), [1, id]);
}

#[test]
fn damage_found_while_reading_is_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=9);
    let damaged = config.dir.join("segment-00000000000000000004.log");
    flip_byte(&damaged, HEADER_LEN + 1);
    assert_eq!(ids(&read_all(&mut spool)), [1, 2, 3, 7, 8, 9]);
    assert_eq!(spool.skipped_bytes(), 3 * frame_len(8));
    assert_eq!(spool.pending_records(), 6);
    assert_eq!(spool.pending_bytes(), 6 * frame_len(8));
    spool.ack(3).unwrap();
    assert!(!damaged.exists());
    assert_eq!(spool.oldest_pending_unix_ns(), Some(70));
}

#[test]
fn damage_found_while_acknowledging_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=6);
    // Record 2's header claims more bytes than the segment holds.
    let damaged = config.dir.join("segment-00000000000000000001.log");
    let mut bytes = fs::read(&damaged).unwrap();
    let at = frame_len(8) as usize;
    bytes[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
    fs::write(&damaged, bytes).unwrap();
    spool.ack(1).unwrap();
    assert_eq!(spool.pending_records(), 3);
    assert_eq!(ids(&read_all(&mut spool)), [4, 5, 6]);
}

#[test]
fn drop_newest_rejects_at_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path());
    config.max_bytes = 10 * frame_len(8);
    let mut spool = open(&config);
    append(&mut spool, 1..=10);
    assert_eq!(
        spool.append(&payload(11), 0).unwrap(),
        AppendOutcome::Rejected
    );
    assert_eq!(spool.pending_records(), 10);
    assert_eq!(spool.pending_bytes(), config.max_bytes);
    spool.ack(3).unwrap();
    for n in 11..=13 {
        assert_eq!(
            spool.append(&payload(n), 0).unwrap(),
            AppendOutcome::Stored { id: n, evicted: 0 }
        );
    }
    assert_eq!(
        spool.append(&payload(14), 0).unwrap(),
        AppendOutcome::Rejected
    );
    assert_eq!(ids(&read_all(&mut spool)), (4..=13).collect::<Vec<_>>());
}

#[test]
fn drop_oldest_evicts_exactly_enough() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path());
    config.max_bytes = 10 * frame_len(8);
    config.when_full = FullPolicy::DropOldest;
    let mut spool = open(&config);
    append(&mut spool, 1..=10);
    assert_eq!(spool.read(2, usize::MAX).map(|r| ids(&r)).unwrap(), [1, 2]);
    assert_eq!(
        spool.append(&payload(11), 110).unwrap(),
        AppendOutcome::Stored { id: 11, evicted: 1 }
    );
    // A record three frames long evicts three.
    let big = vec![b'x'; 8 + 2 * frame_len(8) as usize];
    assert_eq!(
        spool.append(&big, 120).unwrap(),
        AppendOutcome::Stored { id: 12, evicted: 3 }
    );
    assert_eq!(spool.pending_records(), 8);
    assert_eq!(spool.pending_bytes(), config.max_bytes);
    assert_eq!(spool.oldest_pending_unix_ns(), Some(50));
    // Reading resumes after what was read, or at the new head if that was evicted.
    assert_eq!(ids(&read_all(&mut spool)), [5, 6, 7, 8, 9, 10, 11, 12]);
    // Evicted records do not come back after a restart, and the cap still holds.
    drop(spool);
    let (mut spool, report) = Spool::open(config.clone()).unwrap();
    assert_eq!(report.pending_records, 8);
    assert_eq!(report.pending_bytes, config.max_bytes);
    assert_eq!(ids(&read_all(&mut spool)), [5, 6, 7, 8, 9, 10, 11, 12]);
    // Evicting everything.
    let huge = vec![b'y'; (config.max_bytes - HEADER_LEN) as usize];
    assert_eq!(
        spool.append(&huge, 0).unwrap(),
        AppendOutcome::Stored { id: 13, evicted: 8 }
    );
    assert_eq!(ids(&read_all(&mut spool)), [13]);
}

#[test]
fn oversize_records_are_rejected_under_both_policies() {
    for when_full in [FullPolicy::DropNewest, FullPolicy::DropOldest] {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = config(tmp.path());
        config.max_bytes = 100;
        config.when_full = when_full;
        let mut spool = open(&config);
        append(&mut spool, 1..=1);
        let fits = vec![0u8; 100 - HEADER_LEN as usize];
        let too_big = vec![0u8; 101 - HEADER_LEN as usize];
        assert_eq!(spool.append(&too_big, 0).unwrap(), AppendOutcome::Rejected);
        assert_eq!(spool.pending_records(), 1, "{when_full:?}");
        let expected = match when_full {
            FullPolicy::DropNewest => AppendOutcome::Rejected,
            FullPolicy::DropOldest => AppendOutcome::Stored { id: 2, evicted: 1 },
        };
        assert_eq!(spool.append(&fits, 0).unwrap(), expected);
    }
}

#[test]
fn oldest_pending_follows_the_head() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    assert_eq!(spool.oldest_pending_unix_ns(), None);
    append(&mut spool, 1..=5);
    assert_eq!(spool.oldest_pending_unix_ns(), Some(10));
    spool.ack(1).unwrap();
    assert_eq!(spool.oldest_pending_unix_ns(), Some(20));
    spool.ack(4).unwrap();
    assert_eq!(spool.oldest_pending_unix_ns(), Some(50));
    drop(spool);
    let mut spool = open(&config);
    assert_eq!(spool.oldest_pending_unix_ns(), Some(50));
    spool.ack(5).unwrap();
    assert_eq!(spool.oldest_pending_unix_ns(), None);
    spool.append(b"x", -3).unwrap();
    assert_eq!(spool.oldest_pending_unix_ns(), Some(-3));
}

#[test]
fn ids_continue_after_restart_even_without_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=5);
    spool.ack(5).unwrap();
    drop(spool);
    let mut spool = open(&config);
    assert_eq!(
        spool.append(b"a", 0).unwrap(),
        AppendOutcome::Stored { id: 6, evicted: 0 }
    );
    spool.ack(6).unwrap();
    drop(spool);
    // Segments lost or removed by hand: the ledger alone carries the ids on.
    for file in segment_files(&config.dir) {
        fs::remove_file(file).unwrap();
    }
    let (mut spool, report) = Spool::open(config).unwrap();
    assert_eq!(report.pending_records, 0);
    assert_eq!(
        spool.append(b"b", 0).unwrap(),
        AppendOutcome::Stored { id: 7, evicted: 0 }
    );
}

#[test]
fn an_unreadable_ledger_redelivers_rather_than_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=6);
    spool.ack(4).unwrap();
    drop(spool);
    fs::write(config.dir.join("ledger"), b"").unwrap();
    let (mut spool, report) = Spool::open(config.clone()).unwrap();
    assert!(report.ledger_reset);
    // Segment 1..=3 was deleted; everything left is delivered again.
    assert_eq!(ids(&read_all(&mut spool)), [4, 5, 6]);
    drop(spool);
    let (_, report) = Spool::open(config).unwrap();
    assert!(!report.ledger_reset, "rewritten at open");
}

#[test]
fn files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let mut spool = open(&config);
    append(&mut spool, 1..=4);
    spool.ack(1).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&config.dir), 0o700);
    assert_eq!(mode(&config.dir.join("ledger")), 0o600);
    for file in segment_files(&config.dir) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn one_user_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let spool = open(&config);
    assert!(matches!(
        Spool::open(config.clone()),
        Err(SpoolError::Locked { .. })
    ));
    drop(spool);
    open(&config);
}

#[test]
fn invalid_configs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut zero_segment = config(tmp.path());
    zero_segment.segment_bytes = 0;
    let mut tiny = config(tmp.path());
    tiny.max_bytes = HEADER_LEN;
    for bad in [zero_segment, tiny] {
        let error = Spool::open(bad).unwrap_err();
        assert!(matches!(error, SpoolError::InvalidConfig { .. }));
        assert!(error.to_string().contains("spool"), "{error}");
    }
}

#[test]
fn reads_respect_max_bytes_but_always_return_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = open(&config(tmp.path()));
    spool.append(&[0; 100], 0).unwrap();
    spool.append(&[1; 10], 0).unwrap();
    spool.append(&[2; 10], 0).unwrap();
    assert_eq!(ids(&spool.read(10, 50).unwrap()), [1]);
    assert_eq!(ids(&spool.read(10, 20).unwrap()), [2, 3]);
    spool.rewind();
    assert_eq!(ids(&spool.read(10, 110).unwrap()), [1, 2]);
    assert_eq!(ids(&spool.read(0, 110).unwrap()), Vec::<u64>::new());
    assert_eq!(ids(&spool.read(1, 0).unwrap()), [3]);
}

#[test]
fn every_fsync_policy_round_trips() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::ZERO),
        FsyncPolicy::Interval(Duration::from_secs(3600)),
        FsyncPolicy::Never,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = config(tmp.path());
        config.fsync = fsync;
        let mut spool = open(&config);
        append(&mut spool, 1..=7);
        spool.sync_if_due().unwrap();
        spool.ack(2).unwrap();
        spool.sync_if_due().unwrap();
        spool.sync().unwrap();
        drop(spool);
        let mut spool = open(&config);
        assert_eq!(ids(&read_all(&mut spool)), [3, 4, 5, 6, 7], "{fsync:?}");
    }
}

/// xorshift64*: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The spool's contract as a plain in-memory queue.
#[derive(Default)]
struct Model {
    records: VecDeque<SpoolRecord>,
    /// Records handed out by `read` and not acknowledged.
    read: usize,
    next_id: u64,
}

impl Model {
    fn bytes(&self) -> u64 {
        self.records
            .iter()
            .map(|r| frame_len(r.payload.len()))
            .sum()
    }

    fn append(&mut self, config: &SpoolConfig, payload: Vec<u8>, created: i64) -> AppendOutcome {
        let frame = frame_len(payload.len());
        if frame > config.max_bytes {
            return AppendOutcome::Rejected;
        }
        let mut evicted = 0;
        while self.bytes() + frame > config.max_bytes {
            if config.when_full == FullPolicy::DropNewest {
                return AppendOutcome::Rejected;
            }
            self.records.pop_front();
            self.read = self.read.saturating_sub(1);
            evicted += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.records.push_back(SpoolRecord {
            id,
            created_unix_ns: created,
            payload,
        });
        AppendOutcome::Stored { id, evicted }
    }

    fn read(&mut self, max_records: usize, max_bytes: usize) -> Vec<SpoolRecord> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max_records
            && let Some(record) = self.records.get(self.read)
        {
            if !out.is_empty() && bytes + record.payload.len() > max_bytes {
                break;
            }
            bytes += record.payload.len();
            out.push(record.clone());
            self.read += 1;
        }
        out
    }

    fn ack(&mut self, through: u64) {
        while self.records.front().is_some_and(|r| r.id <= through) {
            self.records.pop_front();
            self.read = self.read.saturating_sub(1);
        }
    }
}

fn run_model(seed: u64, when_full: FullPolicy, steps: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        dir: tmp.path().join("spool"),
        max_bytes: 1500,
        segment_bytes: 256,
        fsync: FsyncPolicy::Never,
        when_full,
    };
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut spool = open(&config);
    let mut model = Model {
        next_id: 1,
        ..Model::default()
    };
    let max_frame = 1500;
    for step in 0..steps {
        let context = format!("seed {seed} step {step}");
        match rng.below(100) {
            0..45 => {
                // Mostly small, sometimes larger than a segment or than the whole spool.
                let len = match rng.below(20) {
                    0 => 200 + rng.below(1400),
                    _ => rng.below(60),
                } as usize;
                let payload: Vec<u8> = (0..len).map(|i| (i as u64 ^ step as u64) as u8).collect();
                let created = rng.next() as i64;
                let expected = model.append(&config, payload.clone(), created);
                assert_eq!(
                    spool.append(&payload, created).unwrap(),
                    expected,
                    "{context}"
                );
            }
            45..70 => {
                let max_records = 1 + rng.below(8) as usize;
                let max_bytes = rng.below(200) as usize;
                let expected = model.read(max_records, max_bytes);
                assert_eq!(
                    spool.read(max_records, max_bytes).unwrap(),
                    expected,
                    "{context}"
                );
            }
            70..85 => {
                let through = if model.read > 0 && rng.below(4) != 0 {
                    model.records[rng.below(model.read as u64) as usize].id
                } else {
                    rng.below(model.next_id + 5)
                };
                model.ack(through);
                spool.ack(through).unwrap();
            }
            85..92 => {
                model.read = 0;
                spool.rewind();
            }
            _ => {
                drop(spool);
                let report;
                (spool, report) = Spool::open(config.clone()).unwrap();
                assert_eq!(report.truncated_bytes, 0, "{context}");
                assert!(report.corrupt_segments.is_empty(), "{context}");
                assert_eq!(
                    report.pending_records,
                    model.records.len() as u64,
                    "{context}"
                );
                model.read = 0;
            }
        }
        assert_eq!(
            spool.pending_records(),
            model.records.len() as u64,
            "{context}"
        );
        assert_eq!(spool.pending_bytes(), model.bytes(), "{context}");
        assert_eq!(
            spool.oldest_pending_unix_ns(),
            model.records.front().map(|r| r.created_unix_ns),
            "{context}"
        );
        let on_disk: u64 = segment_files(&config.dir)
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum();
        assert!(
            on_disk <= config.max_bytes + config.segment_bytes + max_frame,
            "{context}: {on_disk} bytes on disk"
        );
    }
    // Finally everything still pending comes back, in order, after a restart.
    drop(spool);
    let mut spool = open(&config);
    model.read = 0;
    assert_eq!(read_all(&mut spool), model.read(usize::MAX, usize::MAX));
}

#[test]
fn randomized_against_a_model_drop_newest() {
    for seed in 1..=4 {
        run_model(seed, FullPolicy::DropNewest, 1500);
    }
}

#[test]
fn randomized_against_a_model_drop_oldest() {
    for seed in 11..=14 {
        run_model(seed, FullPolicy::DropOldest, 1500);
    }
}
