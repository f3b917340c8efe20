//! SLA and channel policy: when a person must first answer and resolve an
//! inquiry, and when the support team is at work.
//!
//! The policy is data (`config/policy.toml`, compiled in, overridable per
//! tenant), parsed and validated here into one [`TenantPolicy`] per tenant.
//! Targets count the team's working time in its own time zone (weekends,
//! holidays and DST included) unless their rule counts calendar hours, as
//! marketplaces such as Amazon do. The first-response due time is the earliest
//! instant any applicable target allows, each counted on its own clock.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{
    DateTime, Datelike, Duration, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

use crate::backlog::{BacklogCondition, BacklogRule};
use crate::domain::{Category, Channel, Sla, Tier};

/// The shipped policy: the base every policy file and tenant is merged over.
const BUILTIN_POLICY: &str = include_str!("../../config/policy.toml");

/// How far ahead working time is searched: ten years is far beyond any target,
/// and bounds the search when holidays cover the calendar.
const SEARCH_DAYS: usize = 3660;

const MINUTES_PER_DAY: u32 = 24 * 60;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const TIERS: [(Tier, &str); 4] = [
    (Tier::P1Urgent, "p1_urgent"),
    (Tier::P2High, "p2_high"),
    (Tier::P3Normal, "p3_normal"),
    (Tier::P4Low, "p4_low"),
];

/// What the due times depend on.
#[derive(Debug, Clone, Copy)]
pub struct SlaInput<'a> {
    /// Selects the tenant's policy; unknown or empty names get the base policy.
    pub tenant: &'a str,
    pub category: Category,
    pub tier: Tier,
    pub channel: Channel,
    pub marketplace: &'a str,
    pub received_at: DateTime<Utc>,
}

pub trait SlaPolicy: Send + Sync {
    fn due(&self, input: &SlaInput<'_>) -> Sla;
}

/// Why a policy document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading policy file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy is not valid TOML: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("policy key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

/// The policy of every tenant, from `config/policy.toml` and its overrides.
#[derive(Debug, Clone)]
pub struct PolicySla {
    base: TenantPolicy,
    tenants: HashMap<String, TenantPolicy>,
}

impl PolicySla {
    /// The compiled-in policy alone.
    pub fn builtin() -> PolicySla {
        PolicySla::parse(BUILTIN_POLICY).expect("the compiled-in policy is valid")
    }

    /// A complete policy document, with nothing merged under it.
    pub fn parse(text: &str) -> Result<PolicySla, PolicyError> {
        PolicySla::from_document(text.parse()?)
    }

    /// The compiled-in policy with `overrides` (a partial document) merged over it.
    pub fn builtin_with(overrides: &str) -> Result<PolicySla, PolicyError> {
        let mut document: toml::Table = BUILTIN_POLICY.parse()?;
        merge(&mut document, overrides.parse()?);
        PolicySla::from_document(document)
    }

    /// The compiled-in policy with the file at `path` merged over it.
    pub fn load(path: &Path) -> Result<PolicySla, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        PolicySla::builtin_with(&text)
    }

    /// The policy `tenant` works under: its own, or the base policy.
    pub fn policy(&self, tenant: &str) -> &TenantPolicy {
        self.tenants.get(tenant).unwrap_or(&self.base)
    }

    /// Whether `tenant`'s team is working at `at`.
    pub fn is_team_hours(&self, tenant: &str, at: DateTime<Utc>) -> bool {
        self.policy(tenant).is_team_hours(at)
    }

    /// The first instant at or after `at` when `tenant`'s team is working.
    pub fn next_team_opening(&self, tenant: &str, at: DateTime<Utc>) -> DateTime<Utc> {
        self.policy(tenant).next_team_opening(at)
    }

    /// The categories the bot may answer on its own overnight.
    pub fn overnight_auto_reply_categories(&self, tenant: &str) -> &[Category] {
        self.policy(tenant).overnight_auto_reply_categories()
    }

    /// Whether `at` falls in the team's night window.
    pub fn is_overnight(&self, tenant: &str, at: DateTime<Utc>) -> bool {
        self.policy(tenant).is_overnight(at)
    }

    fn from_document(mut document: toml::Table) -> Result<PolicySla, PolicyError> {
        let tenants = match document.remove("tenants") {
            None => toml::Table::new(),
            Some(toml::Value::Table(tenants)) => tenants,
            Some(other) => {
                return Err(invalid(
                    "tenants",
                    format!("expected a table of tenants, found {}", other.type_str()),
                ))
            }
        };
        let base = TenantPolicy::parse(&Section::new(String::new(), &document))?;
        let mut parsed = HashMap::new();
        for (name, overrides) in tenants {
            let path = format!("tenants.{name}");
            let toml::Value::Table(overrides) = overrides else {
                return Err(invalid(&path, "expected a table"));
            };
            // The base part was validated above, so an error here names the
            // tenant's own key.
            let mut merged = document.clone();
            merge(&mut merged, overrides);
            let policy = TenantPolicy::parse(&Section::new(path, &merged))?;
            parsed.insert(name, policy);
        }
        Ok(PolicySla {
            base,
            tenants: parsed,
        })
    }
}

impl SlaPolicy for PolicySla {
    fn due(&self, input: &SlaInput<'_>) -> Sla {
        self.policy(input.tenant).due(input)
    }
}

/// One tenant's policy, resolved and validated.
#[derive(Debug, Clone)]
pub struct TenantPolicy {
    calendar: TeamCalendar,
    /// By `Category::index`.
    categories: Vec<Targets>,
    /// In `TIERS` order.
    tiers: Vec<Targets>,
    chat: ChannelRule,
    email: ChannelRule,
    social: ChannelRule,
    voice: ChannelRule,
    marketplaces: HashMap<String, ChannelRule>,
    default_marketplace: ChannelRule,
    overnight_window: Span,
    overnight_auto_reply: Vec<Category>,
    backlog: Vec<BacklogRule>,
}

impl TenantPolicy {
    /// Due times for an inquiry; `input.tenant` is not consulted.
    pub fn due(&self, input: &SlaInput<'_>) -> Sla {
        self.due_with(
            input.category,
            input.tier,
            Some(input.channel),
            input.marketplace,
            input.received_at,
        )
    }

