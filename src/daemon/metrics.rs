//! `/metrics`: Prometheus text exposition via `prometheus-client`.
//!
//! Labels carry agent slugs, status codes and fixed words, never a key name's value, a
//! fingerprint or anything derived from a secret.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::engine::{AgentFailure, ApiStats, RunReport};
use crate::platform::ErrorClass;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabel {
    pub agent: String,
    /// `transient` (retried) or `terminal` (waits for a new commit, config or SIGHUP).
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentOnly {
    pub agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabel {
    /// The `notify:` kind: `github_status`, `gitlab_status`, `gitea_status`, `webhook`,
    /// `slack` (never its URL).
    pub target: &'static str,
    /// `sent`, `failed` (retries spent or refused) or `dropped` (its queue was full).
    pub result: &'static str,
}

/// Every metric the daemon exposes, registered under the `castsync_` prefix.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub runs: Family<ResultLabel, Counter>,
    pub duration: Histogram,
    pub changes: Family<KindLabel, Counter>,
    pub api_requests: Family<CodeLabel, Counter>,
    pub rate_limit_remaining: Gauge,
    pub agents_skipped: Gauge,
    pub agent_errors: Family<AgentLabel, Gauge>,
    pub drift: Counter,
    pub redeploys: Counter,
    pub last_applied_commit_time: Gauge,
    pub webhooks: Family<ResultLabel, Counter>,
    pub fetches: Family<ResultLabel, Counter>,
    pub commit_rejected: Gauge,
    pub notifications: Family<NotifyLabel, Counter>,
    pub agent_applies: Family<AgentOnly, Counter>,
    pub rate_limit: Gauge,
    pub resident_memory: Gauge,
    /// The client counters seen last, to turn its totals into increments.
    api_seen: Mutex<BTreeMap<u16, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Registers each `name [unit] => field: help;` of `$m` in `$registry`.
macro_rules! register {
    ($registry:ident, $m:ident; $($name:literal $([$unit:expr])? => $field:ident: $help:literal;)*) => {$(
        register!(@one $registry, $name, $help, $m.$field.clone() $(, $unit)?);
    )*};
    (@one $registry:ident, $name:literal, $help:literal, $metric:expr) => {
        $registry.register($name, $help, $metric)
    };
    (@one $registry:ident, $name:literal, $help:literal, $metric:expr, $unit:expr) => {
        $registry.register_with_unit($name, $help, $unit, $metric)
    };
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("castsync");
        let m = Metrics {
            registry: Registry::default(),
            runs: Family::default(),
            // 50 ms … ~100 s.
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            changes: Family::default(),
            api_requests: Family::default(),
            rate_limit_remaining: Gauge::default(),
            agents_skipped: Gauge::default(),
            agent_errors: Family::default(),
            drift: Counter::default(),
            redeploys: Counter::default(),
            last_applied_commit_time: Gauge::default(),
            webhooks: Family::default(),
            fetches: Family::default(),
            commit_rejected: Gauge::default(),
            notifications: Family::default(),
            agent_applies: Family::default(),
            rate_limit: Gauge::default(),
            resident_memory: Gauge::default(),
            api_seen: Mutex::new(BTreeMap::new()),
        };
        register! { registry, m;
            "reconcile_runs" => runs:
                "Reconcile runs by result (success, failure)";
            "reconcile_duration" [Unit::Seconds] => duration:
                "Duration of one reconcile";
            "changes_applied" => changes:
                "Changes that landed on the platform, by kind (create, update, delete)";
            "api_requests" => api_requests:
                "Platform API responses by HTTP status code (retries included)";
            "rate_limit_remaining" => rate_limit_remaining:
                "X-RateLimit-Remaining of the last platform response";
            "agents_skipped" => agents_skipped:
                "Agents skipped whole by their last reconcile (bad manifest, failed list, mass delete)";
            "agent_error" => agent_errors:
                "1 for each agent whose last reconcile failed, until a later one succeeds; class is transient (retried) or terminal (waits for a new commit, config or SIGHUP)";
            "redeploys" => redeploys:
                "Agents redeployed after their secrets changed";
            "drift_found" => drift:
                "Keys found changed on the platform since castsync wrote them";
            "last_applied_commit_timestamp" [Unit::Seconds] => last_applied_commit_time:
                "Committer time of the last commit reconciled (unix time)";
            "webhook_deliveries" => webhooks:
                "POST /hooks/git deliveries by result (accepted, ignored, unauthorized)";
            "fetches" => fetches:
                "Fetches of the source by result (success, failure)";
            "commit_rejected" => commit_rejected:
                "1 while the newest fetched commit is refused (signature not verified)";
            "agent_applies" => agent_applies:
                "Runs in which changes landed on this agent";
            "rate_limit" => rate_limit:
                "X-RateLimit-Limit of the last platform response: requests allowed per window";
            "resident_memory" [Unit::Bytes] => resident_memory:
                "Resident set size of the daemon (VmRSS), sampled at each scrape";
            "notifications" => notifications:
                "Notifications (commit statuses, webhooks, chat) by target kind and result (sent, failed, dropped)";
        }
        Metrics { registry, ..m }
    }

    /// The OpenMetrics exposition (what `prometheus-client` writes).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Samples what is read at scrape time (the resident set size).
    pub fn sample(&self) {
        if let Some(rss) = super::memory::resident_bytes() {
            self.resident_memory
                .set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
    }

    /// The classic Prometheus text format (0.0.4), which `promtool check metrics` and older
    /// scrapers read.
    pub fn encode(&self) -> String {
        to_prometheus_text(&self.encode_openmetrics())
    }

    /// Records one reconcile run.
    pub fn record_run(&self, report: &RunReport, seconds: f64) {
        let result = if report.ok() { "success" } else { "failure" };
        self.runs.get_or_create(&ResultLabel { result }).inc();
        self.duration.observe(seconds);
        for (kind, n) in [
            ("create", report.applied.create),
            ("update", report.applied.update),
            ("delete", report.applied.delete),
        ] {
            self.changes.get_or_create(&KindLabel { kind }).inc_by(n);
        }
        self.drift.inc_by(report.drift);
        self.redeploys.inc_by(report.redeployed);
        for agent in report.changed_agents.keys() {
            self.agent_applies
                .get_or_create(&AgentOnly {
                    agent: agent.clone(),
                })
                .inc();
        }
    }

    /// Sets the per-agent error series to exactly `failing`.
    pub fn set_agent_errors<'a>(
        &self,
        failing: impl IntoIterator<Item = (&'a String, &'a AgentFailure)>,
    ) {
        self.agent_errors.clear();
        for (agent, failure) in failing {
            let class = match failure.class {
                ErrorClass::Transient => "transient",
                ErrorClass::Terminal => "terminal",
            };
            self.agent_errors
                .get_or_create(&AgentLabel {
                    agent: agent.clone(),
                    class,
                })
                .set(1);
        }
    }

    /// Folds the platform client's totals into the request counters.
    pub fn observe_api(&self, stats: &ApiStats) {
        let mut seen = self.api_seen.lock().unwrap_or_else(|p| p.into_inner());
        for (&code, &total) in &stats.responses {
            let before = seen.get(&code).copied().unwrap_or(0);
            // A smaller total means a new client (the platform was reopened).
            let delta = if total >= before {
                total - before
            } else {
                total
            };
            if delta > 0 {
                self.api_requests
                    .get_or_create(&CodeLabel {
                        code: code.to_string(),
                    })
                    .inc_by(delta);
            }
            seen.insert(code, total);
        }
        if let Some(limit) = stats.rate_limit {
            self.rate_limit
                .set(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        if let Some(remaining) = stats.rate_limit_remaining {
            self.rate_limit_remaining
                .set(i64::try_from(remaining).unwrap_or(i64::MAX));
        }
    }

    pub fn webhook(&self, result: &'static str) {
        self.webhooks.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn fetch(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.fetches.get_or_create(&ResultLabel { result }).inc();
    }
}

/// The content type of [`Metrics::encode`].
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of [`Metrics::encode_openmetrics`].
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// OpenMetrics → Prometheus text: counter families are named with their `_total` suffix in
/// `# HELP`/`# TYPE`, and the `# UNIT` and `# EOF` lines (unknown to that format) go.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_metric_is_exposed_with_the_castsync_prefix() {
        let m = Metrics::new();
        m.record_run(&RunReport::default(), 0.2);
        m.webhook("accepted");
        m.fetch(true);
        m.observe_api(&ApiStats {
            responses: BTreeMap::from([(200, 3)]),
            ..ApiStats::default()
        });
        let failure = AgentFailure::new("bad", ErrorClass::Terminal);
        m.set_agent_errors([(&"alpha".to_owned(), &failure)]);
        let text = m.encode();
        for name in [
            "castsync_reconcile_runs_total{result=\"success\"} 1",
            "castsync_reconcile_duration_seconds_bucket",
            "castsync_changes_applied_total{kind=\"create\"} 0",
            "castsync_api_requests_total{code=\"200\"} 3",
            "castsync_rate_limit_remaining",
            "castsync_agents_skipped 0",
            "castsync_agent_error{agent=\"alpha\",class=\"terminal\"} 1",
            "castsync_redeploys_total 0",
            "castsync_drift_found_total 0",
            "castsync_last_applied_commit_timestamp_seconds",
            "castsync_webhook_deliveries_total{result=\"accepted\"} 1",
            "castsync_fetches_total{result=\"success\"} 1",
            "castsync_commit_rejected 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(
            text.contains("# TYPE castsync_reconcile_runs_total counter"),
            "{text}"
        );
        assert!(text.contains("# HELP castsync_fetches_total "), "{text}");
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }

    #[test]
    fn client_totals_become_increments_and_survive_a_new_client() {
        let m = Metrics::new();
        let stats = |ok: u64, limited: u64| ApiStats {
            responses: BTreeMap::from([(200, ok), (429, limited)]),
            rate_limit: Some(100),
            rate_limit_remaining: Some(42),
        };
        m.observe_api(&stats(5, 1));
        m.observe_api(&stats(8, 1));
        let code = |c: &str| {
            m.api_requests
                .get_or_create(&CodeLabel { code: c.into() })
                .get()
        };
        assert_eq!((code("200"), code("429")), (8, 1));
        // A reopened platform starts counting from zero again.
        m.observe_api(&stats(2, 0));
        assert_eq!(code("200"), 10);
        assert_eq!(m.rate_limit_remaining.get(), 42);
    }

    #[test]
    fn agent_errors_are_replaced_not_accumulated() {
        let m = Metrics::new();
        let a = "alpha".to_owned();
        let b = "beta".to_owned();
        let failure = AgentFailure::new("429", ErrorClass::Transient);
        m.set_agent_errors([(&a, &failure), (&b, &failure)]);
        m.set_agent_errors([(&b, &failure)]);
        let text = m.encode();
        assert!(!text.contains("agent=\"alpha\""), "{text}");
        assert!(
            text.contains("castsync_agent_error{agent=\"beta\",class=\"transient\"} 1"),
            "{text}"
        );
    }
}
