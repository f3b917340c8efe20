//! Guardrails on every LLM output, before a buyer or an agent sees it.
//!
//! - PII never leaves the service: e-mail addresses, phone numbers, card
//!   numbers (Luhn-checked) and IBANs (mod-97-checked) in the buyer's text are
//!   replaced by placeholders (`[EMAIL_1]`) before a prompt is built, and
//!   restored in the output only where the buyer wrote them (cards masked).
//! - An output is refused when it is malformed (template tokens, role turns,
//!   echoed prompt delimiters, unknown placeholders, empty or overlong), not in
//!   the buyer's language, carries PII that neither the buyer nor the order
//!   gave, or promises what the data does not give: an amount, a number or a
//!   date found in neither the buyer's message, the order data nor the
//!   knowledge given; and, in auto-replies, a refund, compensation, voucher,
//!   replacement or free item.
//!
//! A refused output falls back to the template, and the reason is recorded.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::LazyLock;

use anyhow::Context;
use regex::Regex;
use serde::Deserialize;

use crate::domain::Customer;
use crate::stages::language::{LanguageDetector, LanguageHints};

/// The prompts delimit the buyer's message as `<<<BUYER MESSAGE` …
/// `BUYER MESSAGE>>>`: an output with any part of that is leaking the prompt.
const BUYER_MARK: &str = "BUYER MESSAGE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    Email,
    Phone,
    Card,
    Iban,
}

impl PiiKind {
    fn tag(self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Phone => "PHONE",
            PiiKind::Card => "CARD",
            PiiKind::Iban => "IBAN",
        }
    }

    fn parse(tag: &str) -> Option<PiiKind> {
        [PiiKind::Email, PiiKind::Phone, PiiKind::Card, PiiKind::Iban]
            .into_iter()
            .find(|k| k.tag() == tag)
    }
}

/// One piece of PII found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pii {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
    pub value: String,
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
        .expect("valid regex")
});
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b").expect("valid regex")
});
static CARD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9](?:[ \-]?[0-9]){12,18}").expect("valid regex"));
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\(?[0-9](?:[ ().\-]{0,2}[0-9])+").expect("valid regex"));
static DATE_SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[0-9]{1,4}[./\-][0-9]{1,2}[./\-][0-9]{1,4}|[0-9]{1,2}[./][0-9]{1,2}\.?)$")
        .expect("valid regex")
});
static DIGITS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[0-9]+").expect("valid regex"));
static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[(EMAIL|PHONE|CARD|IBAN)_([0-9]+)\]").expect("valid regex"));
/// A number next to a currency sign, code or word, either side.
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    let currency = r"(?:[$€£¥₩₹]|R\$|CA\$|A\$|US\$|HK\$|S\$|RM|Rp|zł|PLN|USD|EUR|GBP|JPY|CNY|RMB|KRW|MYR|IDR|SGD|AUD|CAD|BRL|元|円|圆|块|원|dollars?|euros?|złotych|złote|ringgit|rupiah|yen|yuan|won|pounds?)";
    Regex::new(&format!(
        r"(?i){currency}\s?[0-9][0-9.,]*|[0-9][0-9.,]*\s?{currency}"
    ))
    .expect("valid regex")
});
const TEMPLATE_TOKENS: [&str; 7] = [
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "</s>",
    "[INST]",
    "[/INST]",
    "<|assistant|>",
];
static ROLE_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?im)^\s*(?:assistant|user|system)\s*:").expect("valid regex"));

fn digits_of(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

fn iban_valid(candidate: &str) -> bool {
    let compact: String = candidate.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        for digit in value.to_string().chars() {
            remainder = (remainder * 10 + digit.to_digit(10).unwrap_or(0)) % 97;
        }
    }
    remainder == 1
}

