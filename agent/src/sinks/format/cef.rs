//! ArcSight Common Event Format:
//! `CEF:0|Vigil|Vigil|<version>|<signature id>|<name>|<severity>|<extensions>`.
//!
//! Extensions use the standard CEF keys where one fits and labelled custom fields otherwise,
//! always in the same order, so receivers' parsers and humans can rely on the layout.

use super::{
    VERSION, base_name, container_id, epoch_ms, file_path, id_text, image_reference, ip, number,
    rule_uid, succeeded, text,
};
use crate::sinks::record::Record;

/// CEF severity (0-10) for each syslog severity (Falco priority), most severe first.
const SEVERITIES: [u8; 8] = [10, 9, 8, 7, 6, 4, 3, 1];

/// The record as one CEF line.
pub(super) fn render(record: &Record) -> String {
    let severity = SEVERITIES
        .get(usize::from(record.severity()))
        .copied()
        .unwrap_or(5);
    let mut line = format!(
        "CEF:0|Vigil|Vigil|{}|{}|{}|{severity}|",
        header(VERSION),
        header(&rule_uid(&record.rule)),
        header(&record.rule),
    );
    extensions(&mut Extensions::new(&mut line), record);
    line
}

/// Writes the extensions, in their fixed order.
fn extensions(ext: &mut Extensions, record: &Record) {
    ext.put("rt", Some(epoch_ms(record)));
    ext.put("dvchost", Some(&record.hostname));
    ext.put("deviceFacility", Some(&record.source));
    ext.put("externalId", Some(&record.id));
    ext.labelled("cn1", "sequence", Some(record.seq));
    ext.put("msg", Some(&record.output));
    ext.put(
        "cat",
        (!record.tags.is_empty()).then(|| record.tags.join(",")),
    );
    ext.put("act", text(record, "evt.type"));
    ext.put(
        "outcome",
        succeeded(record).map(|ok| if ok { "success" } else { "failure" }),
    );

    // The acting process and user are the event's source.
    ext.put("sproc", text(record, "proc.name"));
    ext.put("spid", number(record, "proc.pid"));
    ext.put("suser", text(record, "user.name"));
    ext.put("suid", id_text(record, "user.uid"));
    ext.labelled("cn2", "parentPid", number(record, "proc.ppid"));
    ext.labelled("flexString1", "parentProcess", text(record, "proc.pname"));

    if let Some(path) = file_path(record) {
        ext.put("fname", Some(base_name(path)));
        ext.put("filePath", Some(path));
    }

    // `src` and `dst` hold IPv4 only; CEF's dictionary reserves c6a2 and c6a3 for IPv6.
    let client = ip(record, "fd.cip");
    let server = ip(record, "fd.sip");
    ext.put(
        "src",
        client.filter(|(_, ip)| ip.is_ipv4()).map(|(text, _)| text),
    );
    ext.put("spt", number(record, "fd.cport"));
    ext.put(
        "dst",
        server.filter(|(_, ip)| ip.is_ipv4()).map(|(text, _)| text),
    );
    ext.put("dpt", number(record, "fd.sport"));
    ext.put("dhost", text(record, "fd.sip.name"));
    ext.put(
        "proto",
        text(record, "fd.l4proto").map(str::to_ascii_uppercase),
    );
    ext.labelled(
        "c6a2",
        "Source IPv6 Address",
        client.filter(|(_, ip)| ip.is_ipv6()).map(|(text, _)| text),
    );
    ext.labelled(
        "c6a3",
        "Destination IPv6 Address",
        server.filter(|(_, ip)| ip.is_ipv6()).map(|(text, _)| text),
    );

    let container = container_id(record);
    ext.labelled("cs1", "containerId", container);
    ext.labelled(
        "cs2",
        "containerImage",
        container.and_then(|_| image_reference(record)),
    );
    ext.labelled(
        "flexString2",
        "containerName",
        container.and_then(|_| text(record, "container.name")),
    );
    ext.labelled("cs3", "k8sNamespace", text(record, "k8s.ns.name"));
    ext.labelled("cs4", "k8sPod", text(record, "k8s.pod.name"));
    ext.labelled("cs5", "commandLine", text(record, "proc.cmdline"));
    ext.labelled("cs6", "parentCommandLine", text(record, "proc.pcmdline"));
}

/// The extension section of a line under construction.
struct Extensions<'a> {
    line: &'a mut String,
    empty: bool,
}

