//! Operational counters and histograms: requests by action and outcome, run durations, queue
//! waits, retries, tokens and cost. Served by `claude/metrics` and logged in one line at
//! shutdown. Everything is in memory and bounded: counters are keyed by action × outcome (a
//! handful each) and histograms have fixed buckets.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::engine::breaker::CircuitSnapshot;
use crate::engine::scheduler::SchedulerStats;

/// Upper bounds (inclusive, milliseconds) of the histogram buckets; a last bucket takes the rest.
const BUCKETS_MS: [u64; 13] =
    [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// One count per bound in [`BUCKETS_MS`], plus the overflow bucket.
    counts: [u64; BUCKETS_MS.len() + 1],
    count: u64,
    sum_ms: u64,
    max_ms: u64,
}

impl Histogram {
    fn record(&mut self, value: Duration) {
        let ms = u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MS.iter().position(|bound| ms <= *bound).unwrap_or(BUCKETS_MS.len());
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
        self.max_ms = self.max_ms.max(ms);
    }

    /// The bucket bound at quantile `q` (the max for the overflow bucket): an upper estimate.
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return BUCKETS_MS
                    .get(index)
                    .map_or(self.max_ms, |bound| (*bound).min(self.max_ms));
            }
        }
        self.max_ms
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let buckets = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(index, count)| Bucket { le_ms: BUCKETS_MS.get(index).copied(), count: *count })
            .collect();
        HistogramSnapshot {
            count: self.count,
            sum_ms: self.sum_ms,
            max_ms: self.max_ms,
            p50_ms: self.quantile(0.5),
            p90_ms: self.quantile(0.9),
            p99_ms: self.quantile(0.99),
            buckets,
        }
    }
}

/// A histogram as served: count, sum, max, estimated quantiles and the non-empty buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub count: u64,
    pub sum_ms: u64,
    pub max_ms: u64,
    /// Quantiles are the upper bound of the bucket they fall in (at most the max).
    pub p50_ms: u64,
    pub p90_ms: u64,
    pub p99_ms: u64,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Inclusive upper bound; absent for the last bucket (everything longer).
    pub le_ms: Option<u64>,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub total: u64,
    /// action → outcome (`success`, `cancelled`, or an error kind) → count.
    pub by_action: BTreeMap<String, BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryCounts {
    pub total: u64,
    /// The error kind that caused the retry → count.
    pub by_reason: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
}

/// Everything the metrics hold, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    pub uptime_secs: u64,
    pub requests: RequestCounts,
    /// From the start of a request to its answer (queue wait and retries included).
    pub duration_ms: HistogramSnapshot,
    /// Time spent waiting for a free slot (and for the rate limit).
    pub queue_wait_ms: HistogramSnapshot,
    pub retries: RetryCounts,
    /// Runs resumed after a hung API call or a crashed CLI, or retried smaller after the context
    /// overflowed (`byReason`: the error kind that was recovered from).
    pub recoveries: RetryCounts,
    pub tokens: TokenCounts,
    pub cost_usd: f64,
}

/// The `claude/metrics` result: the metrics plus the scheduler's and the circuit's state now.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsReport {
    pub metrics: MetricsSnapshot,
    pub scheduler: SchedulerStats,
    pub circuit: CircuitSnapshot,
    /// The warm pool: processes ready, being started or cleared, and how runs were served.
    pub pool: crate::engine::pool::PoolStats,
}

#[derive(Debug, Default)]
struct Counters {
    requests: RequestCounts,
    duration: Histogram,
    queue_wait: Histogram,
    retries: RetryCounts,
    recoveries: RetryCounts,
    tokens: TokenCounts,
    cost_usd: f64,
}

