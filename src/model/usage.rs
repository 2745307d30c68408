//! Usage and cost: what one run used, totals per workspace by day and model (persisted by
//! [`crate::model::sessions::SessionStore`]), and the daily budget.
//!
//! The CLI's `result` line mixes two kinds of numbers. `usage`, `num_turns` and `duration_ms`
//! are the turn's own. `total_cost_usd` and `modelUsage` are running totals of the process:
//! a live process's second turn reports both turns' cost, and CLIs that write a `cost-state`
//! line into the transcript (2.1.330; 2.1.197 does not) restore it on `--resume` and
//! `--fork-session`. A run's own cost is therefore the difference from the totals the process
//! started the turn with ([`CliTotals`]), which the pipeline knows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base::error::{ErrorKind, ServerError};
use crate::claude::session::{RunResult, Usage};

/// Counts that add up: one run's, a session's, a day's or a model's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageCounts {
    pub runs: u64,
    /// Agent turns (API round trips) as the CLI counts them.
    pub turns: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
    pub cost_usd: f64,
    pub duration_ms: u64,
}

impl UsageCounts {
    pub fn add(&mut self, other: &UsageCounts) {
        self.runs += other.runs;
        self.turns += other.turns;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_creation_tokens += other.cache_creation_tokens;
        self.cost_usd += other.cost_usd;
        self.duration_ms += other.duration_ms;
    }

    /// Input + output tokens (cache reads are reported apart).
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// What one run used: its own share, never the process's running total.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunUsage {
    #[serde(flatten)]
    pub counts: UsageCounts,
    /// The model the run started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Per model (a run can use a fallback model or a small model for side tasks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, UsageCounts>,
}

