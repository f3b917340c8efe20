//! Amounts of money a buyer writes ("I paid 640 €", "1 899 zł", "40만원"),
//! for the high-value tier raise when the caller sends no order value.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::domain::Money;

/// A number as buyers write it: digits with optional thousands groups
/// (space, dot, comma, apostrophe) and two decimals.
const NUMBER: &str = r"\d{1,3}(?:[ .,'\u{a0}\u{202f}]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?";

/// Currency words and symbols written before or after the number, with
/// their ISO 4217 codes. Longer spellings come first so they win.
const CURRENCIES: &[(&str, &str)] = &[
    ("us$", "USD"),
    ("usd", "USD"),
    ("dollars", "USD"),
    ("dollar", "USD"),
    ("$", "USD"),
    ("r$", "BRL"),
    ("reais", "BRL"),
    ("brl", "BRL"),
    ("euros", "EUR"),
    ("euro", "EUR"),
    ("eur", "EUR"),
    ("€", "EUR"),
    ("gbp", "GBP"),
    ("pounds", "GBP"),
    ("£", "GBP"),
    ("złotych", "PLN"),
    ("zlotych", "PLN"),
    ("zł", "PLN"),
    ("zl", "PLN"),
    ("pln", "PLN"),
    ("jpy", "JPY"),
    ("yen", "JPY"),
    ("円", "JPY"),
    ("rmb", "CNY"),
    ("cny", "CNY"),
    ("元", "CNY"),
    ("块", "CNY"),
    ("塊", "CNY"),
    ("krw", "KRW"),
    ("won", "KRW"),
    ("원", "KRW"),
    ("₩", "KRW"),
    // Yen, except in Chinese, where `yen_sign` reads it as yuan.
    ("¥", "JPY"),
    ("￥", "JPY"),
    ("rupiah", "IDR"),
    ("idr", "IDR"),
    ("rp", "IDR"),
    ("ringgit", "MYR"),
    ("myr", "MYR"),
    ("rm", "MYR"),
    ("mxn", "MXN"),
    ("sek", "SEK"),
    ("kr", "SEK"),
    ("czk", "CZK"),
    ("kč", "CZK"),
    ("huf", "HUF"),
    ("ft", "HUF"),
    ("try", "TRY"),
    ("tl", "TRY"),
    ("₺", "TRY"),
    ("inr", "INR"),
    ("₹", "INR"),
    ("thb", "THB"),
    ("บาท", "THB"),
    ("฿", "THB"),
    ("vnd", "VND"),
    ("₫", "VND"),
    ("đ", "VND"),
    ("php", "PHP"),
    ("₱", "PHP"),
];

/// Multipliers written between a number and its currency in CJK text:
/// 40만원 is 400,000 won, 2万円 20,000 yen, 3千元 3,000 yuan.
const MULTIPLIERS: &[(&str, f64)] = &[
    ("만", 1e4),
    ("万", 1e4),
    ("萬", 1e4),
    ("천", 1e3),
    ("千", 1e3),
];

/// Multiplier words written after a number, whichever side its currency
/// stands: "Rp 12 juta", "RM 2k", "R$ 3 mil", "4 tys. zł". Longer
/// spellings come first so they win.
const WORD_MULTIPLIERS: &[(&str, f64)] = &[
    ("million", 1e6),
    ("juta", 1e6),
    ("ribu", 1e3),
    ("tys.", 1e3),
    ("tys", 1e3),
    ("mln", 1e6),
    ("mil", 1e3),
    ("jt", 1e6),
    ("rb", 1e3),
    ("k", 1e3),
];

/// The words of `table` as alternatives of a pattern.
fn alternatives<T>(table: &[(&str, T)]) -> String {
    table
        .iter()
        .map(|(word, _)| regex::escape(word))
        .collect::<Vec<_>>()
        .join("|")
}

static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    let symbols = alternatives(CURRENCIES);
    let multipliers = alternatives(MULTIPLIERS);
    let words = alternatives(WORD_MULTIPLIERS);
    // A symbol directly before the number, or one after it; a word symbol
    // or multiplier must not be glued to Latin letters ("rm" in "firm", "tl"
    // in "title", "k" in "kit"), while CJK text runs on into a symbol
    // ("订单金额¥23,600").
    Regex::new(&format!(
        r"(?i)(?:^|[^\p{{Latin}}])(?P<pre>{symbols})\s?(?P<n1>{NUMBER})(?:\s?(?P<word1>{words})(?:$|[^\p{{L}}]))?|(?P<n2>{NUMBER})\s?(?:(?P<mult>{multipliers})|(?P<word2>{words})\s)?\s?(?P<post>{symbols})(?:$|[^\p{{Latin}}])"
    ))
    .expect("the amount pattern compiles")
});

/// The currency the yen sign stands for in `language`: Chinese writes yuan
/// with it ("¥12,999", "￥299").
fn yen_sign(language: &str) -> &'static str {
    if language == "zh" {
        "CNY"
    } else {
        "JPY"
    }
}

/// The amounts of money named in `text`, written in `language`, in order.
pub fn amounts(text: &str, language: &str) -> Vec<Money> {
    AMOUNT
        .captures_iter(text)
        .filter_map(|found| {
            let (number, symbol) = match (found.name("n1"), found.name("n2")) {
                (Some(number), _) => (number.as_str(), found.name("pre")?.as_str()),
                (None, Some(number)) => (number.as_str(), found.name("post")?.as_str()),
                (None, None) => return None,
            };
            let factor = |table: &[(&str, f64)], name: &str| {
                let written = found.name(name)?.as_str().to_lowercase();
                table
                    .iter()
                    .find(|(word, _)| *word == written)
                    .map(|(_, factor)| *factor)
            };
            let multiplier = factor(MULTIPLIERS, "mult")
                .or_else(|| factor(WORD_MULTIPLIERS, "word1"))
                .or_else(|| factor(WORD_MULTIPLIERS, "word2"))
                .unwrap_or(1.0);
            let lowered = symbol.to_lowercase();
            let currency = CURRENCIES.iter().find(|(s, _)| *s == lowered)?.1;
            let currency = if currency == "JPY" && matches!(lowered.as_str(), "¥" | "￥") {
                yen_sign(language)
            } else {
                currency
            };
            Some(Money {
                amount: parse_number(number)? * multiplier,
                currency: currency.to_string(),
            })
        })
        .collect()
}