/// The server's metrics. Cheap to update from any task.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    counters: Mutex<Counters>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self { started: Instant::now(), counters: Mutex::new(Counters::default()) }
    }

    /// One answered request: its action, its outcome (`success` or an error kind) and how long
    /// it took in all.
    pub fn record_request(&self, action: &str, outcome: &str, duration: Duration) {
        let mut counters = self.counters.lock();
        counters.requests.total += 1;
        *counters
            .requests
            .by_action
            .entry(action.to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_default() += 1;
        counters.duration.record(duration);
    }

    pub fn record_queue_wait(&self, wait: Duration) {
        self.counters.lock().queue_wait.record(wait);
    }

    /// A retry caused by an error of kind `reason`.
    pub fn record_retry(&self, reason: &str) {
        let mut counters = self.counters.lock();
        counters.retries.total += 1;
        *counters.retries.by_reason.entry(reason.to_owned()).or_default() += 1;
    }

    /// A recovery from an error of kind `reason` (the run went on in a resumed or smaller
    /// attempt).
    pub fn record_recovery(&self, reason: &str) {
        let mut counters = self.counters.lock();
        counters.recoveries.total += 1;
        *counters.recoveries.by_reason.entry(reason.to_owned()).or_default() += 1;
    }

    pub fn record_usage(&self, tokens: TokenCounts, cost_usd: f64) {
        let mut counters = self.counters.lock();
        counters.tokens.input += tokens.input;
        counters.tokens.output += tokens.output;
        counters.tokens.cache_read += tokens.cache_read;
        if cost_usd.is_finite() && cost_usd > 0.0 {
            counters.cost_usd += cost_usd;
        }
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let counters = self.counters.lock();
        MetricsSnapshot {
            uptime_secs: self.started.elapsed().as_secs(),
            requests: counters.requests.clone(),
            duration_ms: counters.duration.snapshot(),
            queue_wait_ms: counters.queue_wait.snapshot(),
            retries: counters.retries.clone(),
            recoveries: counters.recoveries.clone(),
            tokens: counters.tokens,
            cost_usd: counters.cost_usd,
        }
    }

    /// One line for the log at shutdown.
    pub fn summary_line(&self) -> String {
        let snapshot = self.snapshot();
        let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
        for by_outcome in snapshot.requests.by_action.values() {
            for (outcome, count) in by_outcome {
                *outcomes.entry(outcome).or_default() += count;
            }
        }
        let outcomes: Vec<String> =
            outcomes.iter().map(|(outcome, count)| format!("{outcome} {count}")).collect();
        let duration = &snapshot.duration_ms;
        let wait = &snapshot.queue_wait_ms;
        format!(
            "requests {} ({}) · duration p50 {} ms p99 {} ms max {} ms · queue wait p50 {} ms max {} ms · retries {} · recoveries {} · tokens in {} out {} cache {} · cost ${:.4} · uptime {} s",
            snapshot.requests.total,
            if outcomes.is_empty() { "none".to_owned() } else { outcomes.join(", ") },
            duration.p50_ms,
            duration.p99_ms,
            duration.max_ms,
            wait.p50_ms,
            wait.max_ms,
            snapshot.retries.total,
            snapshot.recoveries.total,
            snapshot.tokens.input,
            snapshot.tokens.output,
            snapshot.tokens.cache_read,
            snapshot.cost_usd,
            snapshot.uptime_secs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_are_counted_by_action_and_outcome() {
        let metrics = Metrics::new();
        metrics.record_request("refactor", "success", ms(1200));
        metrics.record_request("refactor", "success", ms(800));
        metrics.record_request("refactor", "overloaded", ms(9000));
        metrics.record_request("review", "cancelled", ms(5));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.requests.total, 4);
        let by_action = |action: &str| {
            let outcomes = &snapshot.requests.by_action[action];
            outcomes.iter().map(|(outcome, n)| (outcome.as_str(), *n)).collect::<Vec<_>>()
        };
        assert_eq!(by_action("refactor"), [("overloaded", 1), ("success", 2)]);
        assert_eq!(by_action("review"), [("cancelled", 1)]);
        assert_eq!(snapshot.requests.by_action.len(), 2);
        assert_eq!(snapshot.duration_ms.count, 4);
        assert_eq!(snapshot.duration_ms.sum_ms, 11005);
        assert_eq!(snapshot.duration_ms.max_ms, 9000);
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds_capped_by_the_max() {
        let mut histogram = Histogram::default();
        for n in 1..=100 {
            histogram.record(ms(n * 10));
        }
        let snapshot = histogram.snapshot();
        assert_eq!((snapshot.p50_ms, snapshot.p90_ms, snapshot.p99_ms), (500, 1000, 1000));
        assert_eq!(snapshot.max_ms, 1000);
        assert_eq!(snapshot.buckets.iter().map(|b| b.count).sum::<u64>(), 100);
        let mut slow = Histogram::default();
        slow.record(Duration::from_secs(3600));
        let snapshot = slow.snapshot();
        assert_eq!(snapshot.p50_ms, 3_600_000);
        assert_eq!(snapshot.buckets, vec![Bucket { le_ms: None, count: 1 }]);
        assert_eq!(Histogram::default().snapshot().p99_ms, 0);
    }

    #[test]
    fn retries_recoveries_tokens_and_cost_add_up() {
        let metrics = Metrics::new();
        metrics.record_retry("overloaded");
        metrics.record_retry("overloaded");
        metrics.record_retry("rate_limited");
        metrics.record_recovery("timeout");
        metrics.record_usage(TokenCounts { input: 10, output: 5, cache_read: 2 }, 0.25);
        metrics.record_usage(TokenCounts { input: 1, output: 1, cache_read: 0 }, f64::NAN);
        metrics.record_queue_wait(ms(40));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.retries.total, 3);
        assert_eq!(snapshot.retries.by_reason.get("overloaded"), Some(&2));
        assert_eq!(snapshot.recoveries.total, 1);
        assert_eq!(snapshot.recoveries.by_reason.get("timeout"), Some(&1));
        assert_eq!(snapshot.tokens, TokenCounts { input: 11, output: 6, cache_read: 2 });
        assert_eq!(snapshot.cost_usd, 0.25);
        assert_eq!(snapshot.queue_wait_ms.count, 1);
        let line = metrics.summary_line();
        assert!(line.starts_with("requests 0 (none) · "), "{line}");
        assert!(
            line.contains("retries 3 · recoveries 1 · tokens in 11 out 6 cache 2 · cost $0.2500"),
            "{line}"
        );
    }

    #[test]
    fn the_summary_line_totals_outcomes_over_actions() {
        let metrics = Metrics::new();
        metrics.record_request("analyze", "success", ms(100));
        metrics.record_request("review", "success", ms(100));
        metrics.record_request("review", "timeout", ms(100));
        let line = metrics.summary_line();
        assert!(
            line.starts_with("requests 3 (success 2, timeout 1) · duration p50 100 ms"),
            "{line}"
        );
    }
}