/// Every e-mail, IBAN, card number and phone number in `text`, in order, not
/// overlapping.
pub fn find_pii(text: &str) -> Vec<Pii> {
    let mut found: Vec<Pii> = Vec::new();
    // Earlier kinds win where matches overlap.
    let mut add = |kind: PiiKind, start: usize, value: &str| {
        let end = start + value.len();
        if found.iter().all(|p| end <= p.start || p.end <= start) {
            found.push(Pii {
                kind,
                start,
                end,
                value: value.to_string(),
            });
        }
    };
    for m in EMAIL.find_iter(text) {
        add(PiiKind::Email, m.start(), m.as_str());
    }
    for m in IBAN.find_iter(text).filter(|m| iban_valid(m.as_str())) {
        add(PiiKind::Iban, m.start(), m.as_str());
    }
    for m in CARD.find_iter(text) {
        let digits = digits_of(m.as_str());
        if (13..=19).contains(&digits.len()) && luhn(&digits) {
            add(PiiKind::Card, m.start(), m.as_str());
        }
    }
    for m in PHONE.find_iter(text) {
        let value = m.as_str().trim_end_matches(['(', ')', '.', '-', ' ']);
        if digits_of(value).len() >= 8 && !DATE_SHAPE.is_match(value) {
            add(PiiKind::Phone, m.start(), value);
        }
    }
    found.sort_by_key(|p| p.start);
    found
}

/// A text with its PII replaced by placeholders, and the way back.
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    pub text: String,
    /// (placeholder, kind, what the buyer wrote)
    entries: Vec<(String, PiiKind, String)>,
}

impl Redaction {
    /// Redacts `text`, leaving alone values that are not personal data here
    /// (`keep`: the order id and tracking number, which often look like phone
    /// or card numbers).
    pub fn new(text: &str, keep: &[&str]) -> Redaction {
        let keep: HashSet<String> = keep
            .iter()
            .filter(|k| !k.is_empty())
            .map(|k| digits_or_text(k))
            .collect();
        let mut redaction = Redaction::default();
        let mut counts: HashMap<PiiKind, usize> = HashMap::new();
        let mut by_value: HashMap<(PiiKind, String), String> = HashMap::new();
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for pii in find_pii(text) {
            if keep.contains(&digits_or_text(&pii.value)) {
                continue;
            }
            out.push_str(&text[last..pii.start]);
            let key = (pii.kind, digits_or_text(&pii.value));
            let placeholder = by_value.entry(key).or_insert_with(|| {
                let n = counts.entry(pii.kind).or_default();
                *n += 1;
                let placeholder = format!("[{}_{n}]", pii.kind.tag());
                redaction
                    .entries
                    .push((placeholder.clone(), pii.kind, pii.value.clone()));
                placeholder
            });
            out.push_str(placeholder);
            last = pii.end;
        }
        out.push_str(&text[last..]);
        redaction.text = out;
        redaction
    }

    /// Puts back what the buyer wrote (card numbers masked to their last four
    /// digits); a placeholder the buyer's text did not produce is refused.
    pub fn restore(&self, output: &str) -> Result<String, GuardFailure> {
        let mut failure = None;
        let restored = PLACEHOLDER.replace_all(output, |caps: &regex::Captures<'_>| {
            let placeholder = &caps[0];
            match self.entries.iter().find(|(p, _, _)| p == placeholder) {
                Some((_, PiiKind::Card, value)) => {
                    let digits = digits_of(value);
                    format!("•••• {}", &digits[digits.len().saturating_sub(4)..])
                }
                Some((_, _, value)) => value.clone(),
                None => {
                    let kind = PiiKind::parse(&caps[1]).map_or("?", PiiKind::tag);
                    failure.get_or_insert(GuardFailure::new(
                        Check::Malformed,
                        format!("placeholder {placeholder} ({kind}) is not in the buyer's message"),
                    ));
                    placeholder.to_string()
                }
            }
        });
        match failure {
            Some(failure) => Err(failure),
            None => Ok(restored.into_owned()),
        }
    }
}

/// Digits only for number-like values, lower case for the rest: how PII is
/// compared.
fn digits_or_text(value: &str) -> String {
    if value.contains('@') {
        value.to_lowercase()
    } else {
        let digits = digits_of(value);
        if digits.len() >= 8 {
            digits
        } else {
            value.to_lowercase().replace(' ', "")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Malformed,
    Language,
    Pii,
    Promise,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Malformed => "malformed",
            Check::Language => "language",
            Check::Pii => "pii",
            Check::Promise => "promise",
        }
    }
}

/// Why an output was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardFailure {
    pub check: Check,
    pub detail: String,
}

impl GuardFailure {
    pub fn new(check: Check, detail: impl Into<String>) -> GuardFailure {
        GuardFailure {
            check,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for GuardFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} check failed: {}", self.check.as_str(), self.detail)
    }
}