impl<'a> Extensions<'a> {
    fn new(line: &'a mut String) -> Extensions<'a> {
        Extensions { line, empty: true }
    }

    /// Appends `key=value` when the value is present. Keys are fixed CEF names that never need
    /// escaping.
    fn put(&mut self, key: &str, value: Option<impl ToString>) {
        let Some(value) = value else { return };
        if !self.empty {
            self.line.push(' ');
        }
        self.empty = false;
        self.line.push_str(key);
        self.line.push('=');
        escape_value(self.line, &value.to_string());
    }

    /// Appends a custom field and, right after it, its label (`<key>Label=<label>`).
    fn labelled(&mut self, key: &str, label: &str, value: Option<impl ToString>) {
        if value.is_some() {
            self.put(key, value);
            self.put(&format!("{key}Label"), Some(label));
        }
    }
}

/// A header field: backslash and pipe escaped. The header has no escape for line breaks, so
/// they become spaces to keep the record on one line.
fn header(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An extension value: backslash and equals sign escaped, line breaks as `\r` and `\n`.
fn escape_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::format::tests::{file_record, heartbeat};
    use crate::sinks::record::sample_record;

    /// Splits a line into its seven header fields and the extension text, honouring `\|`.
    fn split(line: &str) -> (Vec<String>, String) {
        let mut fields = Vec::new();
        let mut current = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    current.push(c);
                    current.extend(chars.next());
                }
                '|' if fields.len() < 7 => fields.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        (fields, current)
    }