    /// Due times when the channel may be unknown: without one, only the
    /// category and tier targets apply.
    pub(crate) fn due_with(
        &self,
        category: Category,
        tier: Tier,
        channel: Option<Channel>,
        marketplace: &str,
        received_at: DateTime<Utc>,
    ) -> Sla {
        let targets = self.categories[category.index()];
        // Tier targets apply to raised inquiries only: applied to all, they
        // would override the table (order_change is P1 but has 2 h, not 1 h).
        let raised = (tier < category.base_tier()).then(|| self.tiers[tier_index(tier)]);
        let mut business = raised.map_or(targets.first_response, |t| {
            targets.first_response.min(t.first_response)
        });
        let mut calendar = None;
        let rule = channel.map(|channel| self.channel_rule(channel, marketplace));
        if let Some(rule) = rule {
            let target = self.channel_target(rule, received_at);
            match rule.clock {
                Clock::Business => business = business.min(target),
                Clock::Calendar => calendar = Some(target),
            }
        }
        let business_due = self.calendar.add_working_time(received_at, business);
        let (first_response_due, calendar_hours) =
            match calendar.map(|target| add_calendar_time(received_at, target)) {
                Some(due) if due <= business_due => (due, true),
                _ => (business_due, false),
            };
        // Validation keeps resolution >= first response for categories and
        // tiers, so this is never before the first-response due time.
        let resolution = targets.resolution.map(|target| {
            raised
                .and_then(|t| t.resolution)
                .map_or(target, |t| target.min(t))
        });
        Sla {
            first_response_due,
            resolution_due: resolution
                .map(|target| self.calendar.add_working_time(received_at, target)),
            ack_counts_as_response: rule.is_none_or(|rule| rule.ack_counts_as_response),
            within_team_hours: self.is_team_hours(received_at),
            calendar_hours,
            overnight: self.is_overnight(received_at),
        }
    }

    /// Whether the team is working at `at`.
    pub fn is_team_hours(&self, at: DateTime<Utc>) -> bool {
        self.calendar.is_open(&self.calendar.hours, at)
    }

    /// The first instant at or after `at` when the team is working: `at`
    /// itself during working hours.
    pub fn next_team_opening(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.calendar.next_opening(at)
    }

    /// Whether `at` falls in the team's night window (e.g. 22:00-08:00 local).
    pub fn is_overnight(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.calendar.timezone);
        self.overnight_window
            .covers(local.hour() * 60 + local.minute())
    }

    /// The categories the bot may answer on its own overnight.
    pub fn overnight_auto_reply_categories(&self) -> &[Category] {
        &self.overnight_auto_reply
    }

    /// The team's time zone.
    pub fn timezone(&self) -> Tz {
        self.calendar.timezone
    }

    /// The backlog alert rules, in file order.
    pub fn backlog_rules(&self) -> &[BacklogRule] {
        &self.backlog
    }

    fn channel_rule(&self, channel: Channel, marketplace: &str) -> &ChannelRule {
        match channel {
            Channel::Chat => &self.chat,
            Channel::Email => &self.email,
            Channel::Social => &self.social,
            Channel::Voice => &self.voice,
            Channel::Marketplace => self.marketplace_rule(marketplace),
        }
    }

    /// The rule of `marketplace` by exact name, then by its family
    /// ("amazon_de" → "amazon"), then the default.
    fn marketplace_rule(&self, marketplace: &str) -> &ChannelRule {
        let name = marketplace.trim().to_ascii_lowercase();
        let family = name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default();
        self.marketplaces
            .get(&name)
            .or_else(|| self.marketplaces.get(family))
            .unwrap_or(&self.default_marketplace)
    }

    /// The channel's target, relaxed by the conditions at `received_at`.
    fn channel_target(&self, rule: &ChannelRule, received_at: DateTime<Utc>) -> Duration {
        [
            (
                rule.outside_core_hours,
                !self
                    .calendar
                    .is_open(&self.calendar.core_hours, received_at),
            ),
            (rule.weekend, self.calendar.is_weekend(received_at)),
            (rule.holiday, self.calendar.is_holiday(received_at)),
        ]
        .into_iter()
        .filter_map(|(target, applies)| target.filter(|_| applies))
        .fold(rule.first_response, Duration::max)
    }

    fn parse(root: &Section<'_>) -> Result<TenantPolicy, PolicyError> {
        root.allow_only(&[
            "calendar",
            "categories",
            "tiers",
            "channels",
            "marketplaces",
            "overnight",
            "backlog",
        ])?;
        let calendar = TeamCalendar::parse(&root.section("calendar")?)?;

        let categories = root.section("categories")?;
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        categories.allow_only(&names)?;
        let categories = Category::ALL
            .iter()
            .map(|c| Targets::parse(&categories.section(c.as_str())?))
            .collect::<Result<Vec<_>, _>>()?;

        let tiers = root.section("tiers")?;
        let names: Vec<&str> = TIERS.iter().map(|(_, name)| *name).collect();
        tiers.allow_only(&names)?;
        let tiers = TIERS
            .iter()
            .map(|(_, name)| Targets::parse(&tiers.section(name)?))
            .collect::<Result<Vec<_>, _>>()?;

        let channels = root.section("channels")?;
        channels.allow_only(&["chat", "email", "social", "voice"])?;
        let channel = |name: &str| ChannelRule::parse_channel(&channels.section(name)?);

        let marketplace_tables = root.section("marketplaces")?;
        let mut marketplaces = HashMap::new();
        for name in marketplace_tables.table.keys() {
            let rule = ChannelRule::parse_marketplace(&marketplace_tables.section(name)?)?;
            marketplaces.insert(name.to_ascii_lowercase(), rule);
        }
        let Some(default_marketplace) = marketplaces.remove("default") else {
            return Err(marketplace_tables.invalid("default", "missing"));
        };

        let overnight = root.section("overnight")?;
        overnight.allow_only(&["window", "auto_reply_categories"])?;

        Ok(TenantPolicy {
            calendar,
            categories,
            tiers,
            chat: channel("chat")?,
            email: channel("email")?,
            social: channel("social")?,
            voice: channel("voice")?,
            marketplaces,
            default_marketplace,
            overnight_window: overnight.parsed("window", parse_span)?,
            overnight_auto_reply: overnight
                .list("auto_reply_categories", parse_category)?
                .unwrap_or_default(),
            backlog: parse_backlog(root)?,
        })
    }
}

/// Which hours a target counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// The team's working hours.
    Business,
    /// Every hour of every day.
    Calendar,
}

#[derive(Debug, Clone, Copy)]
struct Targets {
    first_response: Duration,
    resolution: Option<Duration>,
}

impl Targets {
    fn parse(section: &Section<'_>) -> Result<Targets, PolicyError> {
        section.allow_only(&["first_response", "resolution"])?;
        let first_response = section.parsed("first_response", parse_duration)?;
        // A tier only tightens, so it needs no resolution; a category without
        // one simply has no resolution target.
        let resolution = section.optional("resolution", parse_duration)?;
        if let Some(resolution) = resolution {
            if resolution < first_response {
                return Err(
                    section.invalid("resolution", "must not be shorter than first_response")
                );
            }
        }
        Ok(Targets {
            first_response,
            resolution,
        })
    }
}

/// A channel's or a marketplace's first-response rule.
#[derive(Debug, Clone)]
struct ChannelRule {
    first_response: Duration,
    clock: Clock,
    ack_counts_as_response: bool,
    /// Looser targets when received outside core hours, on a weekend day or
    /// on a holiday.
    outside_core_hours: Option<Duration>,
    weekend: Option<Duration>,
    holiday: Option<Duration>,
}

