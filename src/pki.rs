//! A development PKI made with rcgen: a CA, a certificate per mesh component and per demo
//! identity (each `<name>.pem` + `<name>.key`, with its SPIFFE URI), and a JWT signing key with
//! its JWKS. For development and tests only; production certificates come from cert-manager.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use chargemesh_kit::Principal;
use chargemesh_kit::tls::TlsFiles;

/// The mesh components that get a service certificate.
pub const COMPONENTS: &[&str] = &[
    "gateway",
    "asset",
    "telemetry",
    "dispatch",
    "metering",
    "complaints",
    "reporting",
];

/// The demo operator's unified social credit code; its OperatorID is characters 9 to 17.
pub const DEMO_CREDIT_CODE: &str = "91330602MA2D3K7Q02";
pub const DEMO_OPERATOR_ID: &str = "MA2D3K7Q0";
pub const DEMO_STATION_ID: &str = "SX-YC-001";
pub const DEMO_PILE_ID: &str = "SX-YC-001-P01";
/// Shaoxing, a city code covering its districts 3306xx.
pub const DEMO_REGULATOR_AREA: &str = "330600";

/// Issuer, audience and key id of development staff tokens.
pub const JWT_ISSUER: &str = "chargemesh-dev";
pub const JWT_AUDIENCE: &str = "chargemesh";
pub const JWT_KID: &str = "chargemesh-dev-1";
pub const JWT_KEY_FILE: &str = "jwt-signing.key";
pub const JWKS_FILE: &str = "jwks.json";
/// The key of the T/CEC 102 edge's access tokens, shared by every gateway replica.
pub const CEC_TOKEN_KEY_FILE: &str = "cec-token.key";
/// The keys of the edge's TLS session tickets, shared by every gateway replica and kept across
/// restarts (`tls.ticket_key_file`).
pub const TICKET_KEY_FILE: &str = "tls-tickets.key";

/// A CA that can issue certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    key_pem: String,
}

impl Authority {
    pub fn new(common_name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The development CA of a PKI directory (`ca.pem` and `ca.key`), to issue more identities.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let cert_pem = std::fs::read_to_string(dir.join("ca.pem")).context("reading ca.pem")?;
        let key_pem = std::fs::read_to_string(dir.join("ca.key")).context("reading ca.key")?;
        let key = KeyPair::from_pem(&key_pem)?;
        Ok(Self {
            issuer: Issuer::from_ca_cert_pem(&cert_pem, key)?,
            cert_pem,
            key_pem,
        })
    }

