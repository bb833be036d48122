//! The syslog sink against a real rsyslogd: UDP, TCP and TLS deliver every record in order
//! with the right header, structured data and body; TLS verifies the server; a receiver
//! restart loses nothing.
//!
//! Each test starts its own rsyslogd in the foreground with a private configuration, pid file
//! and work directory under a temporary directory, listening on free loopback ports. Every
//! input has a ruleset that parses the structured data (mmpstrucdata) and writes one JSON line
//! per message, holding the raw message and the fields rsyslog parsed from it, to a file per
//! transport.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil::sinks::{
    SendError,
    format::Format,
    record::{Record, RecordKind, sample_record},
    syslog::{Facility, MAX_DATAGRAM, SD_ID, SyslogOptions, SyslogTransport},
};

/// How long rsyslogd may take to start, stop, or write what it received.
const PATIENCE: Duration = Duration::from_secs(10);

/// One line per message: the header fields rsyslog parsed, the structured data as received and
/// as mmpstrucdata parsed it, MSG, and the raw message.
const TEMPLATE: &str = r#"template(name="fields" type="string" string="{\"pri\":%pri%,\"hostname\":\"%hostname:::json%\",\"app_name\":\"%app-name:::json%\",\"procid\":\"%procid:::json%\",\"msgid\":\"%msgid:::json%\",\"timestamp\":\"%timestamp:::date-rfc3339%\",\"sd\":\"%structured-data:::json%\",\"sd_parsed\":%$!rfc5424-sd%,\"msg\":\"%msg:::json%\",\"raw\":\"%rawmsg:::json%\"}\n")"#;

/// A running rsyslogd, killed when dropped so no test leaves one behind, pass or fail.
struct Rsyslog {
    dir: tempfile::TempDir,
    binary: PathBuf,
    udp_port: u16,
    tcp_port: u16,
    tls_port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    /// Writes certificates and a configuration, then starts rsyslogd.
    fn start() -> Rsyslog {
        let binary = rsyslogd();
        let dir = tempfile::tempdir().expect("temporary directory");
        write_server_certificates(dir.path());
        let mut rsyslog = Rsyslog {
            binary,
            udp_port: free_udp_port(),
            tcp_port: free_tcp_port(),
            tls_port: free_tcp_port(),
            dir,
            child: None,
        };
        std::fs::create_dir(rsyslog.path("work")).expect("work directory");
        std::fs::write(rsyslog.path("rsyslog.conf"), rsyslog.config()).expect("write config");
        rsyslog.spawn();
        rsyslog
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> String {
        let path = |name: &str| self.path(name).display().to_string();
        let ruleset = |name: &str| {
            format!(
                "ruleset(name=\"{name}\") {{\n  action(type=\"mmpstrucdata\")\n  \
                 action(type=\"omfile\" file=\"{}\" template=\"fields\")\n}}\n",
                path(&format!("{name}.log"))
            )
        };
        format!(
            "global(workDirectory=\"{work}\" net.enableDNS=\"off\"\n  \
             defaultNetstreamDriverCAFile=\"{ca}\"\n  \
             defaultNetstreamDriverCertFile=\"{cert}\"\n  \
             defaultNetstreamDriverKeyFile=\"{key}\")\n\
             module(load=\"imudp\")\n\
             module(load=\"imtcp\")\n\
             module(load=\"mmpstrucdata\")\n\
             {TEMPLATE}\n\
             {udp}{tcp}{tls}\
             input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp_port}\" ruleset=\"udp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp_port}\" ruleset=\"tcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tls_port}\" ruleset=\"tls\"\n  \
             streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n",
            work = path("work"),
            ca = path("server-ca.pem"),
            cert = path("server.pem"),
            key = path("server-key.pem"),
            udp = ruleset("udp"),
            tcp = ruleset("tcp"),
            tls = ruleset("tls"),
            udp_port = self.udp_port,
            tcp_port = self.tcp_port,
            tls_port = self.tls_port,
        )
    }

    /// Starts rsyslogd and waits until its TCP and TLS ports accept connections (its UDP
    /// socket is bound before either).
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "rsyslogd is already running");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("rsyslogd.stderr"))
            .expect("stderr file");
        let child = Command::new(&self.binary)
            .arg("-n")
            .arg("-f")
            .arg(self.path("rsyslog.conf"))
            .arg("-i")
            .arg(self.path("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("stderr file"))
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("rsyslogd exited at startup ({status}):\n{}", self.stderr());
            }
            let listening = [self.tcp_port, self.tls_port].iter().all(|&port| {
                std::net::TcpStream::connect_timeout(
                    &([127, 0, 0, 1], port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
            });
            if listening {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on ports {} and {} within {PATIENCE:?}:\n{}",
                self.tcp_port,
                self.tls_port,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops rsyslogd the way a service manager does (SIGTERM) and waits until it exited, its
    /// sockets closed and what it received written.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("rsyslogd is running");
        let pid = i32::try_from(child.id()).expect("pid fits in pid_t");
        // SAFETY: kill(2) of our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + PATIENCE;
        while child.try_wait().expect("waiting for rsyslogd").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rsyslogd ignored SIGTERM for {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("rsyslogd.stderr")).unwrap_or_default()
    }

    /// The messages received on `input` (`udp`, `tcp` or `tls`) so far. Only complete lines
    /// count: rsyslog may be in the middle of writing the last one.
    fn received(&self, input: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path(&format!("{input}.log"))).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("rsyslog wrote invalid JSON ({error}): {line}"))
            })
            .collect()
    }

    /// Waits until `input` received `count` messages, and checks no more arrive shortly after.
    fn wait_for(&self, input: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let received = self.received(input);
            if received.len() >= count {
                std::thread::sleep(Duration::from_millis(200));
                let received = self.received(input);
                assert_eq!(received.len(), count, "more messages than sent on {input}");
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{input}: {} of {count} messages after {PATIENCE:?}; rsyslogd said:\n{}",
                received.len(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// rsyslogd from PATH or the sbin directories (often not on a user's PATH). Missing, it fails
/// the test: passing quietly would hide that nothing was tested.
fn rsyslogd() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("rsyslogd"))
        .find(|candidate| candidate.is_file())
        .expect(
            "rsyslogd is not installed: these tests need a real rsyslog with its GnuTLS driver \
             (apt-get install rsyslog rsyslog-gnutls, or `cargo xtask bootstrap`)",
        )
}

fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free TCP port");
    listener.local_addr().expect("local address").port()
}

fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("free UDP port");
    socket.local_addr().expect("local address").port()
}

/// A CA certificate and its key, generated afresh.
fn certificate_authority(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().expect("CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert, key)
}

/// `server-ca.pem`, and `server.pem` + `server-key.pem` for `localhost` and 127.0.0.1.
fn write_server_certificates(dir: &Path) {
    let (ca, ca_key) = certificate_authority("Vigil test syslog CA");
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    std::fs::write(dir.join("server-ca.pem"), ca.pem()).expect("write CA");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write certificate");
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).expect("write key");
}

/// Records of every kind and several priorities, with a rule name that needs SD escaping.
fn records(seqs: std::ops::Range<u64>) -> Vec<Record> {
    seqs.map(|seq| {
        let mut record = sample_record(seq);
        match seq % 4 {
            0 => {
                record.kind = RecordKind::Heartbeat;
                record.rule = "Vigil heartbeat".into();
                record.priority = "Informational".into();
            }
            1 => {}
            2 => {
                record.rule = r#"Read "sensitive" file [shadow\passwd]"#.into();
                record.priority = "Critical".into();
            }
            _ => {
                record.kind = RecordKind::AgentHealth;
                record.priority = "Error".into();
            }
        }
        record
    })
    .collect()
}

/// SD-PARAM value escaping, written independently of the sink's.
fn escaped(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace(']', r"\]")
}