impl ChannelRule {
    fn parse_channel(section: &Section<'_>) -> Result<ChannelRule, PolicyError> {
        section.allow_only(&[
            "first_response",
            "clock",
            "ack_counts_as_response",
            "outside_core_hours",
            "weekend",
            "holiday",
        ])?;
        Ok(ChannelRule {
            first_response: section.parsed("first_response", parse_duration)?,
            clock: section
                .optional("clock", parse_clock)?
                .unwrap_or(Clock::Business),
            ack_counts_as_response: section.boolean("ack_counts_as_response")?.unwrap_or(true),
            outside_core_hours: section.optional("outside_core_hours", parse_duration)?,
            weekend: section.optional("weekend", parse_duration)?,
            holiday: section.optional("holiday", parse_duration)?,
        })
    }

    /// Marketplaces have no relaxations (their rule holds every day), and must
    /// say whether an acknowledgement counts: Amazon's does not.
    fn parse_marketplace(section: &Section<'_>) -> Result<ChannelRule, PolicyError> {
        section.allow_only(&["first_response", "clock", "ack_counts_as_response"])?;
        let Some(ack_counts_as_response) = section.boolean("ack_counts_as_response")? else {
            return Err(section.invalid("ack_counts_as_response", "missing"));
        };
        Ok(ChannelRule {
            first_response: section.parsed("first_response", parse_duration)?,
            clock: section
                .optional("clock", parse_clock)?
                .unwrap_or(Clock::Calendar),
            ack_counts_as_response,
            outside_core_hours: None,
            weekend: None,
            holiday: None,
        })
    }
}

/// The team's time zone, working week and days off.
#[derive(Debug, Clone)]
struct TeamCalendar {
    timezone: Tz,
    hours: WeekHours,
    core_hours: WeekHours,
    /// By weekday, Monday first.
    weekend: [bool; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// Working spans per weekday, Monday first, each day's sorted by start.
#[derive(Debug, Clone, Default)]
struct WeekHours {
    days: [Vec<Span>; 7],
}

/// Minutes from local midnight of the day it belongs to; `end` may pass the
/// next midnight (a night shift).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// Whether a local minute of the day falls in the span, on its own day or
    /// after midnight.
    fn covers(self, minute: u32) -> bool {
        let span = self.start..self.end;
        span.contains(&minute) || span.contains(&(minute + MINUTES_PER_DAY))
    }
}

/// Which end of a span a local time is.
#[derive(Debug, Clone, Copy)]
enum Edge {
    Start,
    End,
}

impl TeamCalendar {
    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.timezone).date_naive()
    }

    fn is_weekend(&self, at: DateTime<Utc>) -> bool {
        self.weekend[weekday_index(self.local_date(at))]
    }

    fn is_holiday(&self, at: DateTime<Utc>) -> bool {
        self.holidays.contains(&self.local_date(at))
    }

    fn is_open(&self, week: &WeekHours, at: DateTime<Utc>) -> bool {
        self.spans(week, at)
            .take_while(|(start, _)| *start <= at)
            .any(|(_, end)| at < end)
    }

    fn next_opening(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.spans(&self.hours, at)
            .find(|(_, end)| *end > at)
            .map_or(at, |(start, _)| start.max(at))
    }

    /// `from` plus `target` of working time. A target that ends exactly at
    /// closing time is due then, not at the next opening.
    fn add_working_time(&self, from: DateTime<Utc>, target: Duration) -> DateTime<Utc> {
        let mut remaining = target;
        // Spans may touch or overlap around a DST change; the cursor keeps
        // any instant from counting twice.
        let mut cursor = from;
        for (start, end) in self.spans(&self.hours, from) {
            let start = start.max(cursor);
            if end <= start {
                continue;
            }
            let available = end - start;
            if remaining <= available {
                return start + remaining;
            }
            remaining -= available;
            cursor = end;
        }
        // Only reached when holidays cover the next ten years.
        add_calendar_time(from, target)
    }

    /// Working spans as instants, in start order, from the day before `from`
    /// (its night shift may still be running) onwards.
    fn spans<'a>(
        &'a self,
        week: &'a WeekHours,
        from: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + 'a {
        let today = self.local_date(from);
        let first = today.pred_opt().unwrap_or(today);
        std::iter::successors(Some(first), NaiveDate::succ_opt)
            .take(SEARCH_DAYS)
            .filter(|date| !self.holidays.contains(date))
            .flat_map(move |date| {
                week.days[weekday_index(date)]
                    .iter()
                    .filter_map(move |span| self.span_instants(date, *span))
            })
    }

    fn span_instants(&self, date: NaiveDate, span: Span) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let midnight = date.and_time(NaiveTime::MIN);
        let at = |minutes: u32, edge| {
            let local = midnight.checked_add_signed(Duration::minutes(minutes.into()))?;
            local_to_utc(self.timezone, local, edge)
        };
        Some((at(span.start, Edge::Start)?, at(span.end, Edge::End)?))
    }

    fn parse(section: &Section<'_>) -> Result<TeamCalendar, PolicyError> {
        section.allow_only(&["timezone", "weekend", "holidays", "hours", "core_hours"])?;
        let timezone = section.parsed("timezone", parse_timezone)?;
        let hours = parse_week(&section.section("hours")?)?;
        if hours.days.iter().all(Vec::is_empty) {
            return Err(section.invalid("hours", "the team never works: give at least one span"));
        }
        let core_hours = match section.optional_section("core_hours")? {
            Some(core) => parse_week(&core)?,
            None => hours.clone(),
        };
        let mut weekend = [false; 7];
        let weekend_days = section
            .list("weekend", parse_day)?
            .unwrap_or_else(|| vec![5, 6]);
        for day in weekend_days {
            weekend[day] = true;
        }
        let mut holidays = BTreeSet::new();
        for (first, last) in section.list("holidays", parse_holiday)?.unwrap_or_default() {
            holidays.extend(first.iter_days().take_while(|date| *date <= last));
        }
        Ok(TeamCalendar {
            timezone,
            hours,
            core_hours,
            weekend,
            holidays,
        })
    }
}

/// The instant of a local time. In the hour repeated when clocks go back, a
/// span starts at the first pass and ends at the second, so it covers both;
/// a time skipped when clocks go forward becomes the first minute that exists.
fn local_to_utc(tz: Tz, local: NaiveDateTime, edge: Edge) -> Option<DateTime<Utc>> {
    let instant = match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(instant) => instant,
        MappedLocalTime::Ambiguous(first, second) => match edge {
            Edge::Start => first,
            Edge::End => second,
        },
        MappedLocalTime::None => (1..=MINUTES_PER_DAY).find_map(|minutes| {
            let later = local.checked_add_signed(Duration::minutes(minutes.into()))?;
            tz.from_local_datetime(&later).earliest()
        })?,
    };
    Some(instant.with_timezone(&Utc))
}

