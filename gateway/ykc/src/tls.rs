//! TLS for YKC piles and tunnel boxes that can use it (offered, never required: the protocol's
//! own transport is plain TCP). The server presents the gateway's certificate; TLS 1.2 is
//! accepted beside 1.3, as embedded pile firmware often has no 1.3. The pile is still known by
//! its source network and pile code (REQ NETSEC-1), not by a client certificate.

use std::sync::Arc;

use rustls::ServerConfig;

use chargemesh_kit::tls::{self, ReloadingServerConfig, TlsError, TlsFiles};

/// The YKC TLS listener's configuration, rebuilt when the gateway's certificate files change.
/// Sessions resume from tickets (see `chargemesh_kit::tls::SessionTickets`); with no client
/// certificate there is nothing to check again on resumption.
pub fn server_config(files: &TlsFiles) -> Result<ReloadingServerConfig, TlsError> {
    let tickets = tls::SessionTickets::new()?;
    let build = move |files: &TlsFiles| build(files, &tickets);
    ReloadingServerConfig::custom(files.clone(), Vec::new(), Arc::new(build))
}

fn build(files: &TlsFiles, tickets: &tls::SessionTickets) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(
            tls::load_certs(&files.cert_file)?,
            tls::load_key(&files.key_file)?,
        )?;
    tickets.apply(&mut config, files)?;
    Ok(config)
}
