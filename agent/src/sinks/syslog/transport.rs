//! The connection to the receiver: lazily (re)connected, checked for a silent close before
//! every batch, dropped on any error.

use std::{
    fmt, io,
    io::Read as _,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    sync::Arc,
    time::Duration,
};

use rustls::ClientConnection;
use rustls_pki_types::ServerName;
use tokio::{
    io::AsyncWriteExt as _,
    net::{TcpStream, UdpSocket},
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{
    Address, Protocol, SyslogConfigError, SyslogOptions,
    message::{self, Header, MAX_APP_NAME, MAX_DATAGRAM},
};
use crate::sinks::{SendError, format::Format, record::Record, tls::TlsOptions};

/// Delivers batches of records to one syslog receiver.
///
/// The connection is opened on the first [`send`](SyslogTransport::send) and kept between
/// batches. Any failure drops it, so the next `send` starts afresh (and resolves the host
/// again).
pub struct SyslogTransport {
    address: Address,
    mode: Mode,
    header: Header,
    timeout: Duration,
    connection: Option<Connection>,
}

/// What connecting needs beyond the address.
enum Mode {
    Udp,
    Tcp,
    Tls {
        connector: TlsConnector,
        server_name: ServerName<'static>,
    },
}

enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
    // Boxed: a TLS session holds kilobytes of buffers, the other variants a descriptor.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why a batch was not delivered; the caller puts the receiver in front.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("resolving the host: {0}")]
    Resolve(io::Error),
    #[error("the host resolved to no address")]
    NoAddress,
    #[error("connecting: {0}")]
    Connect(io::Error),
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
    #[error("writing: {0}")]
    Write(io::Error),
    #[error("{stage} timed out after {}", humantime::format_duration(*after))]
    TimedOut {
        stage: &'static str,
        after: Duration,
    },
}

