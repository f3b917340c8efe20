//! Reply wording per language, from `prompts/i18n/<lang>.toml`, loaded and
//! checked at start-up: a missing key or a stray placeholder fails start-up
//! with the file and key named, never a request.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use chrono::Locale;
use serde::Deserialize;

use crate::domain::Category;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wording {
    pub language: String,
    pub locale: String,
    pub date_format: String,
    pub time_format: String,
    pub greeting: String,
    pub greeting_named: String,
    pub sign_off: String,
    pub ack: AckWording,
    pub when: WhenWording,
    pub topic: HashMap<String, String>,
    pub auto_reply: AutoReplyWording,
    pub draft: DraftWording,
    #[serde(skip, default = "default_locale")]
    pub chrono_locale: Locale,
}

fn default_locale() -> Locale {
    Locale::en_US
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckWording {
    pub text: String,
    pub upset: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenWording {
    pub within_minutes: String,
    pub within_one_hour: String,
    pub within_hours: String,
    pub today_at: String,
    pub tomorrow_at: String,
    pub on_day_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoReplyWording {
    pub tracking: String,
    pub tracking_no_carrier: String,
    pub tracking_link: String,
    pub shipped_on: String,
    pub eta: String,
    pub not_shipped: String,
    pub kb_lead: String,
    pub closing: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftWording {
    pub empathy_anger: String,
    pub empathy_anxiety: String,
    pub empathy_frustration: String,
    pub empathy_neutral: String,
    pub order_ref: String,
    pub next_step: String,
    pub kb_lead: String,
}

impl Wording {
    pub fn topic(&self, category: Category) -> &str {
        self.topic.get(category.as_str()).map_or("", String::as_str)
    }

    /// Every template with the placeholders it may use.
    fn templates(&self) -> Vec<(&'static str, &str, &'static [&'static str])> {
        let a = &self.auto_reply;
        let d = &self.draft;
        let w = &self.when;
        vec![
            ("greeting", &self.greeting, &[]),
            ("greeting_named", &self.greeting_named, &["name"]),
            ("sign_off", &self.sign_off, &[]),
            ("ack.text", &self.ack.text, &["topic", "when", "reference"]),
            ("ack.upset", &self.ack.upset, &[]),
            ("when.within_minutes", &w.within_minutes, &["n"]),
            ("when.within_one_hour", &w.within_one_hour, &[]),
            ("when.within_hours", &w.within_hours, &["n"]),
            ("when.today_at", &w.today_at, &["time"]),
            ("when.tomorrow_at", &w.tomorrow_at, &["time"]),
            ("when.on_day_at", &w.on_day_at, &["date", "time"]),
            (
                "auto_reply.tracking",
                &a.tracking,
                &["order_id", "carrier", "tracking_number"],
            ),
            (
                "auto_reply.tracking_no_carrier",
                &a.tracking_no_carrier,
                &["order_id", "tracking_number"],
            ),
            (
                "auto_reply.tracking_link",
                &a.tracking_link,
                &["tracking_url"],
            ),
            ("auto_reply.shipped_on", &a.shipped_on, &["date"]),
            ("auto_reply.eta", &a.eta, &["date"]),
            ("auto_reply.not_shipped", &a.not_shipped, &["order_id"]),
            ("auto_reply.kb_lead", &a.kb_lead, &[]),
            ("auto_reply.closing", &a.closing, &[]),
            ("draft.empathy_anger", &d.empathy_anger, &[]),
            ("draft.empathy_anxiety", &d.empathy_anxiety, &[]),
            ("draft.empathy_frustration", &d.empathy_frustration, &[]),
            ("draft.empathy_neutral", &d.empathy_neutral, &[]),
            ("draft.order_ref", &d.order_ref, &["order_id"]),
            ("draft.next_step", &d.next_step, &[]),
            ("draft.kb_lead", &d.kb_lead, &[]),
        ]
    }

    fn validate(&self) -> anyhow::Result<()> {
        for (key, template, allowed) in self.templates() {
            if template.trim().is_empty() {
                bail!("{key} is empty");
            }
            for name in placeholders(template) {
                if !allowed.contains(&name) {
                    bail!("{key} uses {{{name}}}, which is not one of {allowed:?}");
                }
            }
        }
        for category in Category::ALL {
            if self.topic(category).trim().is_empty() {
                bail!("topic.{category} is missing");
            }
        }
        Ok(())
    }
}

/// The `{name}` placeholders in a template.
pub(crate) fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        names.push(&rest[open + 1..open + close]);
        rest = &rest[open + close + 1..];
    }
    names
}

/// Replaces `{name}` placeholders.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// Wording for every language, English as the fallback.
#[derive(Debug)]
pub struct Prompts {
    by_language: HashMap<String, Wording>,
}

impl Prompts {
    /// Loads `dir/i18n/*.toml`; fails naming the file and key at fault.
    pub fn load(dir: &Path) -> anyhow::Result<Prompts> {
        let i18n = dir.join("i18n");
        let mut by_language = HashMap::new();
        let entries =
            std::fs::read_dir(&i18n).with_context(|| format!("reading {}", i18n.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|ext| ext != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path)?;
            let mut wording: Wording = toml::from_str(&text)
                .with_context(|| format!("bad prompt template {}", path.display()))?;
            wording
                .validate()
                .with_context(|| format!("bad prompt template {}", path.display()))?;
            wording.chrono_locale = Locale::try_from(wording.locale.as_str()).map_err(|_| {
                anyhow::anyhow!(
                    "bad prompt template {}: unknown locale {:?}",
                    path.display(),
                    wording.locale
                )
            })?;
            by_language.insert(wording.language.clone(), wording);
        }
        if !by_language.contains_key("en") {
            bail!(
                "{} has no en.toml: English is the fallback for every language",
                i18n.display()
            );
        }
        Ok(Prompts { by_language })
    }

    /// The wording for `language`, or English.
    pub fn wording(&self, language: &str) -> &Wording {
        self.by_language
            .get(language)
            .or_else(|| self.by_language.get("en"))
            .expect("English wording is checked at load")
    }

    pub fn has_language(&self, language: &str) -> bool {
        self.by_language.contains_key(language)
    }

    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.by_language.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_prompts_load_and_validate() {
        let prompts =
            Prompts::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")).unwrap();
        assert_eq!(prompts.wording("en").language, "en");
        assert_eq!(prompts.wording("xx").language, "en");
        assert!(prompts.languages().count() >= 12);
    }

    #[test]
    fn a_stray_placeholder_fails_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("i18n")).unwrap();
        let en = include_str!("../prompts/i18n/en.toml").replace("{reference}", "{refrence}");
        std::fs::write(dir.path().join("i18n/en.toml"), en).unwrap();
        let error = format!("{:#}", Prompts::load(dir.path()).unwrap_err());
        assert!(error.contains("ack.text"), "{error}");
        assert!(error.contains("refrence"), "{error}");
    }

    #[test]
    fn fill_replaces_placeholders() {
        assert_eq!(fill("{a} and {b}", &[("a", "1"), ("b", "2")]), "1 and 2");
    }
}
