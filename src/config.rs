//! The configuration of every role: defaults, then `--config FILE` (TOML), then `CHARGEMESH_*`
//! environment variables (`CHARGEMESH_ASSET__DATABASE__URL=postgres://...`).

use serde::{Deserialize, Serialize};

use chargemesh_asset::telemetry::TelemetrySettings;
use chargemesh_asset::telemetry::trial::TrialSettings;
use chargemesh_complaints::ComplaintsConfig;
use chargemesh_dispatch::DispatchConfig;
use chargemesh_gateway::GatewayConfig;
use chargemesh_kit::config::ServiceConfig;
use chargemesh_kit::telemetry::LogFormat;
use chargemesh_metering::MeteringConfig;
use chargemesh_reporting::ReportingConfig;

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
    pub asset: ServiceConfig,
    pub reporting: ReportingConfig,
    pub dispatch: DispatchConfig,
    pub metering: MeteringConfig,
    pub complaints: ComplaintsConfig,
    /// Live telemetry, served by the asset component.
    pub telemetry: TelemetrySettings,
    /// Trial operation and what commissioning asks of it (REQ BASE-2).
    pub trial: TrialSettings,
    pub events: EventsConfig,
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
        // The components' default ports; the asset component serves three of them.
        let gateway = GatewayConfig {
            upstreams: [
                ("asset", 7001),
                ("telemetry", 7001),
                ("regulator", 7001),
                ("dispatch", 7002),
                ("metering", 7003),
                ("complaints", 7004),
                ("reporting", 7005),
            ]
            .into_iter()
            .map(|(c, port)| (c.to_owned(), format!("https://127.0.0.1:{port}")))
            .collect(),
            ..GatewayConfig::default()
        };
        Self {
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            log_format: LogFormat::Text,
            shutdown_grace_s: crate::mesh::DEFAULT_SHUTDOWN_GRACE.as_secs(),
            gateway,
            asset: ServiceConfig::for_service("asset", 7001),
            reporting: ReportingConfig::default(),
            dispatch: DispatchConfig::default(),
            metering: MeteringConfig::default(),
            complaints: ComplaintsConfig::default(),
            telemetry: TelemetrySettings::default(),
            trial: TrialSettings::default(),
            events: EventsConfig::default(),
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
        assert_eq!(cfg.asset.database.url.expose(), "postgres://db/chargemesh");
        assert_eq!(cfg.gateway.upstreams["asset"], "https://asset:7001");
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.asset.database.schema, "asset");
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
        assert_eq!(cfg.gateway.upstreams["telemetry"], "https://127.0.0.1:7001");
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