impl SyslogTransport {
    /// Checks the options (address, app name, TLS files and names) without connecting.
    pub fn new(options: &SyslogOptions) -> Result<SyslogTransport, SyslogConfigError> {
        let address =
            Address::parse(&options.address).map_err(|reason| SyslogConfigError::Address {
                address: options.address.clone(),
                reason,
            })?;
        let app_name = &options.app_name;
        if app_name.is_empty()
            || app_name.len() > MAX_APP_NAME
            || !app_name.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(SyslogConfigError::AppName {
                app_name: app_name.clone(),
            });
        }
        if options.timeout.is_zero() {
            return Err(SyslogConfigError::ZeroTimeout {
                address: address.to_string(),
            });
        }
        let mode = match address.protocol {
            Protocol::Udp | Protocol::Tcp => {
                let setting = if options.server_name.is_some() {
                    Some("server_name")
                } else if options.tls != TlsOptions::default() {
                    Some("tls")
                } else {
                    None
                };
                if let Some(setting) = setting {
                    return Err(SyslogConfigError::TlsOnly {
                        address: address.to_string(),
                        setting,
                    });
                }
                if address.protocol == Protocol::Udp {
                    Mode::Udp
                } else {
                    Mode::Tcp
                }
            }
            Protocol::Tls => {
                let name = options
                    .server_name
                    .clone()
                    .unwrap_or_else(|| address.host.clone());
                let server_name = ServerName::try_from(name.clone())
                    .map_err(|_| SyslogConfigError::ServerName { server_name: name })?;
                let config =
                    options
                        .tls
                        .client_config()
                        .map_err(|error| SyslogConfigError::Tls {
                            address: address.to_string(),
                            error,
                        })?;
                Mode::Tls {
                    connector: TlsConnector::from(Arc::new(config)),
                    server_name,
                }
            }
        };
        Ok(SyslogTransport {
            address,
            mode,
            header: Header {
                facility: options.facility,
                app_name: app_name.clone(),
                procid: std::process::id().to_string(),
            },
            timeout: options.timeout,
            connection: None,
        })
    }

    /// The receiver, as `tcp://host:port`, for logs.
    pub fn describe(&self) -> String {
        self.address.to_string()
    }

    /// Writes each record as one RFC 5424 message, its body rendered in `format`, connecting
    /// first if needed.
    ///
    /// Every failure is [`SendError::Retryable`] (a receiver does not judge syslog messages)
    /// and drops the connection. A batch that failed midway may have been partly delivered,
    /// so a retry can repeat records: receivers de-duplicate on the `id` structured-data
    /// parameter.
    pub async fn send(&mut self, batch: &[Record], format: Format) -> Result<(), SendError> {
        self.send_rendered(batch, |record| format.render(record))
            .await
    }

    async fn send_rendered(
        &mut self,
        batch: &[Record],
        render: impl Fn(&Record) -> String,
    ) -> Result<(), SendError> {
        if batch.is_empty() {
            return Ok(());
        }
        let messages = self.encode(batch, render);
        self.check_connection();
        self.deliver(&messages)
            .await
            .map_err(|failure| SendError::Retryable(format!("syslog {}: {failure}", self.address)))
    }

    fn encode(&self, batch: &[Record], render: impl Fn(&Record) -> String) -> Vec<String> {
        batch
            .iter()
            .map(|record| {
                let mut message = self.header.message(record, &render(record));
                let bytes = message.len();
                if matches!(self.mode, Mode::Udp) && message::truncate(&mut message, MAX_DATAGRAM) {
                    tracing::warn!(
                        sink = %self.address,
                        seq = record.seq,
                        bytes,
                        max = MAX_DATAGRAM,
                        "syslog message too large for a datagram: truncated"
                    );
                }
                message
            })
            .collect()
    }

    /// Drops the connection if the receiver has closed it or it has failed.
    ///
    /// A TCP write to a peer that has closed its end still succeeds (the peer answers it with a
    /// reset), so without this check the first batch after a receiver restart would vanish.
    fn check_connection(&mut self) {
        let Some(connection) = &mut self.connection else {
            return;
        };
        let Err(reason) = connection.check() else {
            return;
        };
        if matches!(connection, Connection::Udp(_)) {
            tracing::warn!(
                sink = %self.address,
                %reason,
                "the syslog receiver refused datagrams: records sent since the previous batch \
                 may be lost"
            );
        } else {
            tracing::info!(sink = %self.address, %reason, "syslog connection lost; reconnecting");
        }
        self.connection = None;
    }

    async fn deliver(&mut self, messages: &[String]) -> Result<(), Failure> {
        // Taken out for the write, and put back only once it succeeded: a failed or cancelled
        // write may have left half a frame on the stream, so the connection must not be reused.
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        match tokio::time::timeout(self.timeout, connection.write(messages)).await {
            Ok(Ok(())) => {
                self.connection = Some(connection);
                Ok(())
            }
            Ok(Err(error)) => Err(Failure::Write(error)),
            Err(_) => Err(Failure::TimedOut {
                stage: "writing the batch",
                after: self.timeout,
            }),
        }
    }

    async fn connect(&self) -> Result<Connection, Failure> {
        let target = (self.address.host.as_str(), self.address.port);
        let connecting = async {
            match &self.mode {
                Mode::Udp => {
                    let peer = tokio::net::lookup_host(target)
                        .await
                        .map_err(Failure::Resolve)?
                        .next()
                        .ok_or(Failure::NoAddress)?;
                    let local: SocketAddr = if peer.is_ipv4() {
                        (Ipv4Addr::UNSPECIFIED, 0).into()
                    } else {
                        (Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    let socket = UdpSocket::bind(local).await.map_err(Failure::Connect)?;
                    // Connected, so the kernel reports ICMP refusals on this socket.
                    socket.connect(peer).await.map_err(Failure::Connect)?;
                    Ok(Connection::Udp(socket))
                }
                Mode::Tcp => Ok(Connection::Tcp(connect_tcp(target).await?)),
                Mode::Tls {
                    connector,
                    server_name,
                } => {
                    let stream = connect_tcp(target).await?;
                    let stream = connector
                        .connect(server_name.clone(), stream)
                        .await
                        .map_err(Failure::Handshake)?;
                    Ok(Connection::Tls(Box::new(stream)))
                }
            }
        };
        let connection = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| Failure::TimedOut {
                stage: "connecting",
                after: self.timeout,
            })??;
        tracing::info!(sink = %self.address, "connected to the syslog receiver");
        Ok(connection)
    }
}

impl fmt::Debug for SyslogTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyslogTransport")
            .field("address", &self.address.to_string())
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}

async fn connect_tcp(target: (&str, u16)) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect(target).await.map_err(Failure::Connect)?;
    // A batch goes out in one write; Nagle would only hold its tail back.
    stream.set_nodelay(true).map_err(Failure::Connect)?;
    Ok(stream)
}

