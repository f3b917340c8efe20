//! Normalize: plain text from chat messages and HTML email bodies, without
//! quoted reply chains and signatures, capped in length.

use std::sync::LazyLock;

use regex::Regex;

/// Why a message cannot be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("the message has no text of its own once quoted replies and signatures are removed")]
    Empty,
}

/// Turns raw message bodies into the text the analysis runs on.
pub trait Normalizer: Send + Sync {
    fn normalize(&self, raw: &str) -> Result<String, NormalizeError>;
}

/// Rules that work for chat, marketplace and email bodies in any language.
pub struct TextNormalizer {
    max_chars: usize,
}

impl TextNormalizer {
    pub fn new(max_chars: usize) -> TextNormalizer {
        TextNormalizer { max_chars }
    }
}

static HTML_TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").unwrap());
static HTML_DROPPED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)<(script|style|head|title)\b.*?</(script|style|head|title)\s*>|<!--.*?-->")
        .unwrap()
});
// Quoted history that mail clients put in a blockquote or a "gmail_quote" div.
static HTML_QUOTE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)<blockquote\b.*$|<div[^>]*class="[^"]*(gmail_quote|moz-cite-prefix|yahoo_quoted)[^"]*".*$"#)
        .unwrap()
});
static HTML_BREAK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<br\s*/?>|</(p|div|li|tr|h[1-6])\s*>").unwrap());
static BLANK_RUNS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\n{3,}").unwrap());
static SPACE_RUNS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[ \t\u{a0}]+").unwrap());

// A line that starts the quoted history: everything from it on is dropped.
static REPLY_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^\s*(",
        r"-{2,}\s*(original message|forwarded message|ursprüngliche nachricht|message d'origine|mensaje original|messaggio originale|mensagem original|oorspronkelijk bericht)\s*-{2,}",
        r"|_{5,}",
        r"|on .{1,120} wrote:?",
        r"|am .{1,120} schrieb .{0,80}:",
        r"|le .{1,120} a écrit ?:",
        r"|el .{1,120} escribió:",
        r"|il .{1,120} ha scritto:",
        r"|em .{1,120} escreveu:",
        r"|op .{1,120} schreef .{0,80}:",
        r"|.{0,80}\d{4}.{0,40}(年|일).{0,80}(写道|寫道|のメッセージ|작성)[:：]?",
        r"|(from|von|de|da|van|от|差出人|发件人|寄件者)\s*:\s.{1,200}",
        r")\s*$"
    ))
    .unwrap()
});
// Signature openers; the signature runs to the end of the message.
static SIGNATURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(--\s*|sent from my .{1,40}|envoyé de mon .{1,40}|von meinem .{1,40} gesendet|enviado desde mi .{1,40}|inviato da .{1,40}|get outlook for .{1,40})\s*$")
        .unwrap()
});

impl Normalizer for TextNormalizer {
    fn normalize(&self, raw: &str) -> Result<String, NormalizeError> {
        let plain = if looks_like_html(raw) {
            html_to_text(raw)
        } else {
            raw.replace("\r\n", "\n")
        };
        let mut kept = Vec::new();
        for line in plain.lines() {
            if REPLY_HEADER.is_match(line) || SIGNATURE.is_match(line) {
                break;
            }
            if line.trim_start().starts_with('>') {
                continue;
            }
            // Phones type ’ where the phrase lists write ' ("didn’t",
            // "l’avis").
            let line = line.trim().replace(['\u{2019}', '\u{2018}'], "'");
            kept.push(SPACE_RUNS.replace_all(&line, " ").into_owned());
        }
        let joined = kept.join("\n");
        let text = BLANK_RUNS.replace_all(joined.trim(), "\n\n");
        if !text.chars().any(char::is_alphanumeric) {
            return Err(NormalizeError::Empty);
        }
        Ok(truncate_chars(&text, self.max_chars))
    }
}

fn looks_like_html(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    [
        "<html",
        "<body",
        "<div",
        "<p>",
        "<p ",
        "<br",
        "<blockquote",
        "<table",
        "<span",
    ]
    .iter()
    .any(|tag| lower.contains(tag))
}

fn html_to_text(html: &str) -> String {
    let html = HTML_DROPPED.replace_all(html, "");
    let html = HTML_QUOTE.replace(&html, "");
    let html = HTML_BREAK.replace_all(&html, "\n");
    let text = HTML_TAG.replace_all(&html, "");
    decode_entities(&text)
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Keeps the first `max` characters, cut at a word boundary where one is near.
fn truncate_chars(text: &str, max: usize) -> String {
    let Some((cut, _)) = text.char_indices().nth(max) else {
        return text.to_string();
    };
    let head = &text[..cut];
    match head.rfind(char::is_whitespace) {
        Some(space) if space > cut * 9 / 10 => head[..space].to_string(),
        _ => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(raw: &str) -> Result<String, NormalizeError> {
        TextNormalizer::new(4000).normalize(raw)
    }

    #[test]
    fn drops_quoted_chain_and_signature() {
        let raw = "Where is my parcel?\n\nThanks\n--\nAnna Schmidt\n\nOn Mon, 3 Mar 2025 at 10:00, Shop <help@shop.com> wrote:\n> Your order has shipped";
        assert_eq!(normalize(raw).unwrap(), "Where is my parcel?\n\nThanks");
    }

    #[test]
    fn drops_outlook_original_message_and_quote_lines() {
        let raw = "Bitte stornieren Sie meine Bestellung.\n> alte Nachricht\n-----Original Message-----\nFrom: shop\nHello";
        assert_eq!(
            normalize(raw).unwrap(),
            "Bitte stornieren Sie meine Bestellung."
        );
    }

    #[test]
    fn html_email_keeps_only_the_new_part() {
        let raw = r#"<html><head><style>p{color:red}</style></head><body><div>I want a refund &amp; a label.</div><div>Thanks<br>Tom</div><div class="gmail_quote">On Tue, Jane wrote:<blockquote>Your order shipped</blockquote></div></body></html>"#;
        assert_eq!(
            normalize(raw).unwrap(),
            "I want a refund & a label.\nThanks\nTom"
        );
    }

    #[test]
    fn empty_or_quote_only_text_is_rejected() {
        assert_eq!(normalize("   \n "), Err(NormalizeError::Empty));
        assert_eq!(normalize("> only a quote"), Err(NormalizeError::Empty));
        assert_eq!(normalize("<p>&nbsp;</p>"), Err(NormalizeError::Empty));
    }

    #[test]
    fn long_text_is_capped() {
        let raw = "word ".repeat(2000);
        let text = TextNormalizer::new(100).normalize(&raw).unwrap();
        assert!(text.chars().count() <= 100);
        assert!(text.ends_with("word"));
    }

    #[test]
    fn typographic_apostrophes_become_plain() {
        assert_eq!(
            normalize("I didn’t get it, l‘avis").unwrap(),
            "I didn't get it, l'avis"
        );
    }

    #[test]
    fn cjk_text_is_kept() {
        assert_eq!(normalize("我的包裹在哪里？").unwrap(), "我的包裹在哪里？");
    }
}