/// Who reads the output first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// Sent to the buyer with no person in between.
    AutoReply,
    /// Read by an agent before anything is sent.
    Draft,
}

/// What an output may rest on.
#[derive(Debug, Clone, Default)]
pub struct Grounding<'a> {
    /// The buyer's message as written.
    pub buyer: &'a str,
    /// Order fields, dates as `YYYY-MM-DD`.
    pub order: Vec<String>,
    /// The knowledge-base answers the model was given.
    pub knowledge: Vec<&'a str>,
    /// Pieces of the prompt's own wording (instructions, headings, article
    /// markers): an output repeating one is echoing the prompt.
    pub echo: Vec<String>,
}

impl Grounding<'_> {
    fn numbers(texts: &[&str]) -> HashSet<String> {
        texts
            .iter()
            .flat_map(|t| DIGITS.find_iter(t))
            .map(|m| normalise_number(m.as_str()))
            .collect()
    }

    fn order_and_knowledge(&self) -> Vec<&str> {
        self.order
            .iter()
            .map(String::as_str)
            .chain(self.knowledge.iter().copied())
            .collect()
    }

    fn everything(&self) -> Vec<&str> {
        let mut texts = self.order_and_knowledge();
        texts.push(self.buyer);
        texts
    }
}

fn normalise_number(digits: &str) -> String {
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardrailsFile {
    promises: HashMap<String, Vec<String>>,
}

/// The output checks, with the commitment phrases of every language.
pub struct Guardrails {
    promises: HashMap<String, Vec<String>>,
    max_chars: usize,
}

/// Outputs shorter than this are not a reply.
const MIN_CHARS: usize = 10;
/// Below this many letters the language of an output is not judged.
const MIN_LETTERS_FOR_LANGUAGE: usize = 20;

impl Guardrails {
    /// Loads `prompts/llm/guardrails.toml`.
    pub fn load(path: &Path, max_chars: usize) -> anyhow::Result<Guardrails> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: GuardrailsFile =
            toml::from_str(&text).with_context(|| format!("bad guardrails {}", path.display()))?;
        anyhow::ensure!(
            file.promises.contains_key("en"),
            "bad guardrails {}: [promises] needs `en`, checked in every language",
            path.display()
        );
        let promises = file
            .promises
            .into_iter()
            .map(|(lang, phrases)| {
                let phrases = phrases
                    .into_iter()
                    .map(|p| p.to_lowercase())
                    .filter(|p| !p.trim().is_empty())
                    .collect();
                (lang, phrases)
            })
            .collect();
        Ok(Guardrails {
            promises,
            max_chars,
        })
    }

    /// Checks a whole, restored output; the first failing check, in the
    /// order malformed, language, PII, promise.
    pub fn check(
        &self,
        output: &str,
        kind: ReplyKind,
        language: &str,
        grounding: &Grounding<'_>,
        detector: &dyn LanguageDetector,
    ) -> Result<(), GuardFailure> {
        let chars = output.trim().chars().count();
        if chars < MIN_CHARS {
            return Err(GuardFailure::new(
                Check::Malformed,
                format!("{chars} characters: too short to be a reply"),
            ));
        }
        if chars > self.max_chars {
            return Err(GuardFailure::new(
                Check::Malformed,
                format!("{chars} characters: longer than {}", self.max_chars),
            ));
        }
        self.check_structure(output, grounding)?;
        check_language(output, language, detector)?;
        self.check_facts(output, kind, language, grounding)
    }

    /// The checks that hold for any prefix of an output: run on a streamed
    /// draft before each chunk reaches the agent.
    pub fn check_partial(
        &self,
        output: &str,
        kind: ReplyKind,
        language: &str,
        grounding: &Grounding<'_>,
    ) -> Result<(), GuardFailure> {
        if output.chars().count() > self.max_chars {
            return Err(GuardFailure::new(
                Check::Malformed,
                format!("longer than {} characters", self.max_chars),
            ));
        }
        self.check_structure(output, grounding)?;
        self.check_facts(output, kind, language, grounding)
    }

    fn check_structure(&self, output: &str, grounding: &Grounding<'_>) -> Result<(), GuardFailure> {
        if let Some(echo) = grounding.echo.iter().find(|e| output.contains(e.as_str())) {
            return Err(GuardFailure::new(
                Check::Malformed,
                format!("repeats the prompt ({echo:?})"),
            ));
        }
        if let Some(token) = TEMPLATE_TOKENS.iter().find(|t| output.contains(**t)) {
            return Err(GuardFailure::new(
                Check::Malformed,
                format!("contains the chat-template token {token}"),
            ));
        }
        if ROLE_LINE.is_match(output) {
            return Err(GuardFailure::new(
                Check::Malformed,
                "contains a role turn (assistant:/user:/system:)",
            ));
        }
        // Any part of the delimiters, e.g. "BUYER MESSAGE>>" cut short.
        if output.contains(BUYER_MARK) {
            return Err(GuardFailure::new(
                Check::Malformed,
                "repeats the prompt's delimiters",
            ));
        }
        if let Some(m) = PLACEHOLDER.find(output) {
            return Err(GuardFailure::new(
                Check::Malformed,
                format!("placeholder {} is not in the buyer's message", m.as_str()),
            ));
        }
        Ok(())
    }

    fn check_facts(
        &self,
        output: &str,
        kind: ReplyKind,
        language: &str,
        grounding: &Grounding<'_>,
    ) -> Result<(), GuardFailure> {
        let known: HashSet<String> = grounding
            .everything()
            .iter()
            .flat_map(|t| find_pii(t))
            .map(|p| digits_or_text(&p.value))
            .chain(grounding.order.iter().map(|o| digits_or_text(o)))
            .collect();
        let pii = find_pii(output);
        if let Some(leak) = pii
            .iter()
            .find(|p| !known.contains(&digits_or_text(&p.value)))
        {
            return Err(GuardFailure::new(
                Check::Pii,
                format!(
                    "{} {:?} is in neither the buyer's message nor the order",
                    leak.kind.tag().to_lowercase(),
                    leak.value
                ),
            ));
        }
        let backed = Grounding::numbers(&grounding.order_and_knowledge());
        for amount in AMOUNT.find_iter(output) {
            if let Some(number) = DIGITS
                .find_iter(amount.as_str())
                .map(|m| normalise_number(m.as_str()))
                .find(|n| !backed.contains(n))
            {
                return Err(GuardFailure::new(
                    Check::Promise,
                    format!(
                        "the amount {:?} ({number}) is in neither the order nor the knowledge base",
                        amount.as_str()
                    ),
                ));
            }
        }
        let mut grounded = Grounding::numbers(&grounding.everything());
        // A card the buyer gave comes back masked to its last four digits.
        grounded.extend(
            find_pii(grounding.buyer)
                .iter()
                .filter(|p| p.kind == PiiKind::Card)
                .map(|p| {
                    let digits = digits_of(&p.value);
                    normalise_number(&digits[digits.len().saturating_sub(4)..])
                }),
        );
        let outside_pii = |start: usize| !pii.iter().any(|p| p.start <= start && start < p.end);
        if let Some(number) = DIGITS
            .find_iter(output)
            .filter(|m| outside_pii(m.start()))
            .find(|m| !grounded.contains(&normalise_number(m.as_str())))
        {
            return Err(GuardFailure::new(
                Check::Promise,
                format!(
                    "the number {} is in neither the buyer's message, the order nor the knowledge base",
                    number.as_str()
                ),
            ));
        }
        if kind == ReplyKind::AutoReply {
            let lower = output.to_lowercase();
            let knowledge = grounding.knowledge.join("\n").to_lowercase();
            let phrases = self
                .promises
                .get(language)
                .into_iter()
                .chain(self.promises.get("en"))
                .flatten();
            for phrase in phrases {
                // A commitment the knowledge base itself states is policy.
                if lower.contains(phrase.as_str()) && !knowledge.contains(phrase.as_str()) {
                    return Err(GuardFailure::new(
                        Check::Promise,
                        format!("an auto-reply commits to {phrase:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The output's language must be the buyer's (Malay and Indonesian count as
/// one: no detector tells them apart reliably).
fn check_language(
    output: &str,
    language: &str,
    detector: &dyn LanguageDetector,
) -> Result<(), GuardFailure> {
    let letters = output.chars().filter(|c| c.is_alphabetic()).count();
    if letters < MIN_LETTERS_FOR_LANGUAGE {
        return Ok(());
    }
    let detected = detector.detect(
        output,
        LanguageHints {
            customer: &Customer::default(),
            marketplace: "",
        },
    );
    let same = |a: &str, b: &str| a == b || (matches!(a, "ms" | "id") && matches!(b, "ms" | "id"));
    if same(&detected.code, language) {
        Ok(())
    } else {
        Err(GuardFailure::new(
            Check::Language,
            format!("written in {}, the buyer writes {language}", detected.code),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_need_luhn_and_ibans_need_their_checksum() {
        let kinds =
            |text: &str| -> Vec<PiiKind> { find_pii(text).iter().map(|p| p.kind).collect() };
        assert_eq!(kinds("card 4111 1111 1111 1111 ok"), [PiiKind::Card]);
        // One digit off: not a card, but long enough to be a phone number.
        assert_eq!(kinds("card 4111 1111 1111 1112"), [PiiKind::Phone]);
        assert_eq!(kinds("IBAN DE89 3704 0044 0532 0130 00"), [PiiKind::Iban]);
        assert_eq!(kinds("IBAN DE88 3704 0044 0532 0130 00"), [PiiKind::Phone]);
        assert_eq!(kinds("mail me: a.b@shop.example.com"), [PiiKind::Email]);
        assert_eq!(kinds("热线400-820-1234"), [PiiKind::Phone]);
        assert!(kinds("arrives 28.11.2026, order 4411").is_empty());
    }

    #[test]
    fn redaction_round_trips_and_masks_cards() {
        let text = "Refund to DE89 3704 0044 0532 0130 00 or card 4111-1111-1111-1111, \
                    mail jo@x.com, again jo@x.com. Order 302-1234567-1234567";
        let redaction = Redaction::new(text, &["302-1234567-1234567"]);
        assert_eq!(
            redaction.text,
            "Refund to [IBAN_1] or card [CARD_1], mail [EMAIL_1], again [EMAIL_1]. \
             Order 302-1234567-1234567"
        );
        assert_eq!(
            redaction
                .restore("We noted [EMAIL_1] and [CARD_1].")
                .unwrap(),
            "We noted jo@x.com and •••• 1111."
        );
        let failure = redaction.restore("Call [PHONE_1]").unwrap_err();
        assert_eq!(failure.check, Check::Malformed);
    }

    #[derive(Deserialize)]
    struct Corpus {
        case: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        kind: String,
        language: String,
        buyer: String,
        #[serde(default)]
        order: HashMap<String, String>,
        #[serde(default)]
        knowledge: Vec<String>,
        output: String,
        verdict: String,
    }

    /// The hostile-output corpus: every case gets its verdict, whatever a
    /// model would have written.
    #[test]
    fn the_output_corpus_gets_its_verdicts() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let guardrails = Guardrails::load(&root.join("prompts/llm/guardrails.toml"), 1500).unwrap();
        let detector = crate::stages::language::LinguaDetector::new(10, 0.55);
        let text =
            std::fs::read_to_string(root.join("tests/data/guardrails/outputs.toml")).unwrap();
        let corpus: Corpus = toml::from_str(&text).unwrap();
        let mut wrong = Vec::new();
        for case in &corpus.case {
            let kind = match case.kind.as_str() {
                "auto_reply" => ReplyKind::AutoReply,
                _ => ReplyKind::Draft,
            };
            let order: Vec<String> = case.order.values().cloned().collect();
            let keep: Vec<&str> = order.iter().map(String::as_str).collect();
            let redaction = Redaction::new(&case.buyer, &keep);
            let grounding = Grounding {
                buyer: &case.buyer,
                order: order.clone(),
                knowledge: case.knowledge.iter().map(String::as_str).collect(),
                echo: Vec::new(),
            };
            let verdict = redaction
                .restore(&case.output)
                .and_then(|restored| {
                    guardrails.check(&restored, kind, &case.language, &grounding, &detector)
                })
                .map_or_else(|f| f.check.as_str().to_string(), |()| "pass".to_string());
            if verdict != case.verdict {
                wrong.push(format!(
                    "{}: expected {}, got {verdict}",
                    case.name, case.verdict
                ));
            }
        }
        assert!(corpus.case.len() >= 100);
        assert!(
            wrong.is_empty(),
            "{} of {} wrong:\n{}",
            wrong.len(),
            corpus.case.len(),
            wrong.join("\n")
        );
    }
}
