//! A customer's API connector endpoint behind a private CA, as in a company network:
//! HTTPS on loopback with a server certificate from a test CA, and mutual TLS — a
//! connection without a client certificate from that CA is refused in the handshake.
//! Every call answers `Continue`.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{routing::post, Json, Router};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct MtlsApi {
    /// `https://localhost:<port>/connector`.
    pub url: String,
    /// The test CA's certificate, PEM: what a connector must trust.
    pub ca_pem: String,
    /// A client certificate from the test CA and its key, PEM.
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// The leaf certificate (DER) of each accepted connection.
    peers: Arc<Mutex<Vec<Vec<u8>>>>,
    client_der: Vec<u8>,
}

impl MtlsApi {
    pub async fn start() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Contoso Test Root CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issue = |names: &[&str], usage| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(
                names
                    .iter()
                    .map(std::string::ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            (cert, key)
        };
        let (server_cert, server_key) =
            issue(&["localhost"], rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = issue(
            &["usher-client"],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );

        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(server_cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let listener = Listener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            peers: peers.clone(),
        };
        let app = Router::new().route(
            "/connector",
            post(|| async { Json(serde_json::json!({"version": "1.0.0", "action": "Continue"})) }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("https://localhost:{port}/connector"),
            ca_pem: ca.pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            peers,
            client_der: client_cert.der().to_vec(),
        }
    }

    /// How many connections completed the handshake with the test client certificate.
    pub fn mutual_tls_connections(&self) -> usize {
        self.peers
            .lock()
            .unwrap()
            .iter()
            .filter(|d| **d == self.client_der)
            .count()
    }
}

struct Listener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    peers: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl axum::serve::Listener for Listener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that does not trust the server, or has no certificate from the
            // CA, fails here; keep listening.
            if let Ok(tls) = self.acceptor.accept(stream).await {
                if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    self.peers.lock().unwrap().push(leaf.to_vec());
                }
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
