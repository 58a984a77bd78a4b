//! One HTTP/1.1 connection over TLS, kept open, that says which certificate the server
//! presented: to see a certificate reload reach new connections and spare open ones.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// An open connection.
pub struct TlsConnection {
    sender: SendRequest<Full<Bytes>>,
    /// The end-entity certificate the server presented at the handshake.
    pub server_certificate: CertificateDer<'static>,
}

impl TlsConnection {
    /// Connects to `addr` as `localhost`, trusting only the CA in `ca_file`.
    pub async fn open(addr: SocketAddr, ca_file: &Path) -> TlsConnection {
        let pem = std::fs::read(ca_file).expect("the CA file");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.expect("a certificate")).expect("a root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("a name");
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("the TLS handshake");
        let server_certificate = stream.get_ref().1.peer_certificates().expect("a certificate")[0]
            .clone()
            .into_owned();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("the HTTP handshake");
        tokio::spawn(connection);
        TlsConnection {
            sender,
            server_certificate,
        }
    }

    /// GET `path` on this connection; `Err` when the connection is gone.
    pub async fn get(&mut self, path: &str) -> Result<StatusCode, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let request = Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = self.sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        response.into_body().collect().await.map_err(|e| e.to_string())?;
        Ok(status)
    }
}

/// The first certificate of a PEM file, as a server presents it.
pub fn first_certificate(pem_file: &Path) -> CertificateDer<'static> {
    let pem = std::fs::read(pem_file).expect("the certificate file");
    let first = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .expect("a certificate")
        .expect("a valid certificate");
    first.into_owned()
}