/// Checks each received message against the record sent in its place.
fn assert_delivered(received: &[Value], sent: &[Record], facility: Facility, format: Format) {
    assert_eq!(received.len(), sent.len(), "message count");
    for (message, record) in received.iter().zip(sent) {
        let context = format!("record {} received as {message}", record.seq);
        let pri = u64::from(facility.code()) * 8 + u64::from(record.severity());
        assert_eq!(message["pri"], pri, "PRI of {context}");
        assert_eq!(
            message["hostname"], record.hostname,
            "HOSTNAME of {context}"
        );
        assert_eq!(message["app_name"], "vigil", "APP-NAME of {context}");
        assert_eq!(
            message["procid"],
            std::process::id().to_string(),
            "PROCID of {context}"
        );
        assert_eq!(message["msgid"], record.kind.name(), "MSGID of {context}");
        assert_eq!(
            message["timestamp"], "2023-11-14T22:13:20.123456Z",
            "TIMESTAMP of {context}"
        );
        let sd = format!(
            "[{SD_ID} id=\"{}\" seq=\"{}\" rule=\"{}\" priority=\"{}\"]",
            record.id,
            record.seq,
            escaped(&record.rule),
            record.priority
        );
        assert_eq!(message["sd"], sd, "STRUCTURED-DATA of {context}");
        let parsed = &message["sd_parsed"][SD_ID];
        assert_eq!(parsed["id"], record.id, "parsed id of {context}");
        assert_eq!(
            parsed["seq"],
            record.seq.to_string(),
            "parsed seq of {context}"
        );
        assert_eq!(parsed["rule"], record.rule, "parsed rule of {context}");
        assert_eq!(
            parsed["priority"], record.priority,
            "parsed priority of {context}"
        );
        assert_eq!(message["msg"], format.render(record), "MSG of {context}");
    }
}

fn options(address: String, rsyslog: &Rsyslog) -> SyslogOptions {
    let mut options = SyslogOptions::new(address);
    options.timeout = Duration::from_secs(5);
    if options.address.starts_with("tls://") {
        options.tls.ca_file = Some(rsyslog.path("server-ca.pem"));
    }
    options
}

fn address(rsyslog: &Rsyslog, input: &str) -> String {
    let port = match input {
        "udp" => rsyslog.udp_port,
        "tcp" => rsyslog.tcp_port,
        "tls" => rsyslog.tls_port,
        other => panic!("no input {other}"),
    };
    format!("{input}://127.0.0.1:{port}")
}

/// Sends `sent` in batches of `batch` and checks rsyslog received each record, in order.
async fn delivers_in_order(input: &str, facility: Facility, format: Format, batch: usize) {
    let rsyslog = Rsyslog::start();
    let mut options = options(address(&rsyslog, input), &rsyslog);
    options.facility = facility;
    let mut transport = SyslogTransport::new(&options).expect("valid options");
    let sent = records(1..41);
    for chunk in sent.chunks(batch) {
        transport
            .send(chunk, format)
            .await
            .unwrap_or_else(|error| panic!("{input}: {error}\n{}", rsyslog.stderr()));
    }
    let received = rsyslog.wait_for(input, sent.len());
    assert_delivered(&received, &sent, facility, format);
}

#[tokio::test]
async fn udp_delivers_records_in_order() {
    // Small batches: a burst of datagrams could overflow the receive buffer before rsyslog's
    // input thread reads it, which is UDP's nature rather than the sink's.
    delivers_in_order("udp", Facility::Local3, Format::Cef, 5).await;
}

#[tokio::test]
async fn tcp_delivers_records_in_order() {
    delivers_in_order("tcp", Facility::Auth, Format::Falco, 16).await;
}

#[tokio::test]
async fn tls_delivers_records_in_order() {
    delivers_in_order("tls", Facility::Local7, Format::Cef, 16).await;
}

#[tokio::test]
async fn tls_delivers_falco_json() {
    delivers_in_order("tls", Facility::Auth, Format::Falco, 40).await;
}

#[tokio::test]
async fn tls_verifies_the_server_name() {
    let rsyslog = Rsyslog::start();
    // The certificate is for localhost and 127.0.0.1, so connecting to 127.0.0.1 while
    // expecting localhost works...
    let mut options = options(address(&rsyslog, "tls"), &rsyslog);
    options.server_name = Some("localhost".into());
    let mut transport = SyslogTransport::new(&options).expect("valid options");
    let sent = records(1..3);
    transport.send(&sent, Format::Cef).await.expect("delivered");
    rsyslog.wait_for("tls", 2);
    // ...and expecting another name does not.
    options.server_name = Some("siem.example".into());
    let mut transport = SyslogTransport::new(&options).expect("valid options");
    let error = transport.send(&sent, Format::Cef).await.unwrap_err();
    assert!(
        matches!(&error, SendError::Retryable(m) if m.contains("invalid peer certificate")),
        "{error:?}"
    );
}