    /// Parses extensions the way CEF receivers do: a key is a word followed by an unescaped
    /// `=`, and a value runs until the space before the next key.
    fn parse_extensions(text: &str) -> Vec<(String, String)> {
        let chars: Vec<char> = text.chars().collect();
        let mut starts = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' {
                i += 2;
                continue;
            }
            if chars[i] == '=' {
                let mut k = i;
                while k > 0 && chars[k - 1].is_ascii_alphanumeric() {
                    k -= 1;
                }
                starts.push((k, i));
            }
            i += 1;
        }
        let mut out = Vec::new();
        for (n, &(key_start, eq)) in starts.iter().enumerate() {
            let end = starts.get(n + 1).map_or(chars.len(), |&(next, _)| next - 1);
            let key: String = chars[key_start..eq].iter().collect();
            let raw: String = chars[eq + 1..end].iter().collect();
            out.push((key, unescape(&raw)));
        }
        out
    }

    fn unescape(raw: &str) -> String {
        let mut out = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => {}
            }
        }
        out
    }

    fn get<'a>(ext: &'a [(String, String)], key: &str) -> Option<&'a str> {
        ext.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn renders_the_sample_alert() {
        let record = sample_record(7);
        let line = render(&record);
        let (header, extensions) = split(&line);
        let sig = rule_uid("Shell Launched By Network Service");
        assert_eq!(
            header,
            [
                "CEF:0",
                "Vigil",
                "Vigil",
                VERSION,
                sig.as_str(),
                "Shell Launched By Network Service",
                "6"
            ]
        );
        let ext = parse_extensions(&extensions);
        let keys: Vec<&str> = ext.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "rt",
                "dvchost",
                "deviceFacility",
                "externalId",
                "cn1",
                "cn1Label",
                "msg",
                "cat",
                "act",
                "outcome",
                "sproc",
                "spid",
                "suser",
                "suid",
                "cn2",
                "cn2Label",
                "flexString1",
                "flexString1Label",
                "src",
                "spt",
                "dst",
                "dpt",
                "dhost",
                "proto",
                "cs1",
                "cs1Label",
                "cs2",
                "cs2Label",
                "flexString2",
                "flexString2Label",
                "cs3",
                "cs3Label",
                "cs4",
                "cs4Label",
                "cs5",
                "cs5Label",
                "cs6",
                "cs6Label",
            ]
        );
        for (key, value) in [
            ("rt", "1700000000123"),
            ("dvchost", "node-1"),
            ("deviceFacility", "syscall"),
            ("externalId", record.id.as_str()),
            ("cn1", "7"),
            ("cn1Label", "sequence"),
            ("msg", record.output.as_str()),
            ("cat", "container,shell,mitre_execution"),
            ("act", "execve"),
            ("outcome", "success"),
            ("sproc", "bash"),
            ("spid", "4242"),
            ("suser", "root"),
            ("suid", "0"),
            ("cn2", "4200"),
            ("flexString1", "nginx"),
            ("src", "10.0.0.5"),
            ("spt", "51234"),
            ("dst", "203.0.113.7"),
            ("dpt", "4444"),
            ("dhost", "c2.example.net"),
            ("proto", "TCP"),
            ("cs1", "3ad7b26ded6d"),
            ("cs1Label", "containerId"),
            ("cs2", "registry.example/web:1.4.2"),
            ("flexString2", "web-7f9c"),
            ("cs3", "shop"),
            ("cs4", "web-7f9c-abcde"),
            ("cs5", "bash -i"),
            ("cs5Label", "commandLine"),
            ("cs6", "nginx -g daemon off;"),
        ] {
            assert_eq!(get(&ext, key), Some(value), "{key}");
        }
        assert!(!line.contains('\n'));
    }

    #[test]
    fn maps_priorities_to_cef_severities() {
        let mut record = sample_record(1);
        for (priority, severity) in [
            ("Emergency", "10"),
            ("Alert", "9"),
            ("Critical", "8"),
            ("Error", "7"),
            ("Warning", "6"),
            ("Notice", "4"),
            ("Informational", "3"),
            ("Debug", "1"),
        ] {
            record.priority = priority.into();
            assert_eq!(split(&render(&record)).0[6], severity, "{priority}");
        }
    }

    #[test]
    fn escapes_hostile_strings() {
        let mut record = sample_record(1);
        record.rule = "evil|rule\\with=equals\nand newline".into();
        record.output = "a=b | c\\d\r\ne".into();
        record.context.insert(
            "proc.cmdline".into(),
            "sh -c 'x=1 cs1=forged|y' \\\n".into(),
        );
        record
            .context
            .insert("user.name".into(), "root msg=forged".into());
        let line = render(&record);
        assert!(!line.contains(['\n', '\r']));
        let (header, extensions) = split(&line);
        assert_eq!(header.len(), 7);
        assert_eq!(header[5], "evil\\|rule\\\\with=equals and newline");
        // The signature id hashes the raw name, so it is plain hex.
        assert_eq!(header[4], rule_uid(&record.rule));
        let ext = parse_extensions(&extensions);
        assert_eq!(get(&ext, "msg"), Some("a=b | c\\d\r\ne"));
        assert_eq!(get(&ext, "cs5"), Some("sh -c 'x=1 cs1=forged|y' \\\n"));
        assert_eq!(get(&ext, "suser"), Some("root msg=forged"));
        // Forged keys inside values stay inside values.
        assert_eq!(ext.iter().filter(|(k, _)| k == "msg").count(), 1);
        assert_eq!(ext.iter().filter(|(k, _)| k == "cs1").count(), 1);
        assert!(line.contains("cs5=sh -c 'x\\=1 cs1\\=forged|y' \\\\\\n"));
    }

    #[test]
    fn renders_file_events() {
        let ext = parse_extensions(&split(&render(&file_record())).1);
        assert_eq!(get(&ext, "fname"), Some("shadow"));
        assert_eq!(get(&ext, "filePath"), Some("/etc/shadow"));
        assert_eq!(get(&ext, "act"), Some("openat"));
        assert_eq!(get(&ext, "outcome"), Some("failure"));
        for absent in ["src", "dst", "spt", "dpt", "proto", "dhost"] {
            assert_eq!(get(&ext, absent), None, "{absent}");
        }
    }

    #[test]
    fn puts_ipv6_in_custom_address_fields() {
        let mut record = sample_record(1);
        record.context.insert("fd.cip".into(), "2001:db8::5".into());
        record.context.insert("fd.sip".into(), "2001:db8::7".into());
        let ext = parse_extensions(&split(&render(&record)).1);
        assert_eq!(get(&ext, "src"), None);
        assert_eq!(get(&ext, "dst"), None);
        assert_eq!(get(&ext, "c6a2"), Some("2001:db8::5"));
        assert_eq!(get(&ext, "c6a2Label"), Some("Source IPv6 Address"));
        assert_eq!(get(&ext, "c6a3"), Some("2001:db8::7"));
        assert_eq!(get(&ext, "c6a3Label"), Some("Destination IPv6 Address"));
    }

    #[test]
    fn omits_absent_context() {
        let mut record = sample_record(1);
        record.context.insert("container.id".into(), "host".into());
        for field in ["k8s.ns.name", "k8s.pod.name", "proc.ppid", "proc.pname"] {
            record.context.remove(field);
        }
        let ext = parse_extensions(&split(&render(&record)).1);
        for absent in [
            "cs1",
            "cs1Label",
            "cs2",
            "cs2Label",
            "flexString2",
            "cs3",
            "cs4",
            "cn2",
            "cn2Label",
            "flexString1",
        ] {
            assert_eq!(get(&ext, absent), None, "{absent}");
        }
    }

    #[test]
    fn renders_agent_events() {
        let line = render(&heartbeat(42));
        let (header, extensions) = split(&line);
        assert_eq!(header[5], "Vigil heartbeat");
        assert_eq!(header[6], "3");
        let ext = parse_extensions(&extensions);
        let keys: Vec<&str> = ext.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "rt",
                "dvchost",
                "deviceFacility",
                "externalId",
                "cn1",
                "cn1Label",
                "msg"
            ]
        );
        assert_eq!(get(&ext, "cn1"), Some("42"));
        assert_eq!(get(&ext, "deviceFacility"), Some("vigil"));
    }
}
