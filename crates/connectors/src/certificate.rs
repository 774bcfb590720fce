//! Client certificates for mutual TLS (contract §4): uploaded as PKCS#12 (with its
//! password) or PEM, turned into the PEM identity rustls takes, and chosen by validity
//! period: the most recently uploaded certificate that is valid now.
//!
//! PKCS#12 decryption is slow on purpose (key derivation), so each upload is read once
//! and kept; choosing among them is then cheap on every call.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use usher_domain::{CertificateSource, ClientCertificate};
use x509_parser::pem::Pem;

/// Why an uploaded certificate cannot be used. The messages never include the
/// password or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the PKCS#12 file cannot be read (wrong password or unsupported format)")]
    Pkcs12,
    #[error("no private key was found")]
    NoKey,
    #[error("no certificate was found")]
    NoCertificate,
    #[error("the PEM data cannot be read")]
    Pem,
    #[error("the certificate cannot be parsed")]
    Certificate,
}

/// One uploaded certificate, ready for use.
#[derive(Clone)]
pub struct LoadedCertificate {
    /// The private key (PKCS#8, PKCS#1 or SEC1) and the chain, leaf first, as PEM.
    pub identity_pem: Vec<u8>,
    /// The leaf certificate, DER.
    pub leaf_der: Vec<u8>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub uploaded_at: DateTime<Utc>,
}

impl std::fmt::Debug for LoadedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedCertificate")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("uploaded_at", &self.uploaded_at)
            .finish_non_exhaustive()
    }
}

impl LoadedCertificate {
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// Reads one uploaded certificate.
pub fn load(certificate: &ClientCertificate) -> Result<LoadedCertificate, CertificateError> {
    let (key, chain) = match &certificate.source {
        CertificateSource::Pkcs12 { der, password } => from_pkcs12(der, password.expose())?,
        CertificateSource::Pem { chain, key } => from_pem(chain, key.expose())?,
    };
    let leaf = chain.first().ok_or(CertificateError::NoCertificate)?;
    let (not_before, not_after) = validity(leaf)?;
    let mut identity_pem = Vec::new();
    push_pem(&mut identity_pem, key.label, &key.der);
    for cert in &chain {
        push_pem(&mut identity_pem, "CERTIFICATE", cert);
    }
    Ok(LoadedCertificate {
        identity_pem,
        leaf_der: leaf.clone(),
        not_before,
        not_after,
        uploaded_at: certificate.uploaded_at,
    })
}

/// Among the loaded certificates, the index of the one to use at `now`: inside its
/// validity period and most recently uploaded.
pub fn select(certificates: &[Option<LoadedCertificate>], now: DateTime<Utc>) -> Option<usize> {
    certificates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
        .filter(|(_, c)| c.is_valid_at(now))
        .max_by_key(|(i, c)| (c.uploaded_at, *i))
        .map(|(i, _)| i)
}

struct Key {
    label: &'static str,
    der: Vec<u8>,
}

fn from_pkcs12(der: &[u8], password: &str) -> Result<(Key, Vec<Vec<u8>>), CertificateError> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, password)
        .map_err(|_| CertificateError::Pkcs12)?;
    let key = archive.keys.first().ok_or(CertificateError::NoKey)?;
    // The leaf is the certificate bag sharing the key's local key id; without ids, the
    // first certificate (the order tools write them in).
    let leaf_index = key
        .local_key_id
        .as_ref()
        .and_then(|id| {
            archive
                .certs
                .iter()
                .position(|c| c.local_key_id.as_deref() == Some(id.0.as_slice()))
        })
        .unwrap_or(0);
    let leaf = archive
        .certs
        .get(leaf_index)
        .ok_or(CertificateError::NoCertificate)?;
    let mut chain = vec![leaf.cert.as_der().to_vec()];
    chain.extend(
        archive
            .certs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leaf_index)
            .map(|(_, c)| c.cert.as_der().to_vec()),
    );
    Ok((
        Key {
            label: "PRIVATE KEY",
            der: key.key.as_der().to_vec(),
        },
        chain,
    ))
}

