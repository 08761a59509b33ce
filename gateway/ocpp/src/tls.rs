//! The OCPP edge's TLS (REQ NETSEC-1): charge points present either a certificate of the mesh
//! CA (our SPIFFE pile identity) or, as the OCPP security whitepaper has it, a certificate from
//! their operator's own CA (subject CN = charge point id, O = operator name); a charge point
//! without a certificate authenticates with HTTP Basic (security profile 2). TLS 1.2 is offered
//! besides 1.3 unless turned off, as most chargers in the field speak only 1.2 (rustls offers
//! forward-secret AEAD suites alone).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use serde::{Deserialize, Serialize};

use chargemesh_kit::tls::{self, ClientAuth, ReloadingServerConfig, TlsError, TlsFiles};

/// An operator's own CA, whose certificates name charge points by CN and the operator by O.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorCa {
    pub operator_id: String,
    /// A PEM bundle of the operator's CA certificates.
    pub ca_file: PathBuf,
}

/// Who vouched for a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    /// The mesh CA: the certificate carries our SPIFFE identity.
    Mesh,
    /// An operator's CA.
    Operator(String),
}

/// The verifiers of the edge: the mesh CA's, then each operator's.
pub struct EdgeVerifier {
    mesh: Arc<dyn ClientCertVerifier>,
    operators: Vec<(String, Arc<dyn ClientCertVerifier>)>,
    hints: Vec<DistinguishedName>,
}

impl std::fmt::Debug for EdgeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeVerifier")
            .field("operators", &self.operators.len())
            .finish_non_exhaustive()
    }
}

impl EdgeVerifier {
    pub fn load(files: &TlsFiles, operator_cas: &[OperatorCa]) -> Result<Self, TlsError> {
        let mesh = tls::client_verifier(files, ClientAuth::Optional)?;
        let mut hints = mesh.root_hint_subjects().to_vec();
        let mut operators = Vec::new();
        for ca in operator_cas {
            let verifier = tls::optional_client_verifier(&ca.ca_file)?;
            hints.extend_from_slice(verifier.root_hint_subjects());
            operators.push((ca.operator_id.clone(), verifier));
        }
        Ok(Self {
            mesh,
            operators,
            hints,
        })
    }

    /// Which CA a presented chain (end entity first) chains to.
    pub fn issuer(&self, chain: &[CertificateDer<'_>]) -> Option<Issuer> {
        let (end, intermediates) = chain.split_first()?;
        let now = UnixTime::now();
        if self
            .mesh
            .verify_client_cert(end, intermediates, now)
            .is_ok()
        {
            return Some(Issuer::Mesh);
        }
        self.operators
            .iter()
            .find(|(_, v)| v.verify_client_cert(end, intermediates, now).is_ok())
            .map(|(operator, _)| Issuer::Operator(operator.clone()))
    }
}

impl ClientCertVerifier for EdgeVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mesh = self.mesh.verify_client_cert(end_entity, intermediates, now);
        if mesh.is_ok() {
            return mesh;
        }
        self.operators
            .iter()
            .find_map(|(_, v)| v.verify_client_cert(end_entity, intermediates, now).ok())
            .map_or(mesh, Ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.mesh.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.mesh.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.mesh.supported_verify_schemes()
    }
}

/// The edge's server configuration and the verifier it was built with, both following their
/// files.
#[derive(Debug, Clone)]
pub struct EdgeTls {
    pub config: ReloadingServerConfig,
    verifier: Arc<RwLock<Arc<EdgeVerifier>>>,
}

impl EdgeTls {
    pub fn load(
        files: &TlsFiles,
        operator_cas: &[OperatorCa],
        allow_tls12: bool,
    ) -> Result<Self, TlsError> {
        let slot: Arc<RwLock<Arc<EdgeVerifier>>> = Arc::new(RwLock::new(Arc::new(
            EdgeVerifier::load(files, operator_cas)?,
        )));
        // Every accepted connection's chain is checked again with the current verifier
        // (`EdgeVerifier::issuer`), so a resumed session's certificate is too.
        let tickets = tls::SessionTickets::new()?;
        let (cas, written) = (operator_cas.to_vec(), slot.clone());
        let build = move |files: &TlsFiles| -> Result<ServerConfig, TlsError> {
            let verifier = Arc::new(EdgeVerifier::load(files, &cas)?);
            let versions: &[&rustls::SupportedProtocolVersion] = if allow_tls12 {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            } else {
                &[&rustls::version::TLS13]
            };
            let mut config = ServerConfig::builder_with_provider(tls::provider())
                .with_protocol_versions(versions)?
                .with_client_cert_verifier(verifier.clone())
                .with_single_cert(
                    tls::load_certs(&files.cert_file)?,
                    tls::load_key(&files.key_file)?,
                )?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            tickets.apply(&mut config, files)?;
            *written.write().unwrap_or_else(|e| e.into_inner()) = verifier;
            Ok(config)
        };
        let extra = operator_cas.iter().map(|ca| ca.ca_file.clone()).collect();
        let config = ReloadingServerConfig::custom(files.clone(), extra, Arc::new(build))?;
        Ok(Self {
            config,
            verifier: slot,
        })
    }

    /// The verifier in force.
    pub fn verifier(&self) -> Arc<EdgeVerifier> {
        self.verifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A certificate's subject CN and O, as the OCPP security whitepaper uses them.
pub fn subject_names(der: &[u8]) -> Option<(String, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    let o = subject
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    Some((cn, o))
}
