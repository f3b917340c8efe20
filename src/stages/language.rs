//! Language: lingua, preloaded for the market languages. Short or ambiguous
//! text falls back to the customer's locale; Malay and Indonesian, which no
//! detector separates reliably, are decided by locale and marketplace.

use lingua::{IsoCode639_1, Language, LanguageDetector as Lingua, LanguageDetectorBuilder};

use crate::domain::{Customer, LanguageGuess};

/// The languages firstreply's markets write in.
pub const MARKET_LANGUAGES: [Language; 29] = [
    Language::English,
    Language::German,
    Language::French,
    Language::Spanish,
    Language::Italian,
    Language::Portuguese,
    Language::Dutch,
    Language::Polish,
    Language::Swedish,
    Language::Danish,
    Language::Finnish,
    Language::Czech,
    Language::Romanian,
    Language::Hungarian,
    Language::Greek,
    Language::Turkish,
    Language::Russian,
    Language::Ukrainian,
    Language::Arabic,
    Language::Hebrew,
    Language::Japanese,
    Language::Korean,
    Language::Chinese,
    Language::Thai,
    Language::Vietnamese,
    Language::Indonesian,
    Language::Malay,
    Language::Tagalog,
    Language::Hindi,
];

/// The Malay-plus-Indonesian share of lingua's confidence from which a text
/// in a Malay or Indonesian market is taken as that market's language.
const MALAY_SHARE_IN_ITS_MARKET: f32 = 0.25;

/// What the detector may use besides the text.
#[derive(Debug, Clone, Copy)]
pub struct LanguageHints<'a> {
    pub customer: &'a Customer,
    pub marketplace: &'a str,
}