/// Whether `value` reaches the mark set for its currency in `marks`; a
/// currency with no mark reaches none.
pub fn reaches_mark(value: &Money, marks: &BTreeMap<String, f64>) -> bool {
    marks
        .get(&value.currency)
        .is_some_and(|mark| value.amount >= *mark)
}

/// "1 899,99", "1.899", "1,299.00", "45000": a separator followed by exactly
/// three digits groups thousands; one followed by one or two is the decimal.
fn parse_number(written: &str) -> Option<f64> {
    let mut digits = String::new();
    let parts: Vec<&str> = written
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .collect();
    let (last, head) = parts.split_last()?;
    for part in head {
        digits.push_str(part);
    }
    if !head.is_empty() && last.len() <= 2 {
        digits.push('.');
    }
    digits.push_str(last);
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest amount in `text`.
    fn amount(text: &str) -> Option<(f64, String)> {
        written(text, "")
    }

    fn written(text: &str, language: &str) -> Option<(f64, String)> {
        amounts(text, language)
            .into_iter()
            .max_by(|a, b| a.amount.total_cmp(&b.amount))
            .map(|m| (m.amount, m.currency))
    }

    #[test]
    fn amounts_are_read_in_the_ways_buyers_write_them() {
        let eur = |n: f64| Some((n, "EUR".to_string()));
        assert_eq!(amount("Le montant est de 640 €, c'est bon ?"), eur(640.0));
        assert_eq!(amount("I paid €1,299.00 for it"), eur(1299.0));
        assert_eq!(amount("Preis 1.899,99 EUR"), eur(1899.99));
        assert_eq!(
            amount("zamówienie (iPhone 13, 1 899 zł)"),
            Some((1899.0, "PLN".into()))
        );
        assert_eq!(amount("40만원짜리인데"), Some((400_000.0, "KRW".into())));
        assert_eq!(amount("花了2999元"), Some((2999.0, "CNY".into())));
        assert_eq!(
            amount("Sudah bayar Rp 4.800.000"),
            Some((4_800_000.0, "IDR".into()))
        );
        assert_eq!(amount("harga RM1,450"), Some((1450.0, "MYR".into())));
        assert_eq!(
            amount("$25 shipping and $480 total"),
            Some((480.0, "USD".into()))
        );
    }

    #[test]
    fn multiplier_words_after_the_number_count() {
        let idr = |n: f64| Some((n, "IDR".to_string()));
        assert_eq!(amount("Totalnya sekitar Rp 12 juta buat laptop"), idr(12e6));
        assert_eq!(amount("udah bayar Rp12jt"), idr(12e6));
        assert_eq!(amount("ongkir Rp 500rb, mahal"), idr(500e3));
        assert_eq!(amount("harganya 12 juta rupiah"), idr(12e6));
        assert_eq!(amount("paid RM 2k for it"), Some((2000.0, "MYR".into())));
        assert_eq!(amount("a $1.5k camera"), Some((1500.0, "USD".into())));
        assert_eq!(amount("paguei R$ 3 mil"), Some((3000.0, "BRL".into())));
        assert_eq!(amount("za 4 tys. zł"), Some((4000.0, "PLN".into())));
        // A word glued to letters is no multiplier: "$5 kit" is five dollars;
        // nor is a word a multiplier in another language ("mio" is "my").
        assert_eq!(amount("a $5 kit"), Some((5.0, "USD".into())));
        assert_eq!(amount("€80 mio marito dice"), Some((80.0, "EUR".into())));
        assert_eq!(amount("5 kr per month"), Some((5.0, "SEK".into())));
    }

    #[test]
    fn the_yen_sign_is_yuan_in_chinese() {
        assert_eq!(
            written("这台相机 ¥12,999，可以分期吗", "zh"),
            Some((12999.0, "CNY".into()))
        );
        assert_eq!(
            written("订单金额￥23,600", "zh"),
            Some((23600.0, "CNY".into()))
        );
        assert_eq!(
            written("ホイール（¥128,000）です", "ja"),
            Some((128_000.0, "JPY".into()))
        );
    }

    #[test]
    fn each_amount_is_held_to_its_own_currency_mark() {
        let marks: BTreeMap<String, f64> =
            [("USD".to_string(), 300.0), ("JPY".to_string(), 45000.0)]
                .into_iter()
                .collect();
        let high = |text: &str, language: &str| {
            amounts(text, language)
                .iter()
                .any(|value| reaches_mark(value, &marks))
        };
        // The larger number (5,000 yen) is the smaller sum.
        assert!(high("The lens was $600, the hood another ¥5,000", "en"));
        assert!(!high("$250 for the lens and ¥40,000 for the bag", "en"));
        // No mark for the currency: not high, however large.
        assert!(!high("Sudah bayar Rp 48.000.000", "id"));
    }

    #[test]
    fn numbers_without_a_currency_are_not_amounts() {
        assert_eq!(amount("Order 113-4820193-5527104, 3 items, size 42"), None);
        assert_eq!(amount("The firm 500 title 300"), None);
        assert_eq!(amount("tracking 9400 1118 9922"), None);
    }
}
