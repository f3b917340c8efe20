//! Compose: the acknowledgement, the auto-reply and the agent's draft, in the
//! buyer's language, from the wording in `prompts/i18n/`. Every fact in an
//! auto-reply comes from the order data or a cited knowledge-base article.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::domain::{
    Acknowledgement, Category, Channel, Draft, DraftSource, EmotionKind, Inquiry, KnowledgeHit,
    Sentiment,
};
use crate::prompts::{fill, Prompts, Wording};

/// The citation for facts taken from the order data.
pub const ORDER_CITATION: &str = "order";

pub struct Composer {
    prompts: Prompts,
}

/// What the acknowledgement may say: known from the fast stages only.
#[derive(Debug, Clone, Copy)]
pub struct AckInput<'a> {
    pub inquiry: &'a Inquiry,
    pub language: &'a str,
    pub category: Option<Category>,
    pub upset: bool,
    pub reply_by: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub counts_as_response: bool,
}

/// The grounded facts of an auto-reply.
#[derive(Debug, Clone)]
pub struct AutoReplyInput<'a> {
    pub inquiry: &'a Inquiry,
    pub language: &'a str,
    pub use_order: bool,
    pub article: Option<&'a KnowledgeHit>,
}

/// A composed reply and what it cites.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    pub text: String,
    pub citations: Vec<String>,
    pub language: String,
}

impl Composer {
    pub fn new(prompts: Prompts) -> Composer {
        Composer { prompts }
    }

    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// The language replies are written in: the buyer's when we have its wording.
    pub fn reply_language<'a>(&self, language: &'a str) -> &'a str {
        if self.prompts.has_language(language) {
            language
        } else {
            "en"
        }
    }

    pub fn acknowledgement(&self, input: &AckInput<'_>) -> Acknowledgement {
        let language = self.reply_language(input.language);
        let wording = self.prompts.wording(language);
        let topic = wording.topic(input.category.unwrap_or(Category::Other));
        let when = when_phrase(
            wording,
            input.now,
            input.reply_by,
            input.inquiry.customer.timezone,
        );
        let mut body = fill(
            &wording.ack.text,
            &[
                ("topic", topic),
                ("when", &when),
                ("reference", &input.inquiry.id),
            ],
        );
        if input.upset {
            body = format!("{body} {}", wording.ack.upset);
        }
        let text = if input.inquiry.channel == Channel::Chat {
            body
        } else {
            format!("{}\n\n{body}\n\n{}", wording.greeting, wording.sign_off)
        };
        Acknowledgement {
            text,
            language: language.to_string(),
            reply_by: input.reply_by,
            counts_as_response: input.counts_as_response,
        }
    }

    pub fn auto_reply(&self, input: &AutoReplyInput<'_>) -> Composed {
        let language = self.reply_language(input.language);
        let wording = self.prompts.wording(language);
        let a = &wording.auto_reply;
        let mut lines = vec![wording.greeting.clone()];
        let mut citations = Vec::new();
        if let Some(order) = input.inquiry.order.as_ref().filter(|_| input.use_order) {
            let order_id = order.order_id.as_deref().unwrap_or("");
            let mut facts = Vec::new();
            match (&order.tracking_number, &order.carrier) {
                (Some(number), Some(carrier)) => facts.push(fill(
                    &a.tracking,
                    &[
                        ("order_id", order_id),
                        ("carrier", carrier),
                        ("tracking_number", number),
                    ],
                )),
                (Some(number), None) => facts.push(fill(
                    &a.tracking_no_carrier,
                    &[("order_id", order_id), ("tracking_number", number)],
                )),
                (None, _) => facts.push(fill(&a.not_shipped, &[("order_id", order_id)])),
            }
            if let Some(shipped) = order.shipped_at {
                facts.push(fill(
                    &a.shipped_on,
                    &[(
                        "date",
                        &local_date(wording, shipped, input.inquiry.customer.timezone),
                    )],
                ));
            }
            if let Some(eta) = order.estimated_delivery {
                facts.push(fill(
                    &a.eta,
                    &[(
                        "date",
                        &local_date(wording, eta, input.inquiry.customer.timezone),
                    )],
                ));
            }
            lines.push(facts.join(" "));
            if let Some(url) = &order.tracking_url {
                lines.push(fill(&a.tracking_link, &[("tracking_url", url)]));
            }
            citations.push(ORDER_CITATION.to_string());
        }
        if let Some(article) = input.article {
            lines.push(format!("{}\n{}", a.kb_lead, article.answer));
            citations.push(article.article_id.clone());
        }
        lines.push(a.closing.clone());
        lines.push(wording.sign_off.clone());
        Composed {
            text: lines.join("\n\n"),
            citations,
            language: language.to_string(),
        }
    }

    /// A draft for an agent: empathy first, then what the knowledge base says.
    pub fn template_draft(
        &self,
        inquiry: &Inquiry,
        language: &str,
        sentiment: &Sentiment,
        knowledge: &[KnowledgeHit],
    ) -> Draft {
        let language = self.reply_language(language);
        let wording = self.prompts.wording(language);
        let d = &wording.draft;
        let empathy = [
            (EmotionKind::Anger, &d.empathy_anger),
            (EmotionKind::Threat, &d.empathy_anger),
            (EmotionKind::Frustration, &d.empathy_frustration),
            (EmotionKind::Anxiety, &d.empathy_anxiety),
        ]
        .into_iter()
        .find(|(kind, _)| sentiment.emotion(*kind) >= 0.4)
        .map(|(_, line)| line)
        .unwrap_or(if sentiment.score <= -0.35 {
            &d.empathy_frustration
        } else {
            &d.empathy_neutral
        });
        let mut lines = vec![wording.greeting.clone(), empathy.clone()];
        if let Some(order_id) = inquiry.order.as_ref().and_then(|o| o.order_id.as_deref()) {
            lines.push(fill(&d.order_ref, &[("order_id", order_id)]));
        }
        // Only answers in the reply's language go into the text a buyer may see.
        let answers: Vec<&KnowledgeHit> = knowledge
            .iter()
            .filter(|hit| hit.language == language)
            .take(2)
            .collect();
        if !answers.is_empty() {
            let body: Vec<&str> = answers.iter().map(|hit| hit.answer.as_str()).collect();
            lines.push(format!("{}\n{}", d.kb_lead, body.join("\n\n")));
        }
        lines.push(d.next_step.clone());
        lines.push(wording.sign_off.clone());
        Draft {
            text: lines.join("\n\n"),
            citations: answers.iter().map(|hit| hit.article_id.clone()).collect(),
            source: DraftSource::Template,
            language: language.to_string(),
            fallback_reason: None,
        }
    }
}