#[tokio::test]
async fn udp_truncates_oversized_messages_to_what_rsyslog_accepts() {
    let rsyslog = Rsyslog::start();
    let mut transport =
        SyslogTransport::new(&options(address(&rsyslog, "udp"), &rsyslog)).expect("options");
    let mut record = sample_record(1);
    record.output = format!("huge {}", "x".repeat(3 * MAX_DATAGRAM));
    let body = Format::Falco.render(&record);
    transport
        .send(std::slice::from_ref(&record), Format::Falco)
        .await
        .expect("sent");
    let received = rsyslog.wait_for("udp", 1);
    let raw = received[0]["raw"].as_str().expect("raw message");
    assert_eq!(raw.len(), MAX_DATAGRAM, "cut to the documented maximum");
    let msg = received[0]["msg"].as_str().expect("MSG");
    assert!(body.starts_with(msg), "MSG is a prefix of the body");
    assert!(
        !rsyslog.stderr().contains("oversize"),
        "rsyslog did not need to cut it further: {}",
        rsyslog.stderr()
    );
}

#[tokio::test]
async fn tls_with_an_unknown_ca_fails_retryably() {
    let rsyslog = Rsyslog::start();
    let (other_ca, _) = certificate_authority("Someone else's CA");
    let other_ca_file = rsyslog.path("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca.pem()).expect("write CA");
    let mut options = options(address(&rsyslog, "tls"), &rsyslog);
    options.tls.ca_file = Some(other_ca_file);
    let mut transport = SyslogTransport::new(&options).expect("valid options");
    let error = transport
        .send(&records(1..3), Format::Cef)
        .await
        .unwrap_err();
    let SendError::Retryable(message) = &error else {
        panic!("expected a retryable error, got {error:?}");
    };
    assert!(
        message.contains("TLS handshake: invalid peer certificate: UnknownIssuer"),
        "{message}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(rsyslog.received("tls").is_empty(), "nothing was delivered");
}

/// rsyslogd stops and comes back on the same port: `send` fails while it is down instead of
/// writing into the closed connection, and once it is back every record arrives exactly once.
async fn survives_a_receiver_restart(input: &str) {
    let mut rsyslog = Rsyslog::start();
    let mut transport =
        SyslogTransport::new(&options(address(&rsyslog, input), &rsyslog)).expect("options");
    let sent = records(1..31);
    let (before, rest) = sent.split_at(10);
    let (during, after) = rest.split_at(10);

    transport
        .send(before, Format::Cef)
        .await
        .expect("delivered");
    rsyslog.wait_for(input, before.len());

    rsyslog.stop();
    for attempt in 1..=2 {
        match transport.send(during, Format::Cef).await {
            Err(SendError::Retryable(message)) => assert!(
                message.contains("connecting"),
                "attempt {attempt} while rsyslogd is down: {message}"
            ),
            Err(error) => panic!("attempt {attempt} while rsyslogd is down: {error:?}"),
            Ok(()) => panic!(
                "attempt {attempt}: send succeeded while rsyslogd was down, so the batch went \
                 into a connection the receiver had closed"
            ),
        }
    }

    rsyslog.spawn();
    transport
        .send(during, Format::Cef)
        .await
        .unwrap_or_else(|error| panic!("after the restart: {error}\n{}", rsyslog.stderr()));
    transport.send(after, Format::Cef).await.expect("delivered");
    let received = rsyslog.wait_for(input, sent.len());
    assert_delivered(&received, &sent, Facility::Auth, Format::Cef);
}

#[tokio::test]
async fn tcp_survives_a_receiver_restart_without_loss() {
    survives_a_receiver_restart("tcp").await;
}

#[tokio::test]
async fn tls_survives_a_receiver_restart_without_loss() {
    survives_a_receiver_restart("tls").await;
}