/// Saturates rather than panicking on instants at the end of time.
fn add_calendar_time(from: DateTime<Utc>, target: Duration) -> DateTime<Utc> {
    from.checked_add_signed(target)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn weekday_index(date: NaiveDate) -> usize {
    date.weekday().num_days_from_monday() as usize
}

fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::P1Urgent => 0,
        Tier::P2High => 1,
        Tier::P3Normal => 2,
        Tier::P4Low => 3,
    }
}

/// Merges `overrides` into `base`: tables key by key, except a week of hours,
/// which a tenant replaces whole (merging `mon-fri` with `mon` would define
/// Monday twice); any other value replaces the base one.
fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        let whole = key == "hours" || key == "core_hours";
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more)) if !whole => {
                merge(inner, more)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A table of the policy document and its dotted path, for errors that name
/// the key.
struct Section<'a> {
    path: String,
    table: &'a toml::Table,
}

impl<'a> Section<'a> {
    fn new(path: String, table: &'a toml::Table) -> Section<'a> {
        Section { path, table }
    }

    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn invalid(&self, key: &str, problem: impl Into<String>) -> PolicyError {
        invalid(&self.key(key), problem)
    }

    /// Rejects unknown keys, so a typo does not silently keep a default.
    fn allow_only(&self, allowed: &[&str]) -> Result<(), PolicyError> {
        match self
            .table
            .keys()
            .find(|key| !allowed.contains(&key.as_str()))
        {
            Some(key) => Err(self.invalid(
                key,
                format!("unknown key (expected one of: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn section(&self, key: &str) -> Result<Section<'a>, PolicyError> {
        self.optional_section(key)?
            .ok_or_else(|| self.invalid(key, "missing"))
    }

    fn optional_section(&self, key: &str) -> Result<Option<Section<'a>>, PolicyError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Table(table)) => Ok(Some(Section::new(self.key(key), table))),
            Some(other) => {
                Err(self.invalid(key, format!("expected a table, found {}", other.type_str())))
            }
        }
    }

    /// A string value read by `parse`, if present.
    fn optional<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, PolicyError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => parse(text)
                .map(Some)
                .map_err(|problem| self.invalid(key, problem)),
            Some(other) => Err(self.invalid(
                key,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    fn parsed<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, PolicyError> {
        self.optional(key, parse)?
            .ok_or_else(|| self.invalid(key, "missing"))
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, PolicyError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(value)) => Ok(Some(*value)),
            Some(other) => Err(self.invalid(
                key,
                format!("expected true or false, found {}", other.type_str()),
            )),
        }
    }

    fn positive_integer(&self, key: &str) -> Result<u32, PolicyError> {
        match self.table.get(key) {
            None => Err(self.invalid(key, "missing")),
            Some(toml::Value::Integer(value)) => u32::try_from(*value)
                .ok()
                .filter(|value| *value > 0)
                .ok_or_else(|| {
                    self.invalid(key, format!("expected a positive integer, found {value}"))
                }),
            Some(other) => Err(self.invalid(
                key,
                format!("expected an integer, found {}", other.type_str()),
            )),
        }
    }

    /// An array of strings, each read by `parse`; errors name the item.
    fn list<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, PolicyError> {
        let items = match self.table.get(key) {
            None => return Ok(None),
            Some(toml::Value::Array(items)) => items,
            Some(other) => {
                return Err(self.invalid(
                    key,
                    format!("expected an array of strings, found {}", other.type_str()),
                ))
            }
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let item_key = format!("{key}[{i}]");
                match item {
                    toml::Value::String(text) => {
                        parse(text).map_err(|problem| self.invalid(&item_key, problem))
                    }
                    other => Err(self.invalid(
                        &item_key,
                        format!("expected a string, found {}", other.type_str()),
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

fn invalid(key: &str, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// A week of hours: keys are days ("mon") or day ranges ("mon-fri"), values
/// arrays of spans; a day may be given by one key only.
fn parse_week(section: &Section<'_>) -> Result<WeekHours, PolicyError> {
    let mut given: [Option<&str>; 7] = [None; 7];
    let mut week = WeekHours::default();
    for key in section.table.keys() {
        let (first, last) =
            parse_day_range(key).map_err(|problem| section.invalid(key, problem))?;
        let mut spans = section.list(key, parse_span)?.unwrap_or_default();
        spans.sort_by_key(|span| span.start);
        if let Some(pair) = spans.windows(2).find(|pair| pair[0].end > pair[1].start) {
            return Err(section.invalid(
                key,
                format!(
                    "spans {} and {} overlap",
                    show_span(pair[0]),
                    show_span(pair[1])
                ),
            ));
        }
        for day in first..=last {
            if let Some(other) = given[day] {
                return Err(
                    section.invalid(key, format!("{} is already given by `{other}`", DAYS[day]))
                );
            }
            given[day] = Some(key);
            week.days[day] = spans.clone();
        }
    }
    Ok(week)
}

fn parse_backlog(root: &Section<'_>) -> Result<Vec<BacklogRule>, PolicyError> {
    let rules = match root.table.get("backlog") {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(rules)) => rules,
        Some(other) => {
            return Err(root.invalid(
                "backlog",
                format!(
                    "expected an array of tables ([[backlog]]), found {}",
                    other.type_str()
                ),
            ))
        }
    };
    rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let key = format!("backlog[{i}]");
            let toml::Value::Table(table) = rule else {
                return Err(root.invalid(&key, "expected a table"));
            };
            let rule = Section::new(root.key(&key), table);
            rule.allow_only(&[
                "name",
                "level",
                "min_count",
                "categories",
                "unanswered_over",
                "unresolved_over",
            ])?;
            let condition = match (
                rule.optional("unanswered_over", parse_duration)?,
                rule.optional("unresolved_over", parse_duration)?,
            ) {
                (Some(age), None) => BacklogCondition::UnansweredOver(age),
                (None, Some(age)) => BacklogCondition::UnresolvedOver(age),
                _ => {
                    return Err(root.invalid(
                        &key,
                        "give exactly one of unanswered_over and unresolved_over",
                    ))
                }
            };
            Ok(BacklogRule {
                name: rule.parsed("name", |name| Ok(name.to_string()))?,
                level: rule.positive_integer("level")?,
                min_count: rule.positive_integer("min_count")? as usize,
                categories: rule.list("categories", parse_category)?,
                condition,
            })
        })
        .collect()
}

/// "90s", "2m", "4h", "1h30m", "2d".
fn parse_duration(text: &str) -> Result<Duration, String> {
    let problem =
        || format!("expected a duration such as \"30m\", \"4h\" or \"1h30m\", found {text:?}");
    let mut total = Duration::zero();
    let mut digits = String::new();
    let mut parts = 0;
    for ch in text.trim().chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let amount: i64 = digits.parse().map_err(|_| problem())?;
        digits.clear();
        let part = match ch {
            'd' => Duration::try_days(amount),
            'h' => Duration::try_hours(amount),
            'm' => Duration::try_minutes(amount),
            's' => Duration::try_seconds(amount),
            _ => None,
        };
        total = part
            .and_then(|part| total.checked_add(&part))
            .ok_or_else(problem)?;
        parts += 1;
    }
    if parts == 0 || !digits.is_empty() {
        return Err(problem());
    }
    Ok(total)
}

fn parse_clock(text: &str) -> Result<Clock, String> {
    match text {
        "business" => Ok(Clock::Business),
        "calendar" => Ok(Clock::Calendar),
        _ => Err(format!(
            "expected \"business\" or \"calendar\", found {text:?}"
        )),
    }
}

fn parse_timezone(text: &str) -> Result<Tz, String> {
    text.parse()
        .map_err(|_| format!("unknown IANA time zone {text:?} (e.g. \"Asia/Shanghai\")"))
}

fn parse_category(text: &str) -> Result<Category, String> {
    Category::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        format!(
            "unknown category {text:?} (expected one of: {})",
            names.join(", ")
        )
    })
}

fn parse_day(text: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|day| *day == text)
        .ok_or_else(|| format!("expected a day such as \"mon\", found {text:?}"))
}

/// "sat", or "mon-fri" (in week order, Monday first).
fn parse_day_range(text: &str) -> Result<(usize, usize), String> {
    match text.split_once('-') {
        None => parse_day(text).map(|day| (day, day)),
        Some((first, last)) => {
            let (first, last) = (parse_day(first)?, parse_day(last)?);
            if first > last {
                return Err(format!(
                    "day range {text:?} runs backwards (weeks start on mon)"
                ));
            }
            Ok((first, last))
        }
    }
}

/// "09:00-18:00"; "22:00-06:00" runs past midnight; "24:00" ends a day.
fn parse_span(text: &str) -> Result<Span, String> {
    let problem = || format!("expected a time span such as \"09:00-18:00\", found {text:?}");
    let (start, end) = text.split_once('-').ok_or_else(problem)?;
    let start = parse_minute(start)
        .filter(|m| *m < MINUTES_PER_DAY)
        .ok_or_else(problem)?;
    let end = parse_minute(end).ok_or_else(problem)?;
    if start == end {
        return Err(format!(
            "time span {text:?} is empty (use \"00:00-24:00\" for a whole day)"
        ));
    }
    let end = if end < start {
        end + MINUTES_PER_DAY
    } else {
        end
    };
    Ok(Span { start, end })
}

/// "HH:MM" as minutes after midnight, up to "24:00".
fn parse_minute(text: &str) -> Option<u32> {
    let (hours, minutes) = text.trim().split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= MINUTES_PER_DAY).then_some(total)
}

/// "2026-12-25", or an inclusive range "2026-12-24..2026-12-26".
fn parse_holiday(text: &str) -> Result<(NaiveDate, NaiveDate), String> {
    let date = |part: &str| {
        NaiveDate::parse_from_str(part.trim(), "%Y-%m-%d").map_err(|_| {
            format!("expected a date \"YYYY-MM-DD\" or a range \"A..B\", found {text:?}")
        })
    };
    let (first, last) = match text.split_once("..") {
        Some((first, last)) => (date(first)?, date(last)?),
        None => (date(text)?, date(text)?),
    };
    // A year is plenty for a holiday; more is surely a typo in the year.
    if last < first || (last - first).num_days() > 366 {
        return Err(format!(
            "holiday range {text:?} must run forwards and span at most a year"
        ));
    }
    Ok((first, last))
}

fn show_span(span: Span) -> String {
    let show = |m: u32| format!("{:02}:{:02}", (m / 60) % 24, m % 60);
    format!("{}-{}", show(span.start), show(span.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tenants used below; each overrides only what its tests need.
    const TENANTS: &str = r#"
[tenants.berlin.calendar]
timezone = "Europe/Berlin"
holidays = []
[tenants.berlin.calendar.hours]
mon-fri = ["09:00-18:00"]

[tenants.berlin_nights.calendar]
timezone = "Europe/Berlin"
holidays = []
[tenants.berlin_nights.calendar.hours]
mon-fri = ["09:00-18:00"]
sat = ["22:00-06:00"]

[tenants.new_york.calendar]
timezone = "America/New_York"
holidays = []
[tenants.new_york.calendar.hours]
mon-fri = ["09:00-18:00"]

[tenants.new_york_sunday.calendar]
timezone = "America/New_York"
holidays = []
[tenants.new_york_sunday.calendar.hours]
sun = ["00:00-04:00"]

[tenants.new_york_gap.calendar]
timezone = "America/New_York"
holidays = []
[tenants.new_york_gap.calendar.hours]
sun = ["02:30-05:00"]

[tenants.london.calendar]
timezone = "Europe/London"
holidays = ["2026-12-25", "2026-12-31..2027-01-01"]
[tenants.london.calendar.hours]
mon-fri = ["09:00-18:00"]
[tenants.london.calendar.core_hours]
mon-fri = ["10:00-17:00"]
[tenants.london.channels.email]
first_response = "8h"
holiday = "16h"

[tenants.always.calendar]
timezone = "UTC"
holidays = []
[tenants.always.calendar.hours]
mon-sun = ["00:00-24:00"]

[tenants.night_bot.overnight]
window = "23:00-07:00"
auto_reply_categories = ["shipping_status"]
"#;

    fn policy() -> PolicySla {
        PolicySla::builtin_with(TENANTS).expect("test tenants are valid")
    }

    /// A local wall-clock time in `tz`, which must exist and be unambiguous.
    fn local(tz: Tz, text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("test time");
        tz.from_local_datetime(&naive)
            .single()
            .expect("test time exists once")
            .with_timezone(&Utc)
    }

    fn shown(tz: Tz, at: DateTime<Utc>) -> String {
        at.with_timezone(&tz)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("test instant")
    }

    fn input<'a>(
        tenant: &'a str,
        category: Category,
        channel: Channel,
        marketplace: &'a str,
        received_at: DateTime<Utc>,
    ) -> SlaInput<'a> {
        SlaInput {
            tenant,
            category,
            tier: category.base_tier(),
            channel,
            marketplace,
            received_at,
        }
    }

    fn email(tenant: &str, category: Category, received_at: DateTime<Utc>) -> Sla {
        policy().due(&input(tenant, category, Channel::Email, "", received_at))
    }

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;
    const BERLIN: Tz = chrono_tz::Europe::Berlin;
    const NEW_YORK: Tz = chrono_tz::America::New_York;
    const LONDON: Tz = chrono_tz::Europe::London;

    #[test]
    fn category_targets_follow_the_domain_table() {
        // An always-open calendar makes working time equal calendar time.
        let received = utc("2026-11-18T10:00:00Z");
        let table = [
            (Category::OrderChange, 2, Some(4)),
            (Category::RefundReturn, 1, Some(24)),
            (Category::Complaint, 2, Some(48)),
            (Category::ShippingStatus, 4, Some(24)),
            (Category::PaymentBilling, 4, Some(24)),
            (Category::ProductQuestion, 12, Some(48)),
            (Category::Account, 12, Some(48)),
            (Category::HumanRequest, 2, None),
            (Category::Feedback, 24, Some(72)),
            (Category::Other, 12, Some(48)),
        ];
        for (category, first, resolution) in table {
            let sla = email("always", category, received);
            assert_eq!(
                sla.first_response_due,
                received + Duration::hours(first),
                "{category}"
            );
            assert_eq!(
                sla.resolution_due,
                resolution.map(|h| received + Duration::hours(h)),
                "{category}"
            );
            assert!(sla.ack_counts_as_response && !sla.calendar_hours);
        }
    }

    #[test]
    fn tier_targets_tighten_only_raised_inquiries() {
        let policy = policy();
        let received = utc("2026-11-18T10:00:00Z");
        let due = |category, tier| {
            policy.due(&SlaInput {
                tier,
                ..input("always", category, Channel::Email, "", received)
            })
        };
        let hours = |sla: &Sla| (sla.first_response_due - received).num_hours();
        // order_change is P1 by nature: the table's 2 h, not P1's 1 h.
        assert_eq!(hours(&due(Category::OrderChange, Tier::P1Urgent)), 2);
        assert_eq!(hours(&due(Category::ProductQuestion, Tier::P2High)), 2);
        assert_eq!(hours(&due(Category::ProductQuestion, Tier::P1Urgent)), 1);
        // An angry complaint raised to P1: resolution tightened from 48 h to 24 h.
        let complaint = due(Category::Complaint, Tier::P1Urgent);
        assert_eq!(hours(&complaint), 1);
        assert_eq!(
            complaint.resolution_due,
            Some(received + Duration::hours(24))
        );
        // A tier never creates a resolution target the category lacks.
        assert_eq!(
            due(Category::HumanRequest, Tier::P1Urgent).resolution_due,
            None
        );
    }

    #[test]
    fn friday_afternoon_target_runs_into_monday() {
        let sla = email(
            "berlin",
            Category::ShippingStatus,
            local(BERLIN, "2026-11-20 17:00"),
        );
        assert_eq!(
            shown(BERLIN, sla.first_response_due),
            "Mon 2026-11-23 12:00 CET"
        );
        assert!(sla.within_team_hours);
    }

    #[test]
    fn friday_evening_email_waits_for_saturday_then_monday() {
        let received = local(SHANGHAI, "2026-11-20 20:00");
        // 12 h: Saturday 10:00-14:00 gives 4 h, Monday 09:00 the other 8 h.
        let question = email("", Category::ProductQuestion, received);
        assert_eq!(
            shown(SHANGHAI, question.first_response_due),
            "Mon 2026-11-23 17:00 CST"
        );
        assert!(!question.within_team_hours && !question.overnight);
        // 4 h ends exactly at Saturday's closing time: due then, not Monday.
        let shipping = email("", Category::ShippingStatus, received);
        assert_eq!(
            shown(SHANGHAI, shipping.first_response_due),
            "Sat 2026-11-21 14:00 CST"
        );
        // 24 h of resolution: Sat 4 h, Mon 9 h, Tue 9 h, Wed 09:00 + 2 h.
        assert_eq!(
            shown(SHANGHAI, shipping.resolution_due.expect("has a target")),
            "Wed 2026-11-25 11:00 CST"
        );
    }

    #[test]
    fn europe_spring_forward() {
        // Clocks go forward on Sunday 29 March 2026.
        let friday = email(
            "berlin",
            Category::ShippingStatus,
            local(BERLIN, "2026-03-27 17:00"),
        );
        assert_eq!(
            shown(BERLIN, friday.first_response_due),
            "Mon 2026-03-30 12:00 CEST"
        );
        assert_eq!(friday.first_response_due, utc("2026-03-30T10:00:00Z"));
        // The Saturday night shift 22:00-06:00 loses an hour: 7 h of the 12 h
        // target, the other 5 h from Monday 09:00.
        let night = email(
            "berlin_nights",
            Category::ProductQuestion,
            local(BERLIN, "2026-03-28 22:00"),
        );
        assert_eq!(
            shown(BERLIN, night.first_response_due),
            "Mon 2026-03-30 14:00 CEST"
        );
    }

    #[test]
    fn europe_fall_back() {
        // Clocks go back on Sunday 25 October 2026.
        let friday = email(
            "berlin",
            Category::ShippingStatus,
            local(BERLIN, "2026-10-23 17:00"),
        );
        assert_eq!(
            shown(BERLIN, friday.first_response_due),
            "Mon 2026-10-26 12:00 CET"
        );
        assert_eq!(friday.first_response_due, utc("2026-10-26T11:00:00Z"));
        // The night shift gains an hour: 9 h, then 3 h from Monday 09:00.
        let night = email(
            "berlin_nights",
            Category::ProductQuestion,
            local(BERLIN, "2026-10-24 22:00"),
        );
        assert_eq!(
            shown(BERLIN, night.first_response_due),
            "Mon 2026-10-26 12:00 CET"
        );
    }

    #[test]
    fn us_daylight_saving_changes() {
        // Second Sunday of March 2026 and first Sunday of November 2026.
        let march = email(
            "new_york",
            Category::ShippingStatus,
            local(NEW_YORK, "2026-03-06 17:00"),
        );
        assert_eq!(march.first_response_due, utc("2026-03-09T16:00:00Z"));
        assert_eq!(
            shown(NEW_YORK, march.first_response_due),
            "Mon 2026-03-09 12:00 EDT"
        );
        let november = email(
            "new_york",
            Category::ShippingStatus,
            local(NEW_YORK, "2026-10-30 17:00"),
        );
        assert_eq!(november.first_response_due, utc("2026-11-02T17:00:00Z"));
        assert_eq!(
            shown(NEW_YORK, november.first_response_due),
            "Mon 2026-11-02 12:00 EST"
        );
        // Sunday 00:00-04:00 lasts 5 h on the night clocks go back.
        let policy = policy();
        let calendar = &policy.policy("new_york_sunday").calendar;
        let midnight = local(NEW_YORK, "2026-11-01 00:00");
        assert_eq!(
            calendar.add_working_time(midnight, Duration::minutes(270)),
            midnight + Duration::minutes(270)
        );
        // Calendar hours are elapsed hours: 24 h after Saturday noon EST the
        // clock reads 13:00 EDT.
        let amazon = policy.due(&input(
            "new_york",
            Category::ProductQuestion,
            Channel::Marketplace,
            "amazon",
            local(NEW_YORK, "2026-03-07 12:00"),
        ));
        assert_eq!(
            shown(NEW_YORK, amazon.first_response_due),
            "Sun 2026-03-08 13:00 EDT"
        );
    }

    #[test]
    fn hours_that_start_in_the_skipped_hour_open_when_it_ends() {
        // 02:30 does not exist on 8 March 2026 in New York: open at 03:00 EDT.
        let policy = policy();
        let opening = policy.next_team_opening("new_york_gap", local(NEW_YORK, "2026-03-08 00:00"));
        assert_eq!(shown(NEW_YORK, opening), "Sun 2026-03-08 03:00 EDT");
        assert!(policy.is_team_hours("new_york_gap", opening));
        assert!(!policy.is_team_hours("new_york_gap", opening - Duration::seconds(1)));
    }

    #[test]
    fn saturday_amazon_message_counts_calendar_hours() {
        let policy = policy();
        let received = local(SHANGHAI, "2026-11-21 15:00");
        let sla = policy.due(&input(
            "",
            Category::ProductQuestion,
            Channel::Marketplace,
            "amazon",
            received,
        ));
        // The team is closed until Monday; Amazon's 24 h run through Sunday.
        assert_eq!(
            shown(SHANGHAI, sla.first_response_due),
            "Sun 2026-11-22 15:00 CST"
        );
        assert!(sla.calendar_hours && !sla.ack_counts_as_response && !sla.within_team_hours);
        // Resolution stays in working time: 48 h from Monday 09:00 is 45 h
        // Monday to Friday and 3 h on Saturday.
        assert_eq!(
            shown(SHANGHAI, sla.resolution_due.expect("has a target")),
            "Sat 2026-11-28 13:00 CST"
        );
        // Marketplace names match by family; a refund in working hours is
        // bound by its 1 h category target, not the marketplace's 24 h.
        let refund = policy.due(&input(
            "",
            Category::RefundReturn,
            Channel::Marketplace,
            "Amazon_DE",
            local(SHANGHAI, "2026-11-21 11:00"),
        ));
        assert_eq!(
            shown(SHANGHAI, refund.first_response_due),
            "Sat 2026-11-21 12:00 CST"
        );
        assert!(!refund.calendar_hours && !refund.ack_counts_as_response);
    }

    #[test]
    fn public_holidays_are_closed_and_relax_email() {
        // Christmas Day is a holiday, then the weekend: 1 h on Thursday and
        // 3 h from Monday 09:00.
        let christmas_eve = local(LONDON, "2026-12-24 17:00");
        let sla = email("london", Category::ShippingStatus, christmas_eve);
        assert_eq!(
            shown(LONDON, sla.first_response_due),
            "Mon 2026-12-28 12:00 GMT"
        );
        // The range closes New Year's Eve and Day.
        let year_end = email(
            "london",
            Category::ShippingStatus,
            local(LONDON, "2026-12-30 17:00"),
        );
        assert_eq!(
            shown(LONDON, year_end.first_response_due),
            "Mon 2027-01-04 12:00 GMT"
        );
        // This tenant's email cap is 8 h, relaxed to 16 h when received on a
        // holiday, where the product question's own 12 h binds instead.
        let working_day = email(
            "london",
            Category::ProductQuestion,
            local(LONDON, "2026-12-22 10:00"),
        );
        assert_eq!(
            shown(LONDON, working_day.first_response_due),
            "Tue 2026-12-22 18:00 GMT"
        );
        let holiday = email(
            "london",
            Category::ProductQuestion,
            local(LONDON, "2026-12-25 10:00"),
        );
        assert_eq!(
            shown(LONDON, holiday.first_response_due),
            "Tue 2026-12-29 12:00 GMT"
        );
        // The shipped calendar reads its Golden Week range.
        let golden_week = email(
            "",
            Category::ShippingStatus,
            local(SHANGHAI, "2026-09-30 17:00"),
        );
        assert_eq!(
            shown(SHANGHAI, golden_week.first_response_due),
            "Thu 2026-10-08 12:00 CST"
        );
    }

    #[test]
    fn buyer_in_utc_minus_8_team_in_shanghai() {
        let policy = policy();
        let buyer = chrono_tz::America::Los_Angeles;
        // 09:00 in Los Angeles is 01:00 in Shanghai: night, team closed.
        let morning = local(buyer, "2026-11-23 09:00");
        let sla = email("", Category::ShippingStatus, morning);
        assert!(sla.overnight && !sla.within_team_hours);
        assert!(policy
            .overnight_auto_reply_categories("")
            .contains(&Category::ShippingStatus));
        assert_eq!(
            shown(SHANGHAI, policy.next_team_opening("", morning)),
            "Tue 2026-11-24 09:00 CST"
        );
        assert_eq!(
            shown(SHANGHAI, sla.first_response_due),
            "Tue 2026-11-24 13:00 CST"
        );
        // What the acknowledgement tells the buyer, in their time.
        assert_eq!(
            shown(buyer, sla.first_response_due),
            "Mon 2026-11-23 21:00 PST"
        );
        // 17:00 in Los Angeles is 09:00 in Shanghai: the same due time.
        let evening = email(
            "",
            Category::ShippingStatus,
            local(buyer, "2026-11-23 17:00"),
        );
        assert!(evening.within_team_hours && !evening.overnight);
        assert_eq!(evening.first_response_due, sla.first_response_due);
    }

    #[test]
    fn channel_caps_and_relaxations() {
        let policy = policy();
        let chat = |at| {
            policy
                .due(&input(
                    "london",
                    Category::ShippingStatus,
                    Channel::Chat,
                    "",
                    at,
                ))
                .first_response_due
        };
        // Core hours 10:00-17:00: 2 min inside, 5 min outside, and from the
        // next opening when the team is closed.
        let core = local(LONDON, "2026-11-18 11:00");
        assert_eq!(chat(core), core + Duration::minutes(2));
        let early = local(LONDON, "2026-11-18 09:30");
        assert_eq!(chat(early), early + Duration::minutes(5));
        assert_eq!(
            shown(LONDON, chat(local(LONDON, "2026-11-18 20:00"))),
            "Thu 2026-11-19 09:05 GMT"
        );
        // Social: 4 h on a weekday; at the weekend the 24 h relaxation lets
        // the question's own 12 h bind (Sat 4 h + Mon 8 h).
        let social = |at| {
            policy
                .due(&input(
                    "",
                    Category::ProductQuestion,
                    Channel::Social,
                    "",
                    at,
                ))
                .first_response_due
        };
        assert_eq!(
            shown(SHANGHAI, social(local(SHANGHAI, "2026-11-18 10:00"))),
            "Wed 2026-11-18 14:00 CST"
        );
        assert_eq!(
            shown(SHANGHAI, social(local(SHANGHAI, "2026-11-21 10:00"))),
            "Mon 2026-11-23 17:00 CST"
        );
        // Voice: voicemail called back within 2 h.
        let voice = policy.due(&input(
            "",
            Category::ProductQuestion,
            Channel::Voice,
            "",
            local(SHANGHAI, "2026-11-18 10:00"),
        ));
        assert_eq!(
            shown(SHANGHAI, voice.first_response_due),
            "Wed 2026-11-18 12:00 CST"
        );
    }

    #[test]
    fn team_hours_and_overnight_helpers() {
        let policy = policy();
        let at = |text| local(SHANGHAI, text);
        assert!(policy.is_team_hours("", at("2026-11-18 09:00")));
        assert!(!policy.is_team_hours("", at("2026-11-18 18:00")));
        assert!(policy.is_team_hours("", at("2026-11-21 13:59")));
        // Open: the opening is now.
        assert_eq!(
            policy.next_team_opening("", at("2026-11-18 11:15")),
            at("2026-11-18 11:15")
        );
        assert_eq!(
            policy.next_team_opening("", at("2026-11-21 15:00")),
            at("2026-11-23 09:00")
        );
        // A night shift begun on Saturday is still running on Sunday morning.
        let sunday = local(BERLIN, "2026-11-22 05:59");
        assert!(policy.is_team_hours("berlin_nights", sunday));
        assert!(!policy.is_team_hours("berlin_nights", sunday + Duration::minutes(1)));
        // The night window is [22:00, 08:00).
        assert!(policy.is_overnight("", at("2026-11-18 22:00")));
        assert!(policy.is_overnight("", at("2026-11-19 07:59")));
        assert!(!policy.is_overnight("", at("2026-11-19 08:00")));
        assert!(!policy.is_overnight("", at("2026-11-18 21:59")));
        assert_eq!(
            policy.overnight_auto_reply_categories(""),
            [
                Category::ShippingStatus,
                Category::ProductQuestion,
                Category::Account
            ]
        );
        assert_eq!(
            policy.overnight_auto_reply_categories("night_bot"),
            [Category::ShippingStatus]
        );
        assert!(!policy.is_overnight("night_bot", at("2026-11-18 22:30")));
    }

    #[test]
    fn tenants_override_parts_and_unknown_tenants_get_the_base() {
        let policy = policy();
        assert_eq!(policy.policy("nobody").timezone(), SHANGHAI);
        assert_eq!(policy.policy("berlin").timezone(), BERLIN);
        // The tenant's week replaced the base week whole: no Saturday 10:00-14:00.
        assert!(!policy.is_team_hours("berlin", local(BERLIN, "2026-11-21 11:00")));
        // Everything not overridden is the base's.
        assert_eq!(policy.policy("berlin").backlog_rules().len(), 2);
        let amazon = policy.due(&input(
            "berlin",
            Category::Feedback,
            Channel::Marketplace,
            "amazon",
            local(BERLIN, "2026-11-21 11:00"),
        ));
        assert!(amazon.calendar_hours);
    }

    fn error(overrides: &str) -> String {
        match PolicySla::builtin_with(overrides) {
            Ok(_) => panic!("accepted a bad policy:\n{overrides}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn bad_policies_name_the_key() {
        assert_eq!(
            error("[calendar]\ntimezone = \"Mars/Olympus\""),
            "policy key `calendar.timezone`: unknown IANA time zone \"Mars/Olympus\" (e.g. \"Asia/Shanghai\")"
        );
        assert!(error("[tenants.acme.categories.refund_return]\nfirst_response = \"soon\"")
            .starts_with("policy key `tenants.acme.categories.refund_return.first_response`: expected a duration"));
        assert!(error("[categories.refund_return]\nfirst_responce = \"1h\"")
            .starts_with("policy key `categories.refund_return.first_responce`: unknown key"));
        assert!(error("[categories.order_change]\nresolution = \"1h\"")
            .contains("`categories.order_change.resolution`: must not be shorter"));
        assert!(error("[calendar]\nholidays = [\"2026-02-30\"]")
            .starts_with("policy key `calendar.holidays[0]`"));
        assert!(
            error("[calendar.hours]\nmon-fri = [\"09:00-13:00\", \"12:00-18:00\"]")
                .contains("`calendar.hours.mon-fri`: spans 09:00-13:00 and 12:00-18:00 overlap")
        );
        assert!(
            error("[calendar.hours]\nmon-fri = [\"09:00-18:00\"]\nfri = [\"09:00-12:00\"]")
                .contains("fri is already given by")
        );
        assert!(
            error("[calendar.hours]\nsun = []").contains("`calendar.hours`: the team never works")
        );
        assert!(error("[marketplaces.ebay]\nfirst_response = \"24h\"")
            .starts_with("policy key `marketplaces.ebay.ack_counts_as_response`: missing"));
        assert!(error("[overnight]\nauto_reply_categories = [\"refunds\"]")
            .starts_with("policy key `overnight.auto_reply_categories[0]`: unknown category"));
        assert!(error("[[tenants.acme.backlog]]\nname = \"x\"\nlevel = 0\nmin_count = 1\nunanswered_over = \"1h\"")
            .starts_with("policy key `tenants.acme.backlog[0].level`"));
        assert!(error("[[backlog]]\nname = \"x\"\nlevel = 1\nmin_count = 1")
            .contains("`backlog[0]`: give exactly one of"));
        assert!(error("[calendar\n").starts_with("policy is not valid TOML"));
        // A complete document must have every section.
        let missing = PolicySla::parse(
            "[calendar]\ntimezone = \"UTC\"\n[calendar.hours]\nmon = [\"09:00-17:00\"]",
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert_eq!(missing, Err("policy key `categories`: missing".to_string()));
    }

    #[test]
    fn durations_and_spans_parse() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_duration("2d"), Ok(Duration::hours(48)));
        assert_eq!(parse_duration("90s"), Ok(Duration::seconds(90)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("4").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("4 hours").is_err());
        assert!(parse_duration("99999999999999d").is_err());
        assert_eq!(
            parse_span("22:00-08:00"),
            Ok(Span {
                start: 1320,
                end: 1920
            })
        );
        assert_eq!(
            parse_span("00:00-24:00"),
            Ok(Span {
                start: 0,
                end: 1440
            })
        );
        assert!(parse_span("24:00-08:00").is_err());
        assert!(parse_span("9:00-18:00").is_err());
        assert!(parse_span("09:60-18:00").is_err());
        assert!(parse_span("09:00-09:00").is_err());
    }

    #[test]
    fn the_shipped_policy_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml");
        let loaded = PolicySla::load(&path).expect("shipped policy loads");
        assert_eq!(loaded.policy("").timezone(), SHANGHAI);
        let missing = PolicySla::load(Path::new("/nonexistent/policy.toml"));
        assert!(matches!(missing, Err(PolicyError::Read { .. })));
    }
}