impl Connection {
    async fn write(&mut self, messages: &[String]) -> io::Result<()> {
        match self {
            Connection::Udp(socket) => {
                for message in messages {
                    socket.send(message.as_bytes()).await?;
                }
                // A refusal (ICMP port unreachable) of these datagrams becomes the socket's
                // pending error; from a receiver on the same host or network it has usually
                // arrived by now, so a receiver that is down fails the batch instead of
                // swallowing it.
                match socket.take_error()? {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            }
            Connection::Tcp(stream) => {
                stream.write_all(&frames(messages)).await?;
                stream.flush().await
            }
            Connection::Tls(stream) => {
                stream.write_all(&frames(messages)).await?;
                // Pushes the TLS records rustls still buffers out to the socket.
                stream.flush().await
            }
        }
    }

    /// Without blocking: `Err(reason)` if the connection is known to be dead.
    fn check(&mut self) -> Result<(), String> {
        match self {
            Connection::Udp(socket) => match socket.take_error() {
                Ok(None) => Ok(()),
                Ok(Some(error)) | Err(error) => Err(error.to_string()),
            },
            Connection::Tcp(stream) => drain_plain(stream.as_fd()),
            Connection::Tls(stream) => {
                let (stream, session) = stream.get_mut();
                drain_tls(stream.as_fd(), session)
            }
        }
    }
}

/// All messages of a batch, octet-counted, for a single write.
fn frames(messages: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
    for message in messages {
        message::push_framed(&mut out, message);
    }
    out
}

const CLOSED: &str = "the receiver closed the connection";

/// How many reads a check makes at most: receivers send little or nothing, so more means a
/// misbehaving peer, which must not keep the sender in this loop.
const MAX_CHECK_READS: usize = 64;

/// Reads whatever a plain TCP receiver sent, to find an end of stream or a reset behind it.
/// Syslog receivers send nothing back, so the data is discarded.
fn drain_plain(socket: BorrowedFd<'_>) -> Result<(), String> {
    let mut buf = [0; 512];
    for _ in 0..MAX_CHECK_READS {
        match recv_now(socket, &mut buf) {
            Ok(0) => return Err(CLOSED.to_string()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(())
}

/// Feeds whatever a TLS receiver sent through the session: besides an end of stream it may
/// be a close_notify alert, which often precedes it, and TLS 1.3 servers send session tickets
/// after the handshake that would otherwise hide both.
fn drain_tls(socket: BorrowedFd<'_>, session: &mut ClientConnection) -> Result<(), String> {
    let mut plaintext = [0; 512];
    for _ in 0..MAX_CHECK_READS {
        match session.read_tls(&mut NonBlocking(socket)) {
            Ok(0) => return Err(CLOSED.to_string()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => return Err(error.to_string()),
        }
        let state = session
            .process_new_packets()
            .map_err(|error| format!("TLS: {error}"))?;
        if state.peer_has_closed() {
            return Err("the receiver closed the TLS session".to_string());
        }
        // Application data is unexpected; reading it keeps rustls' buffer from filling up.
        while let Ok(read) = session.reader().read(&mut plaintext) {
            if read == 0 {
                return Err("the receiver closed the TLS session".to_string());
            }
        }
    }
    Ok(())
}

/// Reads a socket without waiting, bypassing tokio: its readiness only updates when the
/// reactor has run, so it could still report nothing to read after a close arrived.
struct NonBlocking<'a>(BorrowedFd<'a>);

impl io::Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self.0, buf)
    }
}

fn recv_now(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `socket` is an open descriptor for the duration of the borrow, and `buf` is
        // valid for writes of `buf.len()` bytes.
        let received = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if let Ok(received) = usize::try_from(received) {
            return Ok(received);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tokio::{
        io::AsyncReadExt as _,
        net::{TcpListener, UdpSocket},
    };

    use super::*;
    use crate::sinks::record::sample_record;

    fn transport(address: &str) -> SyslogTransport {
        SyslogTransport::new(&SyslogOptions::new(address)).unwrap()
    }

    fn config_error(options: SyslogOptions) -> String {
        SyslogTransport::new(&options).unwrap_err().to_string()
    }

    async fn send(transport: &mut SyslogTransport, batch: &[Record]) -> Result<(), SendError> {
        transport
            .send_rendered(batch, |record| format!("body {}", record.seq))
            .await
    }

    /// Reads octet-counted frames until `count` arrived.
    async fn read_frames(
        stream: &mut (impl tokio::io::AsyncRead + Unpin),
        count: usize,
    ) -> Vec<String> {
        let mut buffered = Vec::new();
        let mut frames = Vec::new();
        while frames.len() < count {
            let mut chunk = [0; 4096];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("frames within 5s")
                .unwrap();
            assert_ne!(read, 0, "the stream ended after {} frames", frames.len());
            buffered.extend_from_slice(&chunk[..read]);
            while let Some(space) = buffered.iter().position(|&b| b == b' ') {
                let len: usize = std::str::from_utf8(&buffered[..space])
                    .unwrap()
                    .parse()
                    .unwrap();
                if buffered.len() < space + 1 + len {
                    break;
                }
                let frame = buffered[space + 1..space + 1 + len].to_vec();
                buffered.drain(..space + 1 + len);
                frames.push(String::from_utf8(frame).unwrap());
            }
        }
        frames
    }

    #[test]
    fn validates_options_without_connecting() {
        let mut options = SyslogOptions::new("tcp://127.0.0.1:1");
        assert_eq!(
            SyslogTransport::new(&options).unwrap().describe(),
            "tcp://127.0.0.1:1"
        );

        options.address = "tcp//127.0.0.1".into();
        let error = config_error(options.clone());
        assert!(
            error.starts_with("syslog address `tcp//127.0.0.1`: expected"),
            "{error}"
        );

        options.address = "udp://127.0.0.1".into();
        options.app_name = "my app".into();
        let error = config_error(options.clone());
        assert!(error.contains("app_name `my app`"), "{error}");
        options.app_name = "a".repeat(49);
        assert!(config_error(options.clone()).contains("app_name"));
        options.app_name = String::new();
        assert!(config_error(options.clone()).contains("app_name"));

        options.app_name = "vigil".into();
        options.timeout = Duration::ZERO;
        let error = config_error(options.clone());
        assert_eq!(
            error,
            "syslog udp://127.0.0.1:514: timeout must be greater than zero"
        );
    }

    #[test]
    fn tls_settings_need_a_tls_address() {
        let mut options = SyslogOptions::new("tcp://127.0.0.1:514");
        options.server_name = Some("siem.example".into());
        let error = config_error(options.clone());
        assert!(
            error.contains("`server_name` applies to tls:// addresses only"),
            "{error}"
        );
        options.server_name = None;
        options.tls.ca_file = Some("/etc/ca.pem".into());
        let error = config_error(options);
        assert!(
            error.contains("`tls` applies to tls:// addresses only"),
            "{error}"
        );
    }

    #[test]
    fn tls_files_and_names_are_checked_up_front() {
        let mut options = SyslogOptions::new("tls://127.0.0.1:6514");
        options.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let error = config_error(options.clone());
        assert!(
            error.starts_with("syslog tls://127.0.0.1:6514: CA file /nonexistent/ca.pem"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = test_ca(dir.path());
        options.tls.ca_file = Some(ca);
        options.server_name = Some("bad name!".into());
        let error = config_error(options.clone());
        assert!(error.contains("server_name `bad name!`"), "{error}");
        options.server_name = Some("siem.example".into());
        assert!(SyslogTransport::new(&options).is_ok());
    }

    #[tokio::test]
    async fn an_empty_batch_does_not_connect() {
        let mut transport = transport("tcp://127.0.0.1:1");
        send(&mut transport, &[]).await.unwrap();
    }

    #[tokio::test]
    async fn tcp_sends_octet_counted_messages_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut transport = transport(&format!("tcp://{}", listener.local_addr().unwrap()));
        let batch = [sample_record(1), sample_record(2), sample_record(3)];
        send(&mut transport, &batch).await.unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        let frames = read_frames(&mut peer, 3).await;
        for (frame, seq) in frames.iter().zip(1..) {
            assert!(
                frame.starts_with("<36>1 2023-11-14T22:13:20.123456Z node-1 vigil "),
                "{frame}"
            );
            assert!(frame.contains(&format!(" seq=\"{seq}\" ")), "{frame}");
            assert!(frame.ends_with(&format!("] body {seq}")), "{frame}");
        }
        // The connection is kept for the next batch.
        send(&mut transport, &[sample_record(4)]).await.unwrap();
        assert!(read_frames(&mut peer, 1).await[0].ends_with("body 4"));
    }

    #[tokio::test]
    async fn tcp_reconnects_when_the_receiver_closed_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut transport = transport(&format!("tcp://{}", listener.local_addr().unwrap()));
        send(&mut transport, &[sample_record(1)]).await.unwrap();
        let (mut first, _) = listener.accept().await.unwrap();
        read_frames(&mut first, 1).await;
        drop(first);
        // Give the FIN time to arrive; a blind write would now "succeed" into the void.
        tokio::time::sleep(Duration::from_millis(50)).await;
        send(&mut transport, &[sample_record(2)]).await.unwrap();
        let (mut second, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("a new connection")
            .unwrap();
        assert!(read_frames(&mut second, 1).await[0].ends_with("body 2"));
    }

    #[tokio::test]
    async fn tcp_fails_retryably_while_the_receiver_is_down() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut transport = transport(&format!("tcp://{address}"));
        send(&mut transport, &[sample_record(1)]).await.unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        read_frames(&mut peer, 1).await;
        drop(peer);
        drop(listener);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let error = send(&mut transport, &[sample_record(2)]).await.unwrap_err();
        let SendError::Retryable(message) = error else {
            panic!("expected a retryable error, got {error:?}");
        };
        assert!(
            message.starts_with(&format!("syslog tcp://{address}: connecting: ")),
            "{message}"
        );
    }

    #[tokio::test]
    async fn udp_sends_one_datagram_per_message_truncating_large_ones() {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut transport = transport(&format!("udp://{}", receiver.local_addr().unwrap()));
        send(&mut transport, &[sample_record(1), sample_record(2)])
            .await
            .unwrap();
        transport
            .send_rendered(&[sample_record(3)], |_| "é".repeat(10_000))
            .await
            .unwrap();
        let mut buf = vec![0; 65536];
        for seq in 1..=2 {
            let len = receiver.recv(&mut buf).await.unwrap();
            let datagram = std::str::from_utf8(&buf[..len]).unwrap();
            assert!(datagram.starts_with("<36>1 "), "{datagram}");
            assert!(datagram.ends_with(&format!("] body {seq}")), "{datagram}");
        }
        let len = receiver.recv(&mut buf).await.unwrap();
        // The header is ASCII and each 'é' two bytes, so the cut lands one byte short.
        assert!(len == MAX_DATAGRAM || len == MAX_DATAGRAM - 1, "{len}");
        let datagram = std::str::from_utf8(&buf[..len]).expect("cut at a character boundary");
        assert!(datagram.ends_with('é'));
    }

    #[tokio::test]
    async fn udp_fails_retryably_when_the_receiver_refuses() {
        // A port that was just free: nothing listens, so the kernel answers port unreachable.
        let port = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut transport = transport(&format!("udp://127.0.0.1:{port}"));
        let error = send(&mut transport, &[sample_record(1), sample_record(2)])
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SendError::Retryable(m) if m.contains("refused")),
            "{error:?}"
        );
    }