    /// Issues a certificate for `principal` valid between the two instants, with DNS/IP names.
    pub fn issue(
        &self,
        principal: &Principal,
        trust_domain: &str,
        names: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> anyhow::Result<(String, String)> {
        let uri = principal
            .spiffe_uri(trust_domain)
            .context("staff principals have no certificate")?;
        let mut params =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
        params
            .subject_alt_names
            .push(SanType::URI(uri.as_str().try_into()?));
        params
            .distinguished_name
            .push(DnType::CommonName, principal.to_string());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A charge point certificate as the OCPP security whitepaper has it (security profile 3
    /// with the operator's own CA): subject CN = the charge point id, O = the operator's name;
    /// valid from yesterday for `days`.
    pub fn issue_charge_point(
        &self,
        charge_point_id: &str,
        organization: &str,
        days: i64,
    ) -> anyhow::Result<(String, String)> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, charge_point_id);
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(days.max(1));
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// REQ NETSEC-1: a certificate revocation list of this CA naming `serials` (each as the
    /// certificate carries it), good for `days`; a server given it refuses those certificates.
    pub fn crl(&self, serials: &[Vec<u8>], days: i64) -> anyhow::Result<String> {
        let now = OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(days.max(1)),
            crl_number: rcgen::SerialNumber::from_slice(&now.unix_timestamp().to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(serial),
                    revocation_time: now - Duration::minutes(5),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }

    /// Issues a certificate valid from yesterday for `days`.
    pub fn issue_for_days(
        &self,
        principal: &Principal,
        trust_domain: &str,
        names: &[&str],
        days: i64,
    ) -> anyhow::Result<(String, String)> {
        let now = OffsetDateTime::now_utc();
        self.issue(
            principal,
            trust_domain,
            names,
            now - Duration::days(1),
            now + Duration::days(days),
        )
    }
}

/// The serial number of the first certificate in `pem`, as its DER carries it.
pub fn serial_of(pem: &str) -> anyhow::Result<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).context("not a PEM certificate")?;
    der_serial(&der).context("not an X.509 certificate")
}

/// One DER element at the start of `bytes`: (tag, contents, the rest).
fn der_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0_usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber
/// INTEGER, ... }, ... }
fn der_serial(der: &[u8]) -> Option<Vec<u8>> {
    let (0x30, certificate, _) = der_element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = der_element(certificate)? else {
        return None;
    };
    let (tag, value, rest) = der_element(tbs)?;
    let (tag, value) = if tag == 0xa0 {
        let (tag, value, _) = der_element(rest)?;
        (tag, value)
    } else {
        (tag, value)
    };
    (tag == 0x02).then(|| value.to_vec())
}

/// Revokes the certificates in `certs` (PEM files) in the PKI at `dir`: their serials join
/// `revoked.txt`, and `crl.pem` is written anew from the whole list, signed by the CA.
pub fn revoke(dir: &Path, certs: &[PathBuf], days: i64) -> anyhow::Result<PathBuf> {
    let listed = dir.join("revoked.txt");
    let mut serials: Vec<String> = std::fs::read_to_string(&listed)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    for cert in certs {
        let pem =
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
        let hex: String = serial_of(&pem)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !serials.contains(&hex) {
            serials.push(hex);
        }
    }
    let bytes: Vec<Vec<u8>> = serials
        .iter()
        .map(|hex| {
            (0..hex.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .collect();
    let crl = Authority::load(dir)?.crl(&bytes, days)?;
    std::fs::write(&listed, serials.join("\n") + "\n")?;
    let out = dir.join("crl.pem");
    let temp = dir.join(".crl.pem.tmp");
    std::fs::write(&temp, crl)?;
    std::fs::rename(&temp, &out)?;
    Ok(out)
}

/// Writes `<name>.pem` and `<name>.key` into `dir`, the key readable by its owner only.
pub fn write_pair(dir: &Path, name: &str, (cert, key): &(String, String)) -> anyhow::Result<()> {
    std::fs::write(dir.join(format!("{name}.pem")), cert)?;
    write_private(&dir.join(format!("{name}.key")), key)
}

/// Writes a secret so that nobody but its owner can read it at any moment: a new file made with
/// mode 0600, written whole, then renamed over `path` (a reader sees the old file or the new,
/// never a part, and never a moment of wider permissions).
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let _ = std::fs::remove_file(&temp);
    let written = options
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// A new secret (a T/CEC 102 token key, a session ticket key): 32 random bytes, hex.
fn random_secret() -> anyhow::Result<String> {
    let mut key = [0_u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    Ok(key.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
}

/// The demo identities and the file names they are written under.
pub fn demo_identities() -> Vec<(&'static str, Principal)> {
    vec![
        (
            "operator",
            Principal::Operator {
                operator_id: DEMO_OPERATOR_ID.into(),
            },
        ),
        (
            "station",
            Principal::Station {
                operator_id: DEMO_OPERATOR_ID.into(),
                station_id: DEMO_STATION_ID.into(),
            },
        ),
        (
            "pile",
            Principal::Pile {
                operator_id: DEMO_OPERATOR_ID.into(),
                station_id: DEMO_STATION_ID.into(),
                pile_id: DEMO_PILE_ID.into(),
            },
        ),
        (
            "regulator",
            Principal::Regulator {
                area_code: DEMO_REGULATOR_AREA.into(),
            },
        ),
    ]
}

/// What `pki init` made.
#[derive(Debug, Clone)]
pub struct PkiDir {
    pub dir: PathBuf,
}

impl PkiDir {
    /// A simulated client's identity (a pile, a station), issued by `ca` into `sim/` the first
    /// time it is asked for and kept for a year; the files with the CA to trust.
    pub fn simulated(
        &self,
        ca: &Authority,
        trust_domain: &str,
        name: &str,
        principal: &Principal,
    ) -> anyhow::Result<TlsFiles> {
        let dir = self.dir.join("sim");
        let files = TlsFiles::in_dir(&dir, name);
        if !files.cert_file.exists() {
            std::fs::create_dir_all(&dir)?;
            write_pair(
                &dir,
                name,
                &ca.issue_for_days(principal, trust_domain, &[], 365)?,
            )?;
        }
        Ok(TlsFiles {
            ca_file: self.ca(),
            ..files
        })
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn files(&self, name: &str) -> chargemesh_kit::tls::TlsFiles {
        chargemesh_kit::tls::TlsFiles::in_dir(&self.dir, name)
    }

    pub fn jwks(&self) -> PathBuf {
        self.dir.join(JWKS_FILE)
    }

    pub fn cec_token_key(&self) -> PathBuf {
        self.dir.join(CEC_TOKEN_KEY_FILE)
    }

    pub fn ticket_key(&self) -> PathBuf {
        self.dir.join(TICKET_KEY_FILE)
    }

    pub fn jwt_key(&self) -> PathBuf {
        self.dir.join(JWT_KEY_FILE)
    }

    pub fn exists(&self) -> bool {
        self.ca().exists() && self.jwks().exists()
    }
}

/// Makes a development PKI in `dir`: the CA, every component, the demo identities and the JWT key.
pub fn init(dir: &Path, trust_domain: &str) -> anyhow::Result<PkiDir> {
    init_with(
        &Authority::new("Chargemesh development CA")?,
        dir,
        trust_domain,
    )
}

/// [`init`] with a given CA, so a caller (a test) can issue more certificates from it later.
pub fn init_with(ca: &Authority, dir: &Path, trust_domain: &str) -> anyhow::Result<PkiDir> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("ca.pem"), &ca.cert_pem)?;
    // Development only: the CA key stays beside its certificate so `sim` can issue pile identities.
    write_private(&dir.join("ca.key"), &ca.key_pem)?;
    for component in COMPONENTS {
        issue_component(ca, dir, component, trust_domain)?;
    }
    for (name, principal) in demo_identities() {
        write_pair(
            dir,
            name,
            &ca.issue_for_days(&principal, trust_domain, &[], 825)?,
        )?;
    }
    let jwt_key = KeyPair::generate()?;
    write_private(&dir.join(JWT_KEY_FILE), &jwt_key.serialize_pem())?;
    let jwk = chargemesh_kit::jwt::es256_jwk(jwt_key.public_key_raw(), JWT_KID)?;
    std::fs::write(
        dir.join(JWKS_FILE),
        serde_json::to_string_pretty(&serde_json::json!({ "keys": [jwk] }))?,
    )?;
    write_private(&dir.join(CEC_TOKEN_KEY_FILE), &random_secret()?)?;
    write_private(&dir.join(TICKET_KEY_FILE), &random_secret()?)?;
    Ok(PkiDir {
        dir: dir.to_owned(),
    })
}

/// Issues a mesh component's service certificate into `dir`.
fn issue_component(
    ca: &Authority,
    dir: &Path,
    component: &str,
    trust_domain: &str,
) -> anyhow::Result<()> {
    let principal = Principal::Service {
        name: component.to_owned(),
    };
    let dns = format!("chargemesh-{component}");
    let names = [component, dns.as_str(), "localhost", "127.0.0.1"];
    write_pair(
        dir,
        component,
        &ca.issue_for_days(&principal, trust_domain, &names, 825)?,
    )
}

/// The PKI in `dir`, made on first use; a PKI made before a component existed gets that
/// component's certificate from its CA.
pub fn ensure(dir: &Path, trust_domain: &str) -> anyhow::Result<PkiDir> {
    let existing = PkiDir {
        dir: dir.to_owned(),
    };
    if !existing.exists() {
        return init(dir, trust_domain);
    }
    let missing: Vec<&str> = COMPONENTS
        .iter()
        .copied()
        .filter(|c| !existing.files(c).cert_file.exists())
        .collect();
    if !missing.is_empty() {
        let ca = Authority::load(dir)?;
        for component in missing {
            issue_component(&ca, dir, component, trust_domain)?;
        }
    }
    for secret in [existing.cec_token_key(), existing.ticket_key()] {
        if !secret.exists() {
            write_private(&secret, &random_secret()?)?;
        }
    }
    Ok(existing)
}

/// Mints a development staff token signed with the PKI's JWT key.
pub fn mint_token(
    pki: &PkiDir,
    subject: &str,
    operator_id: Option<&str>,
    roles: &[String],
    ttl_seconds: i64,
) -> anyhow::Result<String> {
    let key = std::fs::read(pki.jwt_key())
        .with_context(|| format!("reading {}", pki.jwt_key().display()))?;
    let now = chrono::Utc::now().timestamp();
    let claims = chargemesh_kit::jwt::StaffClaims {
        iss: JWT_ISSUER.into(),
        aud: JWT_AUDIENCE.into(),
        sub: subject.into(),
        exp: now + ttl_seconds,
        nbf: now - 5,
        iat: now,
        operator_id: operator_id.map(str::to_owned),
        roles: roles.to_vec(),
    };
    Ok(chargemesh_kit::jwt::sign_es256(&claims, &key, JWT_KID)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn netsec_1_every_private_key_is_its_owners_alone_and_written_whole() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("cm-pki-{}", uuid::Uuid::now_v7().simple()));
        let pki = init(&dir, "chargemesh.test").expect("pki");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        let keys: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "key"))
            .collect();
        for secret in [pki.cec_token_key(), pki.jwt_key(), pki.ticket_key()] {
            assert!(keys.contains(&secret), "{}", secret.display());
        }
        assert!(keys.len() > 5, "{keys:?}");
        for key in &keys {
            assert_eq!(mode(key), 0o600, "{}", key.display());
        }
        // Rewritten over a file someone left readable, the key is again its owner's alone,
        // and no temporary file is left behind.
        let key = pki.cec_token_key();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&key, "new\n").expect("rewrite");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read_to_string(&key).expect("read"), "new\n");
        assert!(std::fs::read_dir(&dir).expect("dir").all(|e| {
            !e.expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        }));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
