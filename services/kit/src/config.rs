//! Layered configuration: the component's defaults, then an optional TOML file, then
//! `CHARGEMESH_*` environment variables with `__` between levels
//! (`CHARGEMESH_DATABASE__URL` sets `database.url`).

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const ENV_PREFIX: &str = "CHARGEMESH_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Loads `T` from its defaults, the files in order (a later one overriding an earlier one, such
/// as a ConfigMap's settings then a Secret's peer credentials) and the process environment.
pub fn load<T>(files: &[&Path]) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    load_layers(&read_files(files)?, std::env::vars())
}

/// Loads `T` from its defaults, TOML texts in order and the given environment; pure, for tests.
pub fn load_layers<T>(
    toml_texts: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    load_layers_over(T::default(), toml_texts, env)
}

/// Reads the files, in order, as TOML texts.
pub fn read_files(files: &[&Path]) -> Result<Vec<String>, ConfigError> {
    files
        .iter()
        .map(|path| {
            std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Loads `T` from `base` instead of its defaults (the embedded mesh's defaults, say), then the
/// TOML texts in order and the environment: the same layering over other defaults.
pub fn load_layers_over<T>(
    base: T,
    toml_texts: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned,
{
    let mut tree = serde_json::to_value(base).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    for text in toml_texts {
        let file: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let file = serde_json::to_value(file).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        merge(&mut tree, file);
    }
    apply_env(tree, env)
}

/// Loads `T` from its defaults, TOML text and the given environment; pure, for tests.
pub fn load_from<T>(
    toml_text: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let texts: Vec<String> = toml_text.into_iter().map(str::to_owned).collect();
    load_layers(&texts, env)
}

fn apply_env<T>(
    mut tree: Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned,
{
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    overrides.sort();
    for (key, value) in overrides {
        let path: Vec<String> = key[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        set_path(&mut tree, &path, &value);
    }
    serde_json::from_value(tree).map_err(|e| ConfigError::Invalid(e.to_string()))
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (k, v) in over {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, over) => *slot = over,
    }
}

/// Sets a leaf, typed after the value it replaces, so a code such as "330600" stays a string.
fn set_path(tree: &mut Value, path: &[String], raw: &str) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for key in parents {
        if !node.is_object() {
            *node = Value::Object(Default::default());
        }
        let Value::Object(map) = node else { return };
        node = map.entry(key.clone()).or_insert(Value::Null);
    }
    if !node.is_object() {
        *node = Value::Object(Default::default());
    }
    let Value::Object(map) = node else { return };
    let slot = map.entry(last.clone()).or_insert(Value::Null);
    *slot = match slot {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Array(_) if !raw.trim_start().starts_with('[') => Value::Array(
            raw.split(',')
                .map(|s| Value::String(s.trim().to_owned()))
                .filter(|v| v.as_str() != Some(""))
                .collect(),
        ),
        _ => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
    };
}

/// A secret string that never prints.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Sample {
        listen: String,
        area: String,
        workers: u32,
        database: Db,
        peers: Vec<String>,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Db {
        url: Secret,
        max_connections: u32,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                listen: "127.0.0.1:1".into(),
                area: "330600".into(),
                workers: 2,
                database: Db {
                    url: Secret::new("sqlite://a.db"),
                    max_connections: 5,
                },
                peers: vec![],
            }
        }
    }

    #[test]
    fn defaults_then_file_then_env() {
        let file = "workers = 4\n[database]\nmax_connections = 9\n";
        let env = [
            (
                "CHARGEMESH_DATABASE__URL".to_owned(),
                "postgres://x".to_owned(),
            ),
            ("CHARGEMESH_AREA".to_owned(), "330602".to_owned()),
            ("CHARGEMESH_PEERS".to_owned(), "a, b".to_owned()),
            ("OTHER_VAR".to_owned(), "ignored".to_owned()),
        ];
        let got: Sample = load_from(Some(file), env).expect("config");
        assert_eq!(got.listen, "127.0.0.1:1");
        assert_eq!(got.workers, 4);
        assert_eq!(got.area, "330602");
        assert_eq!(got.database.max_connections, 9);
        assert_eq!(got.database.url.expose(), "postgres://x");
        assert_eq!(got.peers, vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn a_later_file_overrides_an_earlier_one_key_by_key() {
        let settings = "workers = 4\n[database]\nmax_connections = 9\nurl = \"sqlite://b.db\"\n";
        let secrets = "peers = [\"regulator\"]\n[database]\nurl = \"postgres://secret\"\n";
        let got: Sample =
            load_layers(&[settings.to_owned(), secrets.to_owned()], []).expect("config");
        assert_eq!(got.workers, 4);
        assert_eq!(got.database.max_connections, 9, "kept from the first file");
        assert_eq!(got.database.url.expose(), "postgres://secret");
        assert_eq!(got.peers, vec!["regulator".to_owned()]);
    }

    #[test]
    fn bad_values_are_refused_not_ignored() {
        let env = [("CHARGEMESH_WORKERS".to_owned(), "many".to_owned())];
        assert!(load_from::<Sample>(None, env).is_err());
        assert!(load_from::<Sample>(Some("workers = ["), []).is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}

/// A database connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://...` in production, `sqlite://path` in the embedded default.
    pub url: Secret,
    /// The PostgreSQL schema the service's tables live in; ignored on SQLite.
    pub schema: String,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            schema: String::new(),
            max_connections: 10,
        }
    }
}

/// What every mesh service needs: where it listens, its TLS files, its database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    pub listen: String,
    pub tls: crate::tls::TlsFiles,
    pub database: DatabaseConfig,
    /// How often records past retention are purged (REQ REC-3), in seconds.
    pub retention_purge_interval_s: u64,
    /// Where plaintext gRPC health answers Kubernetes' probes, such as `0.0.0.0:9090`; off when
    /// empty.
    pub admin_listen: String,
}

impl ServiceConfig {
    /// The conventional defaults of a service: its PKI files and a SQLite file under `data/`.
    pub fn for_service(name: &str, port: u16) -> Self {
        Self {
            listen: format!("0.0.0.0:{port}"),
            tls: crate::tls::TlsFiles::in_dir(Path::new("pki"), name),
            database: DatabaseConfig {
                url: Secret::new(format!("sqlite://data/{name}.db")),
                schema: name.to_owned(),
                max_connections: 10,
            },
            retention_purge_interval_s: 3_600,
            admin_listen: String::new(),
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self::for_service("service", 7000)
    }
}