/// A CLI process's running totals, to take differences from.
impl RunUsage {
    /// Add what another attempt of the same run used (a retry, a recovery): the run still
    /// counts once.
    pub fn add_attempt(&mut self, attempt: &RunUsage) {
        let runs = self.counts.runs.max(attempt.counts.runs);
        self.counts.add(&attempt.counts);
        self.counts.runs = runs;
        for (model, counts) in &attempt.models {
            self.models.entry(model.clone()).or_default().add(counts);
        }
        if self.model.is_none() {
            self.model.clone_from(&attempt.model);
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CliTotals {
    pub cost_usd: f64,
    pub models: BTreeMap<String, UsageCounts>,
}

impl CliTotals {
    /// From a `result` line: `total_cost_usd` and `modelUsage`.
    pub fn from_result(raw: &Value) -> Self {
        Self::parse(raw, "total_cost_usd")
    }

    /// From a transcript's `cost-state` line: `totalCostUSD` and `modelUsage`.
    pub fn from_cost_state(line: &Value) -> Self {
        Self::parse(line, "totalCostUSD")
    }

    fn parse(value: &Value, cost_key: &str) -> Self {
        let cost_usd = value.get(cost_key).and_then(Value::as_f64).unwrap_or(0.0);
        let models = value
            .get("modelUsage")
            .and_then(Value::as_object)
            .map(|models| {
                models.iter().map(|(name, usage)| (name.clone(), model_counts(usage))).collect()
            })
            .unwrap_or_default();
        Self { cost_usd, models }
    }
}

fn model_counts(usage: &Value) -> UsageCounts {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    UsageCounts {
        input_tokens: count("inputTokens"),
        output_tokens: count("outputTokens"),
        cache_read_tokens: count("cacheReadInputTokens"),
        cache_creation_tokens: count("cacheCreationInputTokens"),
        cost_usd: usage.get("costUSD").and_then(Value::as_f64).unwrap_or(0.0),
        ..UsageCounts::default()
    }
}

/// The run's own usage, given the totals its process had before the turn, and the totals after
/// it (the next turn's `before`). A total that went down means the CLI started counting afresh
/// (it did not restore a resumed conversation's cost), so the new total is the run's own.
pub fn run_usage(result: &RunResult, before: &CliTotals) -> (RunUsage, CliTotals) {
    let mut after = CliTotals::from_result(&result.raw);
    if result.raw.get("total_cost_usd").is_none() {
        after.cost_usd = result.cost_usd;
    }
    let cost_usd = difference(after.cost_usd, before.cost_usd);
    let models = after
        .models
        .iter()
        .map(|(name, total)| {
            let own = match before.models.get(name) {
                Some(earlier) if total.cost_usd >= earlier.cost_usd => UsageCounts {
                    input_tokens: total.input_tokens.saturating_sub(earlier.input_tokens),
                    output_tokens: total.output_tokens.saturating_sub(earlier.output_tokens),
                    cache_read_tokens: total
                        .cache_read_tokens
                        .saturating_sub(earlier.cache_read_tokens),
                    cache_creation_tokens: total
                        .cache_creation_tokens
                        .saturating_sub(earlier.cache_creation_tokens),
                    cost_usd: total.cost_usd - earlier.cost_usd,
                    ..UsageCounts::default()
                },
                _ => *total,
            };
            (name.clone(), own)
        })
        .filter(|(_, own)| own.tokens() > 0 || own.cost_usd > 0.0)
        .collect();
    let usage = RunUsage {
        counts: UsageCounts {
            runs: 1,
            turns: u64::from(result.num_turns),
            input_tokens: result.usage.input_tokens,
            output_tokens: result.usage.output_tokens,
            cache_read_tokens: result.usage.cache_read_tokens,
            cache_creation_tokens: result.usage.cache_creation_tokens,
            cost_usd,
            duration_ms: result.duration_ms,
        },
        model: result.model.clone(),
        models,
    };
    (usage, after)
}

fn difference(after: f64, before: f64) -> f64 {
    if after >= before { after - before } else { after }
}

/// One workspace's usage, by UTC day and model. Persisted as `usage.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageLedger {
    #[serde(default)]
    pub days: BTreeMap<String, DayUsage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayUsage {
    #[serde(default)]
    pub total: UsageCounts,
    #[serde(default)]
    pub models: BTreeMap<String, UsageCounts>,
}

impl UsageLedger {
    /// Count `run` on `day` (`YYYY-MM-DD`).
    pub fn add(&mut self, day: &str, run: &RunUsage) {
        let entry = self.days.entry(day.to_owned()).or_default();
        entry.total.add(&run.counts);
        if run.models.is_empty() {
            if let Some(model) = &run.model {
                entry.models.entry(model.clone()).or_default().add(&run.counts);
            }
            return;
        }
        // The run counts once, under the model it started with; tokens and cost per model.
        for (name, counts) in &run.models {
            let mut counts = *counts;
            counts.runs = u64::from(run.model.as_deref().is_none_or(|model| model == name));
            entry.models.entry(name.clone()).or_default().add(&counts);
        }
    }

    pub fn day(&self, day: &str) -> UsageCounts {
        self.days.get(day).map(|usage| usage.total).unwrap_or_default()
    }

    pub fn total(&self) -> UsageCounts {
        let mut total = UsageCounts::default();
        for usage in self.days.values() {
            total.add(&usage.total);
        }
        total
    }

    pub fn by_day(&self) -> BTreeMap<String, UsageCounts> {
        self.days.iter().map(|(day, usage)| (day.clone(), usage.total)).collect()
    }

    pub fn by_model(&self) -> BTreeMap<String, UsageCounts> {
        let mut models: BTreeMap<String, UsageCounts> = BTreeMap::new();
        for usage in self.days.values() {
            for (name, counts) in &usage.models {
                models.entry(name.clone()).or_default().add(counts);
            }
        }
        models
    }

    /// Fold another ledger in (several workspaces into one report).
    pub fn merge(&mut self, other: &UsageLedger) {
        for (day, usage) in &other.days {
            let entry = self.days.entry(day.clone()).or_default();
            entry.total.add(&usage.total);
            for (name, counts) in &usage.models {
                entry.models.entry(name.clone()).or_default().add(counts);
            }
        }
    }
}

/// What to do once the daily budget is spent.
pub const DAILY_BUDGET_HINT: &str =
    "raise the `dailyBudgetUsd` setting, or wait until tomorrow (days are counted in UTC)";

/// Refuse a run when the workspace has spent its daily budget (`dailyBudgetUsd`) today;
/// otherwise what is left of it for the run (`None`: no daily budget).
pub fn check_daily_budget(
    spent_today: f64,
    budget: Option<f64>,
) -> Result<Option<f64>, ServerError> {
    match budget {
        Some(budget) if spent_today >= budget => Err(ServerError::new(
            ErrorKind::BUDGET_EXCEEDED,
            format!(
                "today's Claude spending in this workspace, ${spent_today:.4}, has reached the daily \
                 budget of ${budget:.4} (dailyBudgetUsd)"
            ),
            DAILY_BUDGET_HINT,
        )),
        Some(budget) => Ok(Some(budget - spent_today)),
        None => Ok(None),
    }
}

/// Prices of a model family, US dollars per million tokens (Anthropic's list prices; cache reads
/// and writes, which the CLI uses heavily, cost less and more: an estimate ignores them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// The family the price is for, as the estimate names it.
    pub family: &'static str,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

const OPUS: Price = Price { family: "Opus", input_per_mtok: 5.0, output_per_mtok: 25.0 };
const OPUS_OLD: Price =
    Price { family: "Opus (4.1 and older)", input_per_mtok: 15.0, output_per_mtok: 75.0 };
const SONNET: Price = Price { family: "Sonnet", input_per_mtok: 3.0, output_per_mtok: 15.0 };
const HAIKU: Price = Price { family: "Haiku", input_per_mtok: 1.0, output_per_mtok: 5.0 };
const HAIKU_3_5: Price = Price { family: "Haiku 3.5", input_per_mtok: 0.8, output_per_mtok: 4.0 };
const HAIKU_3: Price = Price { family: "Haiku 3", input_per_mtok: 0.25, output_per_mtok: 1.25 };

/// The price of `model` (a name or an alias). Unknown models and the CLI's default are priced as
/// Sonnet.
pub fn price(model: Option<&str>) -> Price {
    let name = model.unwrap_or_default().to_ascii_lowercase();
    if name.contains("opus") {
        let old =
            ["opus-4-0", "opus-4-1", "opus-4-2025", "3-opus"].iter().any(|m| name.contains(m))
                || name == "claude-opus-4";
        if old { OPUS_OLD } else { OPUS }
    } else if name.contains("haiku") {
        if name.contains("3-5-haiku") {
            HAIKU_3_5
        } else if name.contains("3-haiku") {
            HAIKU_3
        } else {
            HAIKU
        }
    } else {
        SONNET
    }
}

/// What `usage` costs at `model`'s list price, cache reads at a tenth of the input price and
/// cache writes at 1.25 times it (the API's five-minute cache). The CLI's `total_cost_usd`
/// stays the figure of record: this prices API calls it has not reported yet.
pub fn list_cost(usage: &Usage, model: Option<&str>) -> f64 {
    let price = price(model);
    let input = usage.input_tokens as f64
        + usage.cache_read_tokens as f64 * 0.1
        + usage.cache_creation_tokens as f64 * 1.25;
    (input * price.input_per_mtok + usage.output_tokens as f64 * price.output_per_mtok) / 1e6
}

/// What the CLI sends besides the prompt on a run's first API call, in tokens: its system prompt
/// and tool definitions. Measured once with the pinned CLI 2.1.330 against the fake API (the whole
/// request body at 4 characters a token): an analyze whose prompt was ~2,800 tokens sent ~22,100,
/// so ~19,300 of overhead for a read-only tool set. The edit tool set adds the Edit and Write
/// tools: an allowance of 2,000, not measured. `tests/e2e/cost_e2e.rs` checks the estimate of a
/// real run.
pub const CLI_OVERHEAD_TOKENS_READ_ONLY: u64 = 19_000;
pub const CLI_OVERHEAD_TOKENS_EDIT: u64 = 21_000;

/// Characters per token, as a rule of thumb for code and English.
const CHARS_PER_TOKEN: u64 = 4;
/// The answer in the cheap case, and the answer and turns in the dear one.
const LOW_OUTPUT_TOKENS: u64 = 200;
const HIGH_OUTPUT_TOKENS: u64 = 2_000;
const HIGH_TURNS: u64 = 3;

/// A run's cost before it starts: an estimate, from the prompt's size and the model's price.
#[derive(Debug, Clone, PartialEq)]
pub struct CostEstimate {
    /// The first API call's input: the prompt (characters / 4) plus the CLI's overhead.
    pub input_tokens: u64,
    pub model: Option<String>,
    pub price: Price,
    /// One turn with a short answer.
    pub cost_usd_low: f64,
    /// Three turns over the same context with a long answer.
    pub cost_usd_high: f64,
}

/// Estimate a run whose prompt has `prompt_chars` characters.
pub fn estimate(prompt_chars: usize, edit: bool, model: Option<&str>) -> CostEstimate {
    let overhead = if edit { CLI_OVERHEAD_TOKENS_EDIT } else { CLI_OVERHEAD_TOKENS_READ_ONLY };
    let input_tokens = (prompt_chars as u64).div_ceil(CHARS_PER_TOKEN) + overhead;
    let price = price(model);
    let cost = |input: u64, output: u64| {
        (input as f64 * price.input_per_mtok + output as f64 * price.output_per_mtok) / 1e6
    };
    CostEstimate {
        input_tokens,
        model: model.map(str::to_owned),
        price,
        cost_usd_low: cost(input_tokens, LOW_OUTPUT_TOKENS),
        cost_usd_high: cost(input_tokens * HIGH_TURNS, HIGH_OUTPUT_TOKENS),
    }
}

impl CostEstimate {
    /// One line for progress: `~12k input tokens, est. $0.04–$0.13 (Sonnet prices)`.
    pub fn describe(&self) -> String {
        format!(
            "Estimate: ~{} input tokens, ${:.4}–${:.4} ({} prices)",
            crate::model::activity::compact_count(self.input_tokens),
            self.cost_usd_low,
            self.cost_usd_high,
            self.price.family
        )
    }
}

/// One finished run, as the forecast and the model suggestion read it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSample {
    pub action: String,
    pub model: Option<String>,
    pub success: bool,
    pub cost_usd: f64,
    /// When it started, RFC 3339 (UTC).
    pub started_at: String,
}

/// Today's spending rate and where it leads by the end of the (UTC) day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Today's cost over the hours since today's first run (at least one hour, so one early
    /// run does not read as a rush).
    pub burn_rate_usd_per_hour: f64,
    /// Today's cost plus the burn rate over the hours left today.
    pub projected_today_usd: f64,
}

const DAY_SECS: u64 = 24 * 60 * 60;

/// The forecast for `day` (`YYYY-MM-DD`) at `now_secs` (Unix time), from today's cost and runs.
pub fn forecast(today_cost_usd: f64, runs: &[RunSample], day: &str, now_secs: u64) -> Forecast {
    let now = now_secs % DAY_SECS;
    let first = runs.iter().filter_map(|run| seconds_into(day, &run.started_at)).min();
    let hours = (now.saturating_sub(first.unwrap_or(now)) as f64 / 3600.0).max(1.0);
    let burn_rate_usd_per_hour = today_cost_usd / hours;
    let hours_left = (DAY_SECS - now) as f64 / 3600.0;
    Forecast {
        burn_rate_usd_per_hour,
        projected_today_usd: today_cost_usd + burn_rate_usd_per_hour * hours_left,
    }
}

/// Seconds after midnight of `day` at `time` (`YYYY-MM-DDTHH:MM:SS…`), when it is on that day.
fn seconds_into(day: &str, time: &str) -> Option<u64> {
    let clock = time.strip_prefix(day)?.strip_prefix('T')?;
    let part = |range: std::ops::Range<usize>| clock.get(range)?.parse::<u64>().ok();
    Some(part(0..2)? * 3600 + part(3..5)? * 60 + part(6..8)?)
}

/// A cheaper model that served runs of the same action about as well.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSuggestion {
    pub action: String,
    pub model: String,
    pub cheaper_model: String,
    pub runs: u64,
    pub cheaper_runs: u64,
    pub avg_cost_usd: f64,
    pub cheaper_avg_cost_usd: f64,
}

