//! The frame of one record on disk: a fixed header, then the payload.
//!
//! ```text
//! offset  size  field
//!      0     4  payload length, u32 LE
//!      4     4  CRC-32C of bytes 8.. of the frame (id, created, payload), u32 LE
//!      8     8  id, u64 LE
//!     16     8  created, nanoseconds since the Unix epoch, i64 LE
//!     24   len  payload
//! ```
//!
//! The length is outside the checksum, but a damaged length makes the checksum cover the wrong
//! bytes, so the frame fails all the same. Lengths are bounds-checked against the bytes left in
//! the segment before anything is allocated or read.

use std::fmt;
use std::io::{self, Read};

/// Bytes before the payload.
pub(super) const HEADER_LEN: u64 = 24;

/// Largest payload accepted or read back. Alerts are a few KiB; the cap only keeps a damaged
/// length from being believed.
pub(super) const MAX_PAYLOAD_LEN: u64 = 64 << 20;

/// A decoded, length-checked header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    /// Payload length.
    pub len: u32,
    /// Checksum stored in the frame.
    pub crc: u32,
    /// Record id.
    pub id: u64,
    /// Record creation time.
    pub created_unix_ns: i64,
}

impl Header {
    /// Bytes the whole frame takes on disk.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN + u64::from(self.len)
    }

    /// Decodes a header and checks that its frame fits in the `remaining` bytes of the segment
    /// and that its id follows `previous_id`.
    ///
    /// The id check happens here, before the checksum is verified, so that a walk over headers
    /// alone (acknowledging or evicting) rejects the same frames a full read would.
    pub fn parse(
        bytes: &[u8; HEADER_LEN as usize],
        remaining: u64,
        previous_id: u64,
    ) -> Result<Header, Damage> {
        let header = Header {
            len: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            crc: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            id: u64::from_le_bytes(field(bytes, 8)),
            created_unix_ns: i64::from_le_bytes(field(bytes, 16)),
        };
        if u64::from(header.len) > MAX_PAYLOAD_LEN {
            return Err(Damage::BadLength(header.len));
        }
        if header.frame_len() > remaining {
            return Err(Damage::Truncated);
        }
        if header.id <= previous_id {
            return Err(Damage::IdOutOfOrder {
                id: header.id,
                previous: previous_id,
            });
        }
        Ok(header)
    }
}

fn field(bytes: &[u8; HEADER_LEN as usize], at: usize) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&bytes[at..at + 8]);
    out
}

/// Why the bytes at some offset of a segment are not a valid frame. Nothing after them in the
/// segment can be trusted: without a valid length there is no next frame to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Damage {
    /// The segment ends inside the frame: the write was cut short (a crash) or the file was
    /// truncated.
    Truncated,
    /// The length is beyond any record this spool writes.
    BadLength(u32),
    /// The checksum does not match the contents.
    BadChecksum,
    /// A valid-looking frame whose id does not increase: stale or foreign data.
    IdOutOfOrder {
        /// The frame's id.
        id: u64,
        /// The id of the frame before it.
        previous: u64,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncated => f.write_str("frame cut short by the end of the segment"),
            Damage::BadLength(len) => write!(f, "frame length {len} is out of range"),
            Damage::BadChecksum => f.write_str("frame checksum mismatch"),
            Damage::IdOutOfOrder { id, previous } => {
                write!(f, "frame id {id} does not follow id {previous}")
            }
        }
    }
}

/// Reading a frame failed: either the file could not be read, or its bytes are not a frame.
#[derive(Debug)]
pub(super) enum FrameError {
    /// The read itself failed.
    Io(io::Error),
    /// The bytes are not a valid frame.
    Damaged(Damage),
}

impl From<Damage> for FrameError {
    fn from(damage: Damage) -> Self {
        FrameError::Damaged(damage)
    }
}

impl From<io::Error> for FrameError {
    fn from(error: io::Error) -> Self {
        // The file being shorter than the index says is damage, not an I/O failure: retrying
        // cannot help.
        if error.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Damaged(Damage::Truncated)
        } else {
            FrameError::Io(error)
        }
    }
}

