//! The configuration of every role: defaults, then `--config FILE` (TOML), then `CHARGEMESH_*`
//! environment variables (`CHARGEMESH_ASSET__DATABASE__URL=postgres://...`). `chargemesh up`
//! layers the same files and variables over the embedded defaults ([`Config::embedded`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use chargemesh_asset::AssetConfig;
use chargemesh_complaints::ComplaintsConfig;
use chargemesh_console::ConsoleConfig;
use chargemesh_dispatch::DispatchConfig;
use chargemesh_gateway::{GatewayConfig, JwtSettings};
use chargemesh_kit::config::{DatabaseConfig, Secret, ServiceConfig};
use chargemesh_kit::telemetry::LogFormat;
use chargemesh_metering::MeteringConfig;
use chargemesh_reporting::ReportingConfig;
use chargemesh_telemetry::TelemetryConfig;

use crate::pki;

pub const DEFAULT_TRUST_DOMAIN: &str = "chargemesh.local";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The SPIFFE trust domain of every certificate identity.
    pub trust_domain: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Seconds a stopping component gives its calls and streams to finish after SIGTERM (the
    /// gateway ends its long-lived streams at once and waits this long for the rest); keep it
    /// below the pod's termination grace period.
    pub shutdown_grace_s: u64,
    pub gateway: GatewayConfig,
    pub asset: AssetConfig,
    /// Live telemetry: ingest, liveness, status, commands and trial operation.
    pub telemetry: TelemetryConfig,
    pub reporting: ReportingConfig,
    pub dispatch: DispatchConfig,
    pub metering: MeteringConfig,
    pub complaints: ComplaintsConfig,
    pub events: EventsConfig,
    /// The operator console (a web application that calls the gateway as the signed-in person).
    pub console: ConsoleConfig,
}

/// The event bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsConfig {
    /// `redis://host:6379` for Redis Streams; empty for the in-process bus (one process only).
    pub url: String,
    /// Prefix of every stream key.
    pub prefix: String,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            prefix: "chargemesh:".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut config = Self {
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            log_format: LogFormat::Text,
            shutdown_grace_s: chargemesh_kit::component::DEFAULT_SHUTDOWN_GRACE.as_secs(),
            gateway: GatewayConfig::default(),
            asset: AssetConfig::default(),
            telemetry: TelemetryConfig::default(),
            reporting: ReportingConfig::default(),
            dispatch: DispatchConfig::default(),
            metering: MeteringConfig::default(),
            complaints: ComplaintsConfig::default(),
            events: EventsConfig::default(),
            console: ConsoleConfig::default(),
        };
        // Each component on its default port of this host.
        let urls: BTreeMap<&str, String> = crate::mesh::COMPONENTS
            .iter()
            .map(|c| {
                let port = (c.service)(&mut config)
                    .listen
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                (c.name, format!("https://127.0.0.1:{port}"))
            })
            .collect();
        config.point_at(&urls);
        config
    }
}

impl Config {
    /// The embedded defaults of `chargemesh up`: every component on 127.0.0.1 (a port the
    /// system picks), its SQLite file and its development PKI files in `data_dir`, staff tokens
    /// from the PKI's key, the in-process bus. The configuration file and the environment
    /// layer over these exactly as over the defaults of `serve`.
    pub fn embedded(data_dir: &Path) -> Self {
        let pki = pki::PkiDir {
            dir: data_dir.join("pki"),
        };
        let mut config = Self::default();
        for component in crate::mesh::COMPONENTS {
            let name = component.name;
            let service = (component.service)(&mut config);
            *service = ServiceConfig {
                listen: "127.0.0.1:0".into(),
                tls: pki.files(name),
                database: DatabaseConfig {
                    url: Secret::new(chargemesh_kit::db::Database::sqlite_url(
                        &data_dir.join(format!("{name}.db")),
                    )),
                    schema: name.to_owned(),
                    max_connections: 5,
                },
                retention_purge_interval_s: service.retention_purge_interval_s,
                admin_listen: String::new(),
            };
        }
        config.gateway.listen = "127.0.0.1:7443".into();
        config.gateway.tls = chargemesh_kit::tls::TlsFiles {
            ticket_key_file: Some(pki.ticket_key()),
            ..pki.files("gateway")
        };
        config.gateway.jwt = Some(JwtSettings {
            jwks_file: pki.jwks(),
            issuer: pki::JWT_ISSUER.into(),
            audience: pki::JWT_AUDIENCE.into(),
            roles_claim: "roles".into(),
            operator_claim: "operator_id".into(),
        });
        config.gateway.cec.token_key_file = pki.cec_token_key().display().to_string();
        config
    }