    /// A CA certificate and a server certificate for `localhost` and 127.0.0.1 signed by it.
    fn test_ca(dir: &Path) -> (std::path::PathBuf, rustls::ServerConfig) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        (ca_path, server)
    }

    #[tokio::test]
    async fn tls_reconnects_after_close_notify_despite_session_tickets() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, server) = test_ca(dir.path());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut options = SyslogOptions::new(format!("tls://{}", listener.local_addr().unwrap()));
        options.tls.ca_file = Some(ca);
        options.server_name = Some("localhost".into());
        let mut transport = SyslogTransport::new(&options).unwrap();

        let batch = [sample_record(1)];
        let (sent, accepted) = tokio::join!(send(&mut transport, &batch), async {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.unwrap()
        });
        sent.unwrap();
        let mut first = accepted;
        assert!(read_frames(&mut first, 1).await[0].ends_with("body 1"));
        // Sends close_notify; the session tickets sent after the handshake are still unread
        // in front of it.
        first.shutdown().await.unwrap();
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;

        let batch = [sample_record(2)];
        let (sent, accepted) = tokio::join!(send(&mut transport, &batch), async {
            let (tcp, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
                .await
                .expect("a new connection")
                .unwrap();
            acceptor.accept(tcp).await.unwrap()
        });
        sent.unwrap();
        let mut second = accepted;
        assert!(read_frames(&mut second, 1).await[0].ends_with("body 2"));
    }

    #[tokio::test]
    async fn tls_verifies_the_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (_, server) = test_ca(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (wrong_ca, _) = test_ca(other.path());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut options = SyslogOptions::new(format!("tls://{}", listener.local_addr().unwrap()));
        options.tls.ca_file = Some(wrong_ca);
        let mut transport = SyslogTransport::new(&options).unwrap();
        let batch = [sample_record(1)];
        let (sent, _) = tokio::join!(send(&mut transport, &batch), async {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });
        let error = sent.unwrap_err();
        assert!(
            matches!(&error, SendError::Retryable(m) if m.contains("TLS handshake: invalid peer certificate")),
            "{error:?}"
        );
    }
}
