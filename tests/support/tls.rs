//! Real TLS and a real CONNECT proxy for tests.
//!
//! [`PrivateCa`] makes a certificate authority and a server certificate for `127.0.0.1` and
//! `localhost` with the `openssl` program at test time (nothing is vendored); [`TlsFront`]
//! terminates TLS with it (OpenSSL through native-tls, as castsync's own client) in front of a
//! plain-http server such as the emulator, and counts the connections and handshakes it saw.
//! [`ConnectProxy`] is an HTTP proxy that opens CONNECT tunnels, or refuses them.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A private CA and a server certificate it signed (PEM files in a temp dir).
pub struct PrivateCa {
    _dir: tempfile::TempDir,
    /// The CA's certificate: what `SSL_CERT_FILE` must name for castsync to trust the server.
    pub ca_file: PathBuf,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl PrivateCa {
    /// A new CA and server certificate, or None (after a visible skip line) without `openssl`.
    pub fn new() -> Option<PrivateCa> {
        let openssl = super::tool("openssl")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = StdCommand::new(&openssl)
                .args(args)
                .current_dir(d)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=castsync test CA",
        ];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        run(&ca);
        let mut csr = vec!["req", "-subj", "/CN=localhost"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        run(&csr);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        Some(PrivateCa {
            ca_file: d.join("ca.pem"),
            cert: std::fs::read(d.join("server.pem")).unwrap(),
            key: std::fs::read(d.join("server.key")).unwrap(),
            _dir: dir,
        })
    }
}

/// Counters shared with a server's task.
#[derive(Default)]
pub struct Counts {
    connections: AtomicUsize,
    handshakes: AtomicUsize,
}

/// A TLS listener on 127.0.0.1 that forwards each connection's plaintext to `upstream`.
pub struct TlsFront {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    counts: Arc<Counts>,
    runtime: tokio::runtime::Runtime,
}

impl TlsFront {
    /// TLS with `ca`'s server certificate in front of `upstream` (`http://HOST:PORT`).
    pub fn start(ca: &PrivateCa, upstream: &str) -> TlsFront {
        let identity = native_tls::Identity::from_pkcs8(&ca.cert, &ca.key).expect("identity");
        let acceptor = tokio_native_tls::TlsAcceptor::from(
            native_tls::TlsAcceptor::new(identity).expect("acceptor"),
        );
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let runtime = runtime();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                c.connections.fetch_add(1, Ordering::SeqCst);
                let (acceptor, upstream, c) = (acceptor.clone(), upstream.clone(), c.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    c.handshakes.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut up) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    }
                });
            }
        });
        TlsFront {
            url,
            counts,
            runtime,
        }
    }

    /// TCP connections accepted so far (each one a handshake attempted).
    pub fn connections(&self) -> usize {
        self.counts.connections.load(Ordering::SeqCst)
    }

    /// Handshakes that completed.
    pub fn handshakes(&self) -> usize {
        self.counts.handshakes.load(Ordering::SeqCst)
    }

    /// The port, for URLs that name the host differently.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        // Dropping the runtime stops the listener; nothing to flush.
        let _ = &self.runtime;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// What a [`ConnectProxy`] does with a CONNECT request.
#[derive(Debug, Clone, Copy)]
pub enum ProxyMode {
    /// Opens the tunnel.
    Tunnel,
    /// Answers with this status and closes.
    Refuse(u16),
}

/// An HTTP proxy on 127.0.0.1 for CONNECT tunnels.
pub struct ConnectProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    counts: Arc<Counts>,
    _runtime: tokio::runtime::Runtime,
}

impl ConnectProxy {
    pub fn start(mode: ProxyMode) -> ConnectProxy {
        let runtime = runtime();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                c.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(tunnel(tcp, mode));
            }
        });
        ConnectProxy {
            url,
            counts,
            _runtime: runtime,
        }
    }

    /// Connections the proxy accepted.
    pub fn connections(&self) -> usize {
        self.counts.connections.load(Ordering::SeqCst)
    }
}

async fn tunnel(mut client: TcpStream, mode: ProxyMode) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if client.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let target = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    match mode {
        ProxyMode::Refuse(status) => {
            let reply = format!("HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\n\r\n");
            let _ = client.write_all(reply.as_bytes()).await;
        }
        ProxyMode::Tunnel => {
            let Ok(mut up) = TcpStream::connect(&target).await else {
                let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                return;
            };
            let _ = client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
        }
    }
}

/// A loopback port with nothing listening on it (bound, then closed).
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The file a test points `SSL_CERT_FILE` at when it wants no CA at all trusted.
pub fn empty_ca_file(dir: &Path) -> PathBuf {
    let path = dir.join("no-ca.pem");
    std::fs::write(&path, "").unwrap();
    path
}