    /// Points every component, and the gateway, at the others' URLs (component name to URL).
    /// Who calls whom is written here once.
    pub fn point_at(&mut self, urls: &BTreeMap<&str, String>) {
        let url = |name: &str| urls.get(name).cloned().unwrap_or_default();
        self.gateway.upstreams = urls
            .iter()
            .map(|(name, url)| ((*name).to_owned(), url.clone()))
            .collect();
        self.asset.telemetry_url = url("telemetry");
        self.telemetry.asset_url = url("asset");
        self.dispatch.asset_url = url("asset");
        self.dispatch.telemetry_url = url("telemetry");
        self.metering.asset_url = url("asset");
        self.metering.telemetry_url = url("telemetry");
        self.complaints.dispatch_url = url("dispatch");
        self.complaints.metering_url = url("metering");
        self.reporting.asset_url = url("asset");
        self.reporting.telemetry_url = url("telemetry");
        self.reporting.dispatch_url = url("dispatch");
        self.reporting.metering_url = url("metering");
        self.reporting.complaints_url = url("complaints");
    }

    /// Every component's database on PostgreSQL at `url`, each in its own schema named
    /// `<prefix><component>`.
    pub fn use_postgres(&mut self, url: &str, schema_prefix: &str) {
        for component in crate::mesh::COMPONENTS {
            let database = &mut (component.service)(self).database;
            database.url = Secret::new(url);
            database.schema = format!("{schema_prefix}{}", component.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_peers_file_layers_over_the_settings() {
        let settings = "[gateway.cec]\nlisten = \"0.0.0.0:8443\"\noperator_id = \"MA01H3BQ2\"\n\n\
                        [reporting.cec_push]\noperator_id = \"MA01H3BQ2\"\n";
        let peers = include_str!("../deploy/examples/peers.toml");
        let cfg: Config =
            chargemesh_kit::config::load_layers(&[settings.to_owned(), peers.to_owned()], [])
                .expect("config");
        assert_eq!(
            cfg.gateway.cec.listen, "0.0.0.0:8443",
            "kept from the settings"
        );
        assert_eq!(cfg.gateway.cec.operator_id, "MA01H3BQ2");
        assert_eq!(cfg.gateway.cec.peers.len(), 1);
        assert!(cfg.gateway.cec.peers[0].inbound.secrets().is_ok());
        let pushed = &cfg.reporting.cec_push.peers[0];
        assert!(pushed.push_url.is_some() && pushed.outbound.is_some());
        assert_eq!(cfg.reporting.cec_push.operator_id, "MA01H3BQ2");
    }

    #[test]
    fn env_overrides_reach_nested_sections() {
        let env = [
            (
                "CHARGEMESH_ASSET__DATABASE__URL".to_owned(),
                "postgres://db/chargemesh".to_owned(),
            ),
            (
                "CHARGEMESH_GATEWAY__UPSTREAMS__ASSET".to_owned(),
                "https://asset:7001".to_owned(),
            ),
            ("CHARGEMESH_LOG_FORMAT".to_owned(), "json".to_owned()),
        ];
        let cfg: Config = chargemesh_kit::config::load_from(None, env).expect("config");
        assert_eq!(
            cfg.asset.service.database.url.expose(),
            "postgres://db/chargemesh"
        );
        assert_eq!(cfg.gateway.upstreams["asset"], "https://asset:7001");
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.asset.service.database.schema, "asset");
        assert_eq!(
            cfg.gateway.upstreams["metering"], "https://127.0.0.1:7003",
            "the documented default"
        );
    }

    #[test]
    fn the_readme_example_configuration_loads() {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + readme[start..].find("```").expect("its end");
        let cfg: Config =
            chargemesh_kit::config::load_from(Some(&readme[start..end]), []).expect("loads");
        assert_eq!(cfg.reporting.service.listen, "127.0.0.1:7005");
        assert_eq!(cfg.reporting.service.database.schema, "reporting");
        assert_eq!(cfg.gateway.upstreams["telemetry"], "https://127.0.0.1:7006");
        assert_eq!(cfg.telemetry.asset_url, "https://127.0.0.1:7001");
        assert_eq!(cfg.reporting.telemetry_url, "https://127.0.0.1:7006");
        assert_eq!(cfg.events.url, "redis://127.0.0.1:6379");
        assert_eq!(cfg.dispatch.asset_url, "https://127.0.0.1:7001");
        assert_eq!(cfg.gateway.upstreams["dispatch"], "https://127.0.0.1:7002");
        assert_eq!(cfg.gateway.upstreams["metering"], "https://127.0.0.1:7003");
        assert_eq!(cfg.metering.service.database.schema, "metering");
        assert_eq!(cfg.complaints.service.listen, "127.0.0.1:7004");
        assert_eq!(
            cfg.gateway.upstreams["complaints"],
            "https://127.0.0.1:7004"
        );
        assert!(cfg.gateway.jwt.is_some());
    }
}