fn from_pem(chain: &str, key: &str) -> Result<(Key, Vec<Vec<u8>>), CertificateError> {
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(chain.as_bytes()) {
        let block = block.map_err(|_| CertificateError::Pem)?;
        if block.label == "CERTIFICATE" {
            certs.push(block.contents);
        }
    }
    if certs.is_empty() {
        return Err(CertificateError::NoCertificate);
    }
    let mut found = None;
    for block in Pem::iter_from_buffer(key.as_bytes()) {
        let block = block.map_err(|_| CertificateError::Pem)?;
        let label = match block.label.as_str() {
            "PRIVATE KEY" => "PRIVATE KEY",
            "RSA PRIVATE KEY" => "RSA PRIVATE KEY",
            "EC PRIVATE KEY" => "EC PRIVATE KEY",
            _ => continue,
        };
        found = Some(Key {
            label,
            der: block.contents,
        });
        break;
    }
    Ok((found.ok_or(CertificateError::NoKey)?, certs))
}

fn validity(der: &[u8]) -> Result<(DateTime<Utc>, DateTime<Utc>), CertificateError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| CertificateError::Certificate)?;
    let v = cert.validity();
    let not_before = DateTime::from_timestamp(v.not_before.timestamp(), 0)
        .ok_or(CertificateError::Certificate)?;
    let not_after = DateTime::from_timestamp(v.not_after.timestamp(), 0)
        .ok_or(CertificateError::Certificate)?;
    Ok((not_before, not_after))
}