pub trait LanguageDetector: Send + Sync {
    fn detect(&self, text: &str, hints: LanguageHints<'_>) -> LanguageGuess;
}

pub struct LinguaDetector {
    lingua: Lingua,
    min_letters: usize,
    min_confidence: f32,
}

impl LinguaDetector {
    /// Loads every market language's model up front, so no request pays for it.
    pub fn new(min_letters: usize, min_confidence: f32) -> LinguaDetector {
        let lingua = LanguageDetectorBuilder::from_languages(&MARKET_LANGUAGES)
            .with_preloaded_language_models()
            .build();
        LinguaDetector {
            lingua,
            min_letters,
            min_confidence,
        }
    }
}

impl LanguageDetector for LinguaDetector {
    fn detect(&self, text: &str, hints: LanguageHints<'_>) -> LanguageGuess {
        let locale = hints
            .customer
            .locale_language
            .as_deref()
            .filter(|code| is_market_code(code));
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        // Ideographic scripts carry a word in one or two characters.
        let dense_script = text.chars().any(is_cjk_or_thai);
        let ranked = self.lingua.compute_language_confidence_values(text);
        let Some(&(top, top_confidence)) = ranked.first() else {
            return fallback(locale);
        };
        let mut code = iso_code(top);
        let mut confidence = top_confidence as f32;
        let pair = ranked
            .iter()
            .filter(|(lang, _)| matches!(lang, Language::Malay | Language::Indonesian))
            .map(|(_, c)| c)
            .sum::<f64>() as f32;
        if let Some(decided) = malay_or_indonesian(hints) {
            // Colloquial Malay mixed with English ("Status dah 'delivered'
            // tapi barang takde") often ranks Tagalog first: in a Malay or
            // Indonesian market a fair Malay-Indonesian share is enough, and
            // Tagalog, not a language of that market, is taken as its own.
            if matches!(code.as_str(), "ms" | "id" | "tl") || pair >= MALAY_SHARE_IN_ITS_MARKET {
                code = decided.to_string();
                confidence = pair;
            }
        }
        let too_short = !dense_script && letters < self.min_letters;
        if too_short || confidence < self.min_confidence {
            if let Some(locale) = locale {
                if locale != code {
                    return LanguageGuess {
                        code: locale.to_string(),
                        confidence: confidence.min(0.5),
                    };
                }
            }
        }
        LanguageGuess { code, confidence }
    }
}

/// Malay vs Indonesian from the account locale, then the marketplace's country.
fn malay_or_indonesian(hints: LanguageHints<'_>) -> Option<&'static str> {
    match hints.customer.locale_language.as_deref() {
        Some("ms") => return Some("ms"),
        Some("id") => return Some("id"),
        _ => {}
    }
    match hints.customer.locale_region.as_deref() {
        Some("MY" | "SG" | "BN") => return Some("ms"),
        Some("ID") => return Some("id"),
        _ => {}
    }
    let marketplace = hints.marketplace;
    if marketplace.ends_with("_my") || marketplace.ends_with(".my") || marketplace.ends_with("_sg")
    {
        Some("ms")
    } else if marketplace.ends_with("_id")
        || marketplace.ends_with(".id")
        || marketplace.ends_with(".co.id")
    {
        Some("id")
    } else {
        None
    }
}

fn fallback(locale: Option<&str>) -> LanguageGuess {
    LanguageGuess {
        code: locale.unwrap_or("en").to_string(),
        confidence: if locale.is_some() { 0.5 } else { 0.0 },
    }
}

fn iso_code(language: Language) -> String {
    let code: IsoCode639_1 = language.iso_code_639_1();
    code.to_string().to_lowercase()
}

/// The English name of a market language, e.g. "German" for "de".
pub fn language_name(code: &str) -> Option<String> {
    MARKET_LANGUAGES
        .iter()
        .find(|lang| iso_code(**lang) == code)
        .map(|lang| format!("{lang:?}"))
}

fn is_market_code(code: &str) -> bool {
    MARKET_LANGUAGES.iter().any(|lang| iso_code(*lang) == code)
}

fn is_cjk_or_thai(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0x0E00..=0x0E7F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(locale: &str) -> Customer {
        let (language, region) = match locale.split_once('-') {
            Some((l, r)) => (Some(l.to_string()), Some(r.to_string())),
            None if locale.is_empty() => (None, None),
            None => (Some(locale.to_string()), None),
        };
        Customer {
            locale_language: language,
            locale_region: region,
            ..Customer::default()
        }
    }

    fn detect(detector: &LinguaDetector, text: &str, locale: &str, marketplace: &str) -> String {
        let customer = customer(locale);
        detector
            .detect(
                text,
                LanguageHints {
                    customer: &customer,
                    marketplace,
                },
            )
            .code
    }

    #[test]
    fn detects_market_languages_and_falls_back_to_locale() {
        let detector = LinguaDetector::new(10, 0.55);
        assert_eq!(
            detect(
                &detector,
                "Wo ist meine Bestellung? Ich warte seit zwei Wochen.",
                "",
                ""
            ),
            "de"
        );
        assert_eq!(
            detect(&detector, "注文した商品がまだ届きません。", "", ""),
            "ja"
        );
        assert_eq!(detect(&detector, "我的包裹什么时候到？", "", ""), "zh");
        assert_eq!(
            detect(
                &detector,
                "Je voudrais annuler ma commande, s'il vous plaît.",
                "",
                ""
            ),
            "fr"
        );
        // Two words say little; the account's locale decides.
        assert_eq!(detect(&detector, "ok gracias", "pt-BR", ""), "pt");
    }

    #[test]
    fn malay_and_indonesian_follow_locale_and_marketplace() {
        let detector = LinguaDetector::new(10, 0.55);
        let text = "Bila barang saya akan sampai? Saya sudah tunggu lama.";
        assert_eq!(detect(&detector, text, "", "shopee_my"), "ms");
        assert_eq!(detect(&detector, text, "", "shopee_id"), "id");
        assert_eq!(detect(&detector, text, "ms-MY", "shopee"), "ms");
        // Manglish that lingua alone ranks Tagalog first.
        let manglish = "Status dah 'delivered' tapi barang takde. Kalau seller tak settle dalam 2 hari, saya report kat Shopee.";
        assert_eq!(detect(&detector, manglish, "", "shopee_my"), "ms");
        // Manglish that lingua ranks Tagalog first with almost no Malay share.
        let manglish = "Status kata dah delivered tapi barang takde pun depan pintu. Guard pun tak terima. Kalau tak settle, saya buat request through Shopee dan bagi 1 bintang.";
        assert_eq!(detect(&detector, manglish, "", "shopee_my"), "ms");
        assert_eq!(detect(&detector, manglish, "", "shopee_ph"), "tl");
        // English stays English in Malaysia.
        let english = "Hi, when will my order arrive? It has been two weeks already.";
        assert_eq!(detect(&detector, english, "", "shopee_my"), "en");
    }
}