/// Runs a model needs of an action before its record counts.
const MIN_RUNS: u64 = 3;
/// At most this much worse a success rate still counts as comparable.
const SUCCESS_SLACK: f64 = 0.1;
/// A suggestion must at least halve the average cost.
const MAX_COST_RATIO: f64 = 0.5;

/// For the action and model with the most runs: a model that ran the same action at most half
/// as dear on average, with a success rate within 10 points, each with at least 3 runs.
pub fn cheaper_model(runs: &[RunSample]) -> Option<ModelSuggestion> {
    #[derive(Default)]
    struct Record {
        runs: u64,
        successes: u64,
        cost_usd: f64,
    }
    let mut records: BTreeMap<(&str, &str), Record> = BTreeMap::new();
    for run in runs {
        let Some(model) = run.model.as_deref() else { continue };
        let record = records.entry((run.action.as_str(), model)).or_default();
        record.runs += 1;
        record.successes += u64::from(run.success);
        record.cost_usd += run.cost_usd;
    }
    let stats = |record: &Record| {
        (record.successes as f64 / record.runs as f64, record.cost_usd / record.runs as f64)
    };
    let ((action, model), current) = records
        .iter()
        .filter(|(_, record)| record.runs >= MIN_RUNS)
        .max_by_key(|(_, record)| record.runs)?;
    let (success, avg_cost) = stats(current);
    records
        .iter()
        .filter(|((other_action, other), record)| {
            let (other_success, other_cost) = stats(record);
            other_action == action
                && other != model
                && record.runs >= MIN_RUNS
                && other_success + SUCCESS_SLACK >= success
                && other_cost <= avg_cost * MAX_COST_RATIO
        })
        .min_by(|a, b| stats(a.1).1.total_cmp(&stats(b.1).1))
        .map(|((_, cheaper), record)| ModelSuggestion {
            action: (*action).to_owned(),
            model: (*model).to_owned(),
            cheaper_model: (*cheaper).to_owned(),
            runs: current.runs,
            cheaper_runs: record.runs,
            avg_cost_usd: avg_cost,
            cheaper_avg_cost_usd: stats(record).1,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claude::session::Usage;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn result(raw: Value, input: u64, output: u64) -> RunResult {
        RunResult {
            session_id: "s".into(),
            text: String::new(),
            structured_output: None,
            usage: Usage { input_tokens: input, output_tokens: output, ..Usage::default() },
            cost_usd: raw["total_cost_usd"].as_f64().unwrap_or(0.0),
            num_turns: 1,
            duration_ms: 40,
            model: Some("m".into()),
            permission_denials: vec![],
            raw,
        }
    }

    fn model_usage(input: u64, output: u64, cost: f64) -> Value {
        json!({"inputTokens": input, "outputTokens": output, "cacheReadInputTokens": 0,
               "cacheCreationInputTokens": 0, "costUSD": cost})
    }

    #[test]
    fn a_live_process_second_turn_costs_only_its_own_share() {
        // Captured shape: the second turn of one process reports both turns in its totals.
        let first = result(
            json!({"total_cost_usd": 0.00014, "modelUsage": {"m": model_usage(10, 5, 0.00014)}}),
            10,
            5,
        );
        let second = result(
            json!({"total_cost_usd": 0.00028, "modelUsage": {"m": model_usage(20, 10, 0.00028)}}),
            10,
            5,
        );
        let (one, totals) = run_usage(&first, &CliTotals::default());
        let (two, _) = run_usage(&second, &totals);
        assert_eq!(one.counts.cost_usd, 0.00014);
        assert!((two.counts.cost_usd - 0.00014).abs() < 1e-12, "{two:?}");
        assert_eq!(two.models["m"].input_tokens, 10);
        assert_eq!(
            (two.counts.input_tokens, two.counts.output_tokens, two.counts.runs),
            (10, 5, 1)
        );
    }

    #[test]
    fn a_resume_that_restored_the_cost_state_subtracts_it_and_one_that_did_not_counts_all() {
        let state = CliTotals::from_cost_state(
            &json!({"type": "cost-state", "totalCostUSD": 0.00028, "modelUsage": {"m": model_usage(20, 10, 0.00028)}}),
        );
        let restored = result(
            json!({"total_cost_usd": 0.00042, "modelUsage": {"m": model_usage(30, 15, 0.00042)}}),
            10,
            5,
        );
        assert!((run_usage(&restored, &state).0.counts.cost_usd - 0.00014).abs() < 1e-12);
        let fresh = result(
            json!({"total_cost_usd": 0.000175, "modelUsage": {"m": model_usage(10, 5, 0.000175)}}),
            10,
            5,
        );
        let (usage, _) = run_usage(&fresh, &state);
        assert_eq!(usage.counts.cost_usd, 0.000175);
        assert_eq!(usage.models["m"].input_tokens, 10);
    }

    #[test]
    fn a_result_without_totals_falls_back_to_its_cost() {
        let mut bare = result(json!({}), 1, 2);
        bare.cost_usd = 0.5;
        let (usage, after) = run_usage(&bare, &CliTotals::default());
        assert_eq!((usage.counts.cost_usd, after.cost_usd), (0.5, 0.5));
        assert!(usage.models.is_empty());
    }

    #[test]
    fn the_ledger_adds_up_by_day_and_model() {
        let mut ledger = UsageLedger::default();
        let run = |cost: f64, models: &[(&str, f64)]| RunUsage {
            counts: UsageCounts {
                runs: 1,
                turns: 2,
                input_tokens: 10,
                output_tokens: 5,
                cost_usd: cost,
                ..UsageCounts::default()
            },
            model: Some("big".into()),
            models: models
                .iter()
                .map(|(name, cost)| {
                    (
                        (*name).to_owned(),
                        UsageCounts { cost_usd: *cost, input_tokens: 5, ..UsageCounts::default() },
                    )
                })
                .collect(),
        };
        ledger.add("2026-11-20", &run(1.0, &[("big", 0.75), ("small", 0.25)]));
        ledger.add("2026-11-21", &run(2.0, &[]));
        assert_eq!(ledger.day("2026-11-21").cost_usd, 2.0);
        assert_eq!(ledger.day("2026-11-22"), UsageCounts::default());
        let total = ledger.total();
        assert_eq!((total.runs, total.turns, total.cost_usd, total.input_tokens), (2, 4, 3.0, 20));
        let models = ledger.by_model();
        assert_eq!((models["big"].runs, models["big"].cost_usd), (2, 2.75));
        assert_eq!((models["small"].runs, models["small"].cost_usd), (0, 0.25));
        let mut merged = UsageLedger::default();
        merged.merge(&ledger);
        merged.merge(&ledger);
        assert_eq!(merged.total().cost_usd, 6.0);
        let text = serde_json::to_string(&ledger).unwrap();
        assert_eq!(serde_json::from_str::<UsageLedger>(&text).unwrap(), ledger);
    }

    fn sample(action: &str, model: &str, success: bool, cost: f64, at: &str) -> RunSample {
        RunSample {
            action: action.into(),
            model: Some(model.into()),
            success,
            cost_usd: cost,
            started_at: at.into(),
        }
    }

    #[test]
    fn the_burn_rate_runs_from_the_first_run_of_the_day() {
        // 2026-12-06T12:00:00Z: $2 spent since 08:00, four hours: $0.50 an hour, twelve left.
        let now = 1_796_515_200 + 12 * 3600;
        assert_eq!(crate::base::time::day(now), "2026-12-06");
        let runs = [
            sample("review", "m", true, 1.0, "2026-12-06T08:00:00Z"),
            sample("review", "m", true, 1.0, "2026-12-06T11:00:00Z"),
            sample("review", "m", true, 9.0, "2026-12-05T01:00:00Z"),
        ];
        let forecast = forecast(2.0, &runs, "2026-12-06", now);
        assert_eq!(forecast.burn_rate_usd_per_hour, 0.5);
        assert_eq!(forecast.projected_today_usd, 2.0 + 0.5 * 12.0);
        // One run a minute ago is not a rate of sixty an hour.
        let early = [sample("review", "m", true, 0.1, "2026-12-06T11:59:00Z")];
        assert!((forecast_rate(0.1, &early, now) - 0.1).abs() < 1e-12);
        assert_eq!(super::forecast(0.0, &[], "2026-12-06", now).projected_today_usd, 0.0);
    }

    fn forecast_rate(cost: f64, runs: &[RunSample], now: u64) -> f64 {
        forecast(cost, runs, "2026-12-06", now).burn_rate_usd_per_hour
    }

    #[test]
    fn a_cheaper_model_with_a_comparable_record_is_suggested() {
        let at = "2026-12-06T08:00:00Z";
        let mut runs: Vec<RunSample> =
            (0..5).map(|_| sample("review", "opus", true, 0.40, at)).collect();
        runs.extend((0..3).map(|_| sample("review", "haiku", true, 0.05, at)));
        runs.extend((0..3).map(|_| sample("generate", "tiny", true, 0.001, at)));
        let suggestion = cheaper_model(&runs).unwrap();
        assert_eq!(
            (
                suggestion.action.as_str(),
                suggestion.model.as_str(),
                suggestion.cheaper_model.as_str()
            ),
            ("review", "opus", "haiku")
        );
        assert_eq!((suggestion.runs, suggestion.cheaper_runs), (5, 3));
        assert!((suggestion.cheaper_avg_cost_usd - 0.05).abs() < 1e-12);

        // Failing more often is not comparable; too few runs prove nothing.
        let mut worse = runs.clone();
        worse
            .iter_mut()
            .filter(|run| run.model.as_deref() == Some("haiku"))
            .take(2)
            .for_each(|run| run.success = false);
        assert_eq!(cheaper_model(&worse), None);
        assert_eq!(cheaper_model(&runs[..7]), None);
    }

    #[test]
    fn list_cost_prices_cache_reads_and_writes_apart() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cache_read_tokens: 1_000_000,
            cache_creation_tokens: 1_000_000,
        };
        // Haiku: $1 in, $5 out; a cache read $0.10, a cache write $1.25.
        assert!((list_cost(&usage, Some("claude-haiku-4-5")) - 7.35).abs() < 1e-9);
        assert_eq!(list_cost(&Usage::default(), None), 0.0);
    }

    #[test]
    fn prices_follow_the_model_family() {
        assert_eq!(price(Some("claude-sonnet-4-5")).family, "Sonnet");
        assert_eq!(price(None).family, "Sonnet");
        assert_eq!(price(Some("opus")).input_per_mtok, 5.0);
        assert_eq!(price(Some("claude-opus-4-1-20250805")).input_per_mtok, 15.0);
        assert_eq!(price(Some("haiku")).output_per_mtok, 5.0);
        assert_eq!(price(Some("claude-3-5-haiku-latest")).input_per_mtok, 0.8);
    }

    #[test]
    fn an_estimate_counts_the_prompt_and_the_cli_overhead() {
        let estimate = estimate(4_000, false, Some("sonnet"));
        assert_eq!(estimate.input_tokens, 1_000 + CLI_OVERHEAD_TOKENS_READ_ONLY);
        let low = (estimate.input_tokens as f64 * 3.0 + 200.0 * 15.0) / 1e6;
        assert!((estimate.cost_usd_low - low).abs() < 1e-12);
        assert!(estimate.cost_usd_high > 3.0 * estimate.cost_usd_low);
        assert_eq!(super::estimate(0, true, None).input_tokens, CLI_OVERHEAD_TOKENS_EDIT);
        assert!(
            estimate.describe().starts_with("Estimate: ~20.0k input tokens, $0.0630–$0.2100"),
            "{}",
            estimate.describe()
        );
    }

    #[test]
    fn the_daily_budget_refuses_once_reached() {
        assert_eq!(check_daily_budget(0.5, None).unwrap(), None);
        assert_eq!(check_daily_budget(0.25, Some(1.0)).unwrap(), Some(0.75));
        let err = check_daily_budget(1.0, Some(1.0)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BUDGET_EXCEEDED);
        assert!(err.message.contains("$1.0000"), "{}", err.message);
        assert!(err.hint.contains("dailyBudgetUsd"));
    }
}