/// The checksum stored in a frame.
pub(super) fn checksum(id: u64, created_unix_ns: i64, payload: &[u8]) -> u32 {
    let mut prefix = [0u8; 16];
    prefix[..8].copy_from_slice(&id.to_le_bytes());
    prefix[8..].copy_from_slice(&created_unix_ns.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&prefix), payload)
}

/// Encodes a frame into `buf` (cleared first), so a single `write` puts it on disk. The caller
/// has checked `payload.len() <= MAX_PAYLOAD_LEN`.
pub(super) fn encode(buf: &mut Vec<u8>, id: u64, created_unix_ns: i64, payload: &[u8]) {
    debug_assert!(payload.len() as u64 <= MAX_PAYLOAD_LEN);
    buf.clear();
    buf.reserve(HEADER_LEN as usize + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&checksum(id, created_unix_ns, payload).to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&created_unix_ns.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Reads the next header from `reader`, positioned at a frame boundary with `remaining` bytes of
/// the segment left. `Ok(None)` at the end of the segment.
pub(super) fn read_header(
    reader: &mut impl Read,
    remaining: u64,
    previous_id: u64,
) -> Result<Option<Header>, FrameError> {
    if remaining == 0 {
        return Ok(None);
    }
    if remaining < HEADER_LEN {
        return Err(Damage::Truncated.into());
    }
    let mut bytes = [0u8; HEADER_LEN as usize];
    reader.read_exact(&mut bytes)?;
    Ok(Some(Header::parse(&bytes, remaining, previous_id)?))
}

/// Reads the payload of `header` into `payload` (replacing its contents) and verifies the
/// checksum.
pub(super) fn read_payload(
    reader: &mut impl Read,
    header: &Header,
    payload: &mut Vec<u8>,
) -> Result<(), FrameError> {
    payload.clear();
    payload.resize(header.len as usize, 0);
    reader.read_exact(payload)?;
    if checksum(header.id, header.created_unix_ns, payload) != header.crc {
        return Err(Damage::BadChecksum.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf, id, -7, payload);
        buf
    }

    fn read_one(bytes: &[u8], previous_id: u64) -> Result<Option<(Header, Vec<u8>)>, Damage> {
        let mut reader = bytes;
        let mut payload = Vec::new();
        let result = read_header(&mut reader, bytes.len() as u64, previous_id).and_then(|h| {
            h.map(|h| read_payload(&mut reader, &h, &mut payload).map(|()| h))
                .transpose()
        });
        match result {
            Ok(header) => Ok(header.map(|h| (h, payload))),
            Err(FrameError::Damaged(damage)) => Err(damage),
            Err(FrameError::Io(error)) => panic!("unexpected I/O error: {error}"),
        }
    }

    #[test]
    fn round_trips() {
        let bytes = frame(5, b"hello");
        assert_eq!(bytes.len() as u64, HEADER_LEN + 5);
        let (header, payload) = read_one(&bytes, 4).unwrap().unwrap();
        assert_eq!((header.id, header.created_unix_ns, header.len), (5, -7, 5));
        assert_eq!(payload, b"hello");
        assert_eq!(read_one(&[], 0), Ok(None));
    }

    #[test]
    fn empty_payload_is_a_frame() {
        let (header, payload) = read_one(&frame(1, b""), 0).unwrap().unwrap();
        assert_eq!((header.id, payload.len()), (1, 0));
    }

    #[test]
    fn detects_every_kind_of_damage() {
        let good = frame(9, b"payload");
        for cut in 1..good.len() {
            assert_eq!(
                read_one(&good[..cut], 0),
                Err(Damage::Truncated),
                "cut at {cut}"
            );
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert!(read_one(&bad, 0).is_err(), "flip at {at} went unnoticed");
        }
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_one(&huge, 0), Err(Damage::BadLength(u32::MAX)));
        assert_eq!(
            read_one(&good, 9),
            Err(Damage::IdOutOfOrder { id: 9, previous: 9 })
        );
        // A zero-filled tail (what some filesystems leave after a crash) is not a frame.
        assert!(read_one(&[0; 64], 0).is_err());
    }
}