/// "within 45 minutes", "within 3 hours", or a local clock time for long waits.
fn when_phrase(
    wording: &Wording,
    now: DateTime<Utc>,
    due: DateTime<Utc>,
    timezone: Option<Tz>,
) -> String {
    let w = &wording.when;
    let wait = (due - now).max(Duration::minutes(1));
    let minutes = (wait.num_seconds() + 59) / 60;
    if minutes < 45 {
        return fill(&w.within_minutes, &[("n", &minutes.max(2).to_string())]);
    }
    if minutes <= 60 {
        return w.within_one_hour.clone();
    }
    match timezone {
        Some(tz) if wait > Duration::hours(3) => {
            let local_now = now.with_timezone(&tz).date_naive();
            let local_due = due.with_timezone(&tz);
            let time = local_due
                .format_localized(&wording.time_format, wording.chrono_locale)
                .to_string();
            let days = (local_due.date_naive() - local_now).num_days();
            match days {
                0 => fill(&w.today_at, &[("time", &time)]),
                1 => fill(&w.tomorrow_at, &[("time", &time)]),
                _ => {
                    let date = local_due
                        .format_localized(&wording.date_format, wording.chrono_locale)
                        .to_string();
                    fill(&w.on_day_at, &[("date", &date), ("time", &time)])
                }
            }
        }
        _ => fill(
            &w.within_hours,
            &[("n", &((minutes + 59) / 60).to_string())],
        ),
    }
}

fn local_date(wording: &Wording, at: DateTime<Utc>, timezone: Option<Tz>) -> String {
    let tz = timezone.unwrap_or(Tz::UTC);
    at.with_timezone(&tz)
        .format_localized(&wording.date_format, wording.chrono_locale)
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn prompts() -> Prompts {
        Prompts::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")).unwrap()
    }

    #[test]
    fn due_times_are_told_in_the_buyers_local_time_or_relative() {
        let prompts = prompts();
        let en = prompts.wording("en");
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // Buyer in UTC-8 (Los Angeles), team in UTC+8: due 09:00 the buyer's next morning.
        let now = at("2026-03-05T20:00:00Z");
        let due = at("2026-03-06T17:00:00Z");
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        assert_eq!(
            when_phrase(en, now, due, Some(la)),
            "tomorrow by 9:00 AM, your time"
        );
        assert_eq!(when_phrase(en, now, due, None), "within 21 hours");
        assert_eq!(
            when_phrase(en, now, at("2026-03-05T20:30:00Z"), Some(la)),
            "within 30 minutes"
        );
        assert_eq!(
            when_phrase(en, now, at("2026-03-05T20:55:00Z"), None),
            "within the hour"
        );
        let de = prompts.wording("de");
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            when_phrase(de, now, at("2026-03-09T08:00:00Z"), Some(berlin)),
            "am Montag, 9. März bis 09:00 Uhr (Ihre Ortszeit)"
        );
    }
}
