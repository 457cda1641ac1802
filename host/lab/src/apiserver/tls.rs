//! TLS for the API server. kubectl sends a kubeconfig's bearer token only
//! over HTTPS, so the server speaks TLS, with a certificate signed by a CA
//! kept in the store's directory (`tls/ca.crt`, `tls/ca.key`) so kubeconfigs
//! stay valid across restarts. Plain HTTP is accepted on the same port too
//! (the first byte of a connection tells which), for clients that send the
//! token over plain HTTP on loopback.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "runner-lab-ca");
    dn.push(DnType::OrganizationName, "runner-lab");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    p
}

fn tls_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("TLS setup: {e}"))
}

/// Loads the CA kept in `dir/tls`, creating it on first use. Returns the
/// certificate PEM and key PEM.
pub(crate) fn load_or_create_ca(dir: &Path) -> io::Result<(String, String)> {
    let tls = dir.join("tls");
    let (cert_path, key_path) = (tls.join(CA_CERT), tls.join(CA_KEY));
    if let (Ok(c), Ok(k)) = (std::fs::read_to_string(&cert_path), std::fs::read_to_string(&key_path)) {
        return Ok((c, k));
    }
    std::fs::create_dir_all(&tls)?;
    let key = KeyPair::generate().map_err(tls_err)?;
    let cert = ca_params().self_signed(&key).map_err(tls_err)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    write_private(&key_path, key_pem.as_bytes())?;
    let tmp = tls.join("ca.crt.tmp");
    std::fs::write(&tmp, cert_pem.as_bytes())?;
    std::fs::rename(&tmp, &cert_path)?;
    Ok((cert_pem, key_pem))
}

fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A server configuration with a fresh certificate for `ip` (and
/// localhost), signed by the store's CA. Returns it with the CA PEM.
pub(crate) fn server_config(dir: &Path, ip: IpAddr) -> io::Result<(String, Arc<rustls::ServerConfig>)> {
    let (ca_pem, ca_key_pem) = load_or_create_ca(dir)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(tls_err)?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    let mut params = CertificateParams::new(names).map_err(tls_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "runner-lab-apiserver");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(tls_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(tls_err)?;
    let ca_der = <rustls::pki_types::CertificateDer<'static> as rustls::pki_types::pem::PemObject>::from_pem_slice(ca_pem.as_bytes()).map_err(tls_err)?;
    let chain = vec![cert.der().clone(), ca_der];
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca_pem, Arc::new(config)))
}

/// The CA PEM of every HTTPS server started in this process, by URL, so
/// [`super::kubeconfig`] can embed it.
fn registry() -> &'static Mutex<HashMap<String, String>> {
    static REG: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

pub(crate) fn register_ca(url: &str, ca_pem: &str) {
    registry().lock().unwrap_or_else(|e| e.into_inner()).insert(url.trim_end_matches('/').to_string(), ca_pem.to_string());
}

pub(crate) fn ca_for(url: &str) -> Option<String> {
    registry().lock().unwrap_or_else(|e| e.into_inner()).get(url.trim_end_matches('/')).cloned()
}

/// One accepted connection, TLS or plain.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// A listener that hands axum connections whose TLS handshake (if any) is
/// done; handshakes run concurrently, off the accept loop.
pub(crate) struct LabListener {
    rx: mpsc::Receiver<(Conn, SocketAddr)>,
    addr: SocketAddr,
}

impl LabListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<LabListener> {
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = listener.accept() => r,
                    _ = tx.closed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let tx = tx.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    let peeked = tokio::time::timeout(Duration::from_secs(30), stream.peek(&mut first)).await;
                    let conn = match peeked {
                        Ok(Ok(1)) if first[0] == 0x16 => match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => Conn::Tls(Box::new(tls)),
                            Ok(Err(e)) => {
                                tracing::debug!("TLS handshake with {peer} failed: {e}");
                                return;
                            }
                            Err(_) => return,
                        },
                        Ok(Ok(n)) if n > 0 => Conn::Plain(stream),
                        _ => return,
                    };
                    let _ = tx.send((conn, peer)).await;
                });
            }
        });
        Ok(LabListener { rx, addr })
    }
}

impl axum::serve::Listener for LabListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}
