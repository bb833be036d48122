//! RFC 5424 messages and their RFC 6587 octet-counting frames.

use std::io::Write as _;

use chrono::{DateTime, SecondsFormat};

use super::Facility;
use crate::sinks::record::Record;

/// The SD-ID of the structured-data element that carries a record's identity.
///
/// RFC 5424 (section 7.2.2) reserves SD-IDs without an `@` for IANA, so ours takes the private
/// form `name@<enterprise number>`. Vigil has no Private Enterprise Number of its own; 32473 is
/// the one IANA reserves for documentation and examples (RFC 5612), which no organisation can
/// be assigned, so the ID cannot collide with a vendor's real one. Receivers match on the whole
/// string `vigil@32473`.
pub const SD_ID: &str = "vigil@32473";

/// The longest SD-PARAM value, in bytes before escaping. Only a rule name can come near it; the
/// cap keeps the header and structured data of any message far below [`MAX_DATAGRAM`], so UDP
/// truncation only ever shortens the MSG part and never breaks the structured data.
pub const MAX_SD_VALUE: usize = 512;

/// The longest message sent in one UDP datagram, in bytes; longer messages are cut at a UTF-8
/// boundary.
///
/// 8096 is rsyslog's default `maxMessageSize` (documented as "8k", it is 8096 bytes), beyond
/// which it would cut the message itself, possibly inside a character; it is well above RFC
/// 5426's recommendation that receivers accept at least 2048 bytes. Datagrams above the
/// path MTU rely on IP fragmentation: prefer TCP or TLS for large alerts.
///
/// TCP and TLS messages are not cut, since a receiver with a larger limit gets them whole; the
/// receiver's limit must fit the largest rendered record (with rsyslog, raise
/// `global(maxMessageSize=...)`), or it splits or truncates the message.
pub const MAX_DATAGRAM: usize = 8096;

// RFC 5424 section 6: maximum lengths of the header fields.
const MAX_HOSTNAME: usize = 255;
const MAX_PROCID: usize = 128;
const MAX_MSGID: usize = 32;
/// RFC 5424's maximum APP-NAME length, which the configuration enforces.
pub(super) const MAX_APP_NAME: usize = 48;

/// The parts of the header that are the same for every message of a transport.
#[derive(Debug)]
pub(super) struct Header {
    pub(super) facility: Facility,
    /// Already validated: 1 to 48 printable US-ASCII characters.
    pub(super) app_name: String,
    pub(super) procid: String,
}