fn push_pem(out: &mut Vec<u8>, label: &str, der: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    out.extend_from_slice(format!("-----BEGIN {label}-----\n").as_bytes());
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("-----END {label}-----\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_domain::Secret;

    struct Generated {
        cert_pem: String,
        cert_der: Vec<u8>,
        key_pem: String,
        key_der: Vec<u8>,
    }

    fn generate(from: i32, to: i32) -> Generated {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        Generated {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }

    fn at(y: i32) -> DateTime<Utc> {
        format!("{y}-06-01T00:00:00Z").parse().unwrap()
    }

    fn pem_upload(g: &Generated, uploaded: i32) -> ClientCertificate {
        ClientCertificate {
            source: CertificateSource::Pem {
                chain: g.cert_pem.clone(),
                key: Secret::new(g.key_pem.clone()),
            },
            uploaded_at: at(uploaded),
        }
    }

    fn pkcs12(g: &Generated, password: &str) -> Vec<u8> {
        let mut ks = p12_keystore::KeyStore::new();
        let chain = p12_keystore::PrivateKeyChain::new(
            vec![1u8, 2, 3],
            p12_keystore::PrivateKey::from_der(&g.key_der).unwrap(),
            [p12_keystore::Certificate::from_der(&g.cert_der).unwrap()],
        );
        ks.add_entry(
            "client",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
        );
        ks.writer(password).write().unwrap()
    }

    #[test]
    fn pem_source_loads_with_its_validity() {
        let g = generate(2020, 2030);
        let loaded = load(&pem_upload(&g, 2021)).unwrap();
        assert_eq!(loaded.leaf_der, g.cert_der);
        assert_eq!(
            loaded.not_before,
            "2020-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(loaded.is_valid_at(at(2025)));
        assert!(!loaded.is_valid_at(at(2031)));
        let pem = String::from_utf8(loaded.identity_pem).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.contains("-----BEGIN CERTIFICATE-----\n"));
        assert!(reqwest::Identity::from_pem(pem.as_bytes()).is_ok());
    }

    #[test]
    fn bad_pem_is_an_error() {
        let g = generate(2020, 2030);
        let mut upload = pem_upload(&g, 2021);
        upload.source = CertificateSource::Pem {
            chain: "nothing".into(),
            key: Secret::new(g.key_pem.clone()),
        };
        assert_eq!(load(&upload).unwrap_err(), CertificateError::NoCertificate);
        upload.source = CertificateSource::Pem {
            chain: g.cert_pem.clone(),
            key: Secret::new("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        };
        assert_eq!(load(&upload).unwrap_err(), CertificateError::NoKey);
    }

    #[test]
    fn pkcs12_written_in_rust_loads() {
        let g = generate(2020, 2030);
        let der = pkcs12(&g, "s3cret");
        let upload = ClientCertificate {
            source: CertificateSource::Pkcs12 {
                der: der.clone(),
                password: Secret::new("s3cret"),
            },
            uploaded_at: at(2021),
        };
        let loaded = load(&upload).unwrap();
        assert_eq!(loaded.leaf_der, g.cert_der);
        assert!(reqwest::Identity::from_pem(&loaded.identity_pem).is_ok());
        let wrong = ClientCertificate {
            source: CertificateSource::Pkcs12 {
                der,
                password: Secret::new("guess-9f2c"),
            },
            uploaded_at: at(2021),
        };
        let err = load(&wrong).unwrap_err();
        assert_eq!(err, CertificateError::Pkcs12);
        assert!(!err.to_string().contains("guess-9f2c"));
        let garbage = ClientCertificate {
            source: CertificateSource::Pkcs12 {
                der: b"not a pfx".to_vec(),
                password: Secret::new(""),
            },
            uploaded_at: at(2021),
        };
        assert_eq!(load(&garbage).unwrap_err(), CertificateError::Pkcs12);
    }

    /// A .pfx as OpenSSL writes it (PBES2/AES-256 by default in OpenSSL 3, the format
    /// most customers upload).
    #[test]
    fn pkcs12_from_openssl_loads() {
        let g = generate(2020, 2030);
        let dir = std::env::temp_dir().join(format!("usher-p12-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), &g.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &g.key_pem).unwrap();
        let status = std::process::Command::new("openssl")
            .args(["pkcs12", "-export", "-passout", "pass:pfx-pass", "-inkey"])
            .arg(dir.join("key.pem"))
            .arg("-in")
            .arg(dir.join("cert.pem"))
            .arg("-out")
            .arg(dir.join("client.pfx"))
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => {
                eprintln!(
                    "NOTICE: skipping the OpenSSL PKCS#12 case: openssl not usable ({other:?})"
                );
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
        }
        let der = std::fs::read(dir.join("client.pfx")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let loaded = load(&ClientCertificate {
            source: CertificateSource::Pkcs12 {
                der,
                password: Secret::new("pfx-pass"),
            },
            uploaded_at: at(2021),
        })
        .unwrap();
        assert_eq!(loaded.leaf_der, g.cert_der);
        assert!(reqwest::Identity::from_pem(&loaded.identity_pem).is_ok());
    }

    #[test]
    fn selection_prefers_the_newest_valid_upload() {
        let old_valid = load(&pem_upload(&generate(2020, 2030), 2021)).unwrap();
        let newer_expired = load(&pem_upload(&generate(2020, 2022), 2023)).unwrap();
        let newest_not_yet_valid = load(&pem_upload(&generate(2027, 2030), 2024)).unwrap();
        let list = vec![
            Some(old_valid.clone()),
            Some(newer_expired),
            None,
            Some(newest_not_yet_valid),
        ];
        assert_eq!(select(&list, at(2025)), Some(0));
        assert_eq!(select(&list, at(2028)), Some(3));
        assert_eq!(select(&list, at(2031)), None);
        let two_valid = vec![
            Some(old_valid.clone()),
            Some(LoadedCertificate {
                uploaded_at: at(2022),
                ..old_valid
            }),
        ];
        assert_eq!(select(&two_valid, at(2025)), Some(1));
        assert_eq!(select(&[], at(2025)), None);
    }
}