impl Header {
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [vigil@32473 ...] MSG`.
    ///
    /// MSG is `body` without a byte-order mark: RFC 5424 allows MSG-ANY, and SIEM parsers
    /// that match a body at its start (`CEF:0|`, a JSON `{`) would stumble over one.
    pub(super) fn message(&self, record: &Record, body: &str) -> String {
        let pri = u16::from(self.facility.code()) * 8 + u16::from(record.severity());
        let mut out = String::with_capacity(160 + record.rule.len() + body.len());
        out.push('<');
        out.push_str(&pri.to_string());
        out.push_str(">1 ");
        push_timestamp(&mut out, record.time_unix_ns);
        out.push(' ');
        push_header_field(&mut out, &record.hostname, MAX_HOSTNAME);
        out.push(' ');
        out.push_str(&self.app_name);
        out.push(' ');
        push_header_field(&mut out, &self.procid, MAX_PROCID);
        out.push(' ');
        push_header_field(&mut out, record.kind.name(), MAX_MSGID);
        out.push_str(" [");
        out.push_str(SD_ID);
        for (name, value) in [
            ("id", record.id.as_str()),
            ("seq", &record.seq.to_string()),
            ("rule", &record.rule),
            ("priority", &record.priority),
        ] {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            push_sd_value(&mut out, value);
            out.push('"');
        }
        out.push(']');
        if !body.is_empty() {
            out.push(' ');
            out.push_str(body);
        }
        out
    }
}

/// RFC 3339 in UTC with microseconds, RFC 5424's finest precision (TIME-SECFRAC has at most
/// six digits); chrono truncates rather than rounds, so a message never claims a later time
/// than the event. A time at or before the epoch is unknown: NILVALUE lets the receiver use
/// its reception time.
fn push_timestamp(out: &mut String, time_unix_ns: i64) {
    if time_unix_ns <= 0 {
        out.push('-');
        return;
    }
    let time = DateTime::from_timestamp_nanos(time_unix_ns);
    out.push_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true));
}

/// Header fields are printable US-ASCII without spaces (RFC 5424 PRINTUSASCII): anything else
/// becomes `_`, an empty value the NILVALUE `-`.
fn push_header_field(out: &mut String, value: &str, max: usize) {
    if value.is_empty() {
        out.push('-');
        return;
    }
    out.extend(
        value
            .chars()
            .take(max)
            .map(|c| if c.is_ascii_graphic() { c } else { '_' }),
    );
}

/// PARAM-VALUE is UTF-8 in which `"`, `\` and `]` must be escaped with a backslash.
fn push_sd_value(out: &mut String, value: &str) {
    for c in value[..floor_char_boundary(value, MAX_SD_VALUE)].chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Shortens `message` to at most `max` bytes without splitting a character; returns whether
/// anything was cut.
pub(super) fn truncate(message: &mut String, max: usize) -> bool {
    if message.len() <= max {
        return false;
    }
    message.truncate(floor_char_boundary(message, max));
    true
}

/// The largest index `<= max` that is a character boundary of `text`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    // A UTF-8 character is at most 4 bytes, so a boundary is at most 3 bytes back.
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&index| text.is_char_boundary(index))
        .unwrap_or(0)
}

/// Appends `message` with octet-counting framing (RFC 6587 section 3.4.1, RFC 5425 section
/// 4.3): `MSG-LEN SP SYSLOG-MSG`, the length in bytes. Unlike newline framing, it survives
/// line breaks inside a message.
pub(super) fn push_framed(out: &mut Vec<u8>, message: &str) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{} ", message.len());
    out.extend_from_slice(message.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::record::{RecordKind, sample_record};

    fn header(facility: Facility) -> Header {
        Header {
            facility,
            app_name: "vigil".into(),
            procid: "4321".into(),
        }
    }

    #[test]
    fn formats_a_complete_message() {
        let record = sample_record(7);
        let message = header(Facility::Auth).message(&record, "CEF:0|Vigil|body");
        assert_eq!(
            message,
            "<36>1 2023-11-14T22:13:20.123456Z node-1 vigil 4321 alert [vigil@32473 \
             id=\"0190c1f2-7e4a-7b3c-8d2e-000000000007\" seq=\"7\" \
             rule=\"Shell Launched By Network Service\" priority=\"Warning\"] CEF:0|Vigil|body"
        );
    }

    #[test]
    fn pri_is_facility_times_eight_plus_severity() {
        let mut record = sample_record(1);
        record.priority = "Critical".into();
        assert!(
            header(Facility::Kern)
                .message(&record, "x")
                .starts_with("<2>1 ")
        );
        assert!(
            header(Facility::Local7)
                .message(&record, "x")
                .starts_with("<186>1 ")
        );
        record.priority = "Debug".into();
        assert!(
            header(Facility::Local7)
                .message(&record, "x")
                .starts_with("<191>1 ")
        );
    }

    #[test]
    fn msgid_names_the_record_kind() {
        let mut record = sample_record(1);
        for (kind, name) in [
            (RecordKind::Alert, " alert ["),
            (RecordKind::Heartbeat, " heartbeat ["),
            (RecordKind::AgentStarted, " agent_started ["),
            (RecordKind::AgentHealth, " agent_health ["),
        ] {
            record.kind = kind;
            let message = header(Facility::Auth).message(&record, "x");
            assert!(message.contains(name), "{message}");
        }
    }

    #[test]
    fn timestamps_keep_microseconds_truncated() {
        let mut record = sample_record(1);
        record.time_unix_ns = 1_700_000_000_999_999_999;
        let message = header(Facility::Auth).message(&record, "x");
        assert!(
            message.starts_with("<36>1 2023-11-14T22:13:20.999999Z "),
            "{message}"
        );
        record.time_unix_ns = 0;
        let message = header(Facility::Auth).message(&record, "x");
        assert!(message.starts_with("<36>1 - node-1 "), "{message}");
    }

    #[test]
    fn header_fields_are_printable_ascii_without_spaces() {
        let mut record = sample_record(1);
        record.hostname = "my host\u{e9}\n".into();
        let message = header(Facility::Auth).message(&record, "x");
        assert!(message.contains(" my_host__ vigil "), "{message}");
        record.hostname = String::new();
        let message = header(Facility::Auth).message(&record, "x");
        assert!(message.contains("Z - vigil 4321 "), "{message}");
        record.hostname = "h".repeat(300);
        let message = header(Facility::Auth).message(&record, "x");
        assert!(message.contains(&format!(" {} vigil ", "h".repeat(255))));
    }

    #[test]
    fn escapes_sd_param_values() {
        let mut record = sample_record(1);
        record.rule = r#"Read "shadow" [x] \ done"#.into();
        let message = header(Facility::Auth).message(&record, "x");
        assert!(
            message.contains(r#" rule="Read \"shadow\" [x\] \\ done" "#),
            "{message}"
        );
    }

    #[test]
    fn caps_long_sd_values_at_a_character_boundary() {
        let mut record = sample_record(1);
        // 'é' is two bytes, so byte 512 falls inside a character after the leading 'a'.
        record.rule = format!("a{}", "é".repeat(400));
        let message = header(Facility::Auth).message(&record, "x");
        let expected = format!(" rule=\"a{}\" ", "é".repeat(255));
        assert!(message.contains(&expected), "{message}");
    }

    #[test]
    fn an_empty_body_leaves_no_trailing_space() {
        let message = header(Facility::Auth).message(&sample_record(1), "");
        assert!(message.ends_with("priority=\"Warning\"]"), "{message}");
    }

    #[test]
    fn truncates_at_a_character_boundary() {
        let mut message = "ab€d".to_string(); // '€' is bytes 2..5
        assert!(truncate(&mut message, 4));
        assert_eq!(message, "ab");
        let mut message = "ab€d".to_string();
        assert!(truncate(&mut message, 5));
        assert_eq!(message, "ab€");
        let mut message = "ab€d".to_string();
        assert!(!truncate(&mut message, 6));
        assert_eq!(message, "ab€d");
    }

    #[test]
    fn long_bodies_truncate_within_msg() {
        let mut message = header(Facility::Auth).message(&sample_record(1), &"x".repeat(20_000));
        assert!(truncate(&mut message, MAX_DATAGRAM));
        assert_eq!(message.len(), MAX_DATAGRAM);
        assert!(message.contains("priority=\"Warning\"] xxx"));
    }

    #[test]
    fn frames_count_bytes_not_characters() {
        let mut out = Vec::new();
        push_framed(&mut out, "<36>1 é");
        push_framed(&mut out, "b\nc");
        assert_eq!(out, "8 <36>1 é3 b\nc".as_bytes());
    }
}
