//! `pprofhouse report`: the fleet's top functions over a window against a baseline window, with
//! the change of each function's share, its significance, the services behind it, the yearly
//! cost of CPU, and the **movers** — the functions whose share changed beyond sampling noise.
//!
//! The computation is a library function: [`compute`] takes a typed [`ReportConfig`] and a
//! ClickHouse client and returns a [`Report`], a plain value that serializes to the JSON of
//! `--format json` (and of the `serve` API). It runs three queries of `sql/queries`
//! (`report_functions.sql`: every function in both windows; `total.sql`: the 100 % and the
//! sample counts; `function_services.sql`: the top services of the top functions) and hands
//! their rows to [`build`], which is pure: ranking, shares, the two-proportion tests and
//! Benjamini–Hochberg ([`stats`]), the cost. [`render`] turns a report into markdown, HTML
//! (one self-contained file with an inline SVG bar chart), CSV or JSON; [`deliver`] sends it to
//! stdout, a file, S3 or a Slack-compatible webhook.
//!
//! Significance is computed on counts of samples, the quantity that sampling noise is binomial
//! in: for a profile type that records a `samples/count` sample type (Go CPU profiles do) its
//! values are the counts; for any other the share of the reported sample type is applied to the
//! number of samples of the window's profiles (`profiles.sample_count`). See the README.

pub mod deliver;
pub mod render;
pub mod stats;

use std::collections::BTreeMap;
use std::time::Duration;

use pprofhouse_sql::clickhouse;
use pprofhouse_sql::query::{self, PairQuery, Total, Window, WindowPairRow};
use serde::{Deserialize, Serialize};

/// `[report]` settings: the statistics, the cost model and the delivery limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSettings {
    /// Price of one core-hour (USD), for CPU profile types.
    pub price_per_core_hour: f64,
    /// Seconds in a year, for the annualised core-hours.
    pub seconds_per_year: f64,
    /// False-discovery rate of the movers (Benjamini–Hochberg level).
    pub fdr: f64,
    /// Smallest change of share, in percentage points, that makes a mover.
    pub min_share_points: f64,
    /// Smallest relative change of share (|ratio − 1|) that makes a mover.
    pub min_relative_change: f64,
    /// Most movers listed.
    pub max_movers: usize,
    /// Services listed per function.
    pub services_per_function: u32,
    /// Timeout of one webhook or S3 request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retries of a webhook POST that failed transiently (connection, 429, 5xx).
    pub retry_budget: usize,
    /// Longest pause between retries.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            price_per_core_hour: 0.0425,
            seconds_per_year: 31_536_000.0,
            fdr: 0.05,
            min_share_points: 0.1,
            min_relative_change: 0.05,
            max_movers: 20,
            services_per_function: 3,
            timeout: Duration::from_secs(10),
            retry_budget: 4,
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Profile type (cpu, heap, …).
    pub profile_type: String,
    /// Sample type `type/unit`; `None`: the type's default among the window's profiles.
    pub sample_type: Option<String>,
    /// The window.
    pub window: Window,
    /// The baseline window.
    pub baseline: Window,
    /// Only this service.
    pub service: Option<String>,
    /// Only profiles with these labels.
    pub labels: Vec<(String, String)>,
    /// Functions in the top table.
    pub limit: usize,
    /// Rank by cum instead of flat (and test cum shares).
    pub by_cum: bool,
    /// Statistics and cost.
    pub settings: ReportSettings,
}

/// A report: serializes to `{"window": …, "functions": […], "movers": […]}` with exact integers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The window, the baseline and the selection.
    pub window: WindowInfo,
    /// The top functions, ranked.
    pub functions: Vec<FunctionEntry>,
    /// Functions whose share changed significantly, largest change of share first.
    pub movers: Vec<Mover>,
    /// How significance was computed.
    pub significance: Significance,
    /// Annualised cost (CPU types in nanoseconds only).
    pub cost: Option<CostModel>,
}

/// The window and what was selected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowInfo {
    /// Window start (RFC 3339, inclusive).
    pub from: String,
    /// Window end (RFC 3339, exclusive).
    pub to: String,
    /// Baseline start.
    pub baseline_from: String,
    /// Baseline end.
    pub baseline_to: String,
    /// Window length in seconds.
    pub seconds: f64,
    /// Profile type.
    pub profile_type: String,
    /// Sample type `type/unit`.
    pub sample_type: String,
    /// Service filter.
    pub service: Option<String>,
    /// Label filters.
    pub labels: BTreeMap<String, String>,
    /// `flat` or `cum`: what ranks and what the tests compare.
    pub order: String,
    /// The sample type's total over the window's profiles (the 100 %).
    pub total: i64,
    /// The same over the baseline.
    pub baseline_total: i64,
    /// Profiles in the window.
    pub profiles: u64,
    /// Profiles in the baseline.
    pub baseline_profiles: u64,
}

/// One row of the top table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionEntry {
    /// 1-based rank.
    pub rank: usize,
    /// Function name.
    pub function: String,
    /// Flat over the window.
    pub flat: i64,
    /// flat / total × 100.
    pub flat_pct: f64,
    /// Cum over the window.
    pub cum: i64,
    /// cum / total × 100.
    pub cum_pct: f64,
    /// Flat over the baseline.
    pub baseline_flat: i64,
    /// Cum over the baseline.
    pub baseline_cum: i64,
    /// Change of share against the baseline.
    pub change: Change,
    /// The services spending most in it (by cum).
    pub services: Vec<ServiceEntry>,
    /// Annualised core-hours and cost (CPU types).
    pub cost: Option<FunctionCost>,
}

/// A function's change of share (of `flat` or `cum`, as ranked) and its significance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Share in the window, percent.
    pub share_pct: f64,
    /// Share in the baseline, percent.
    pub baseline_share_pct: f64,
    /// share − baseline share, percentage points.
    pub share_points: f64,
    /// share / baseline share (`None` when the function is new).
    pub ratio: Option<f64>,
    /// The two-proportion z statistic.
    pub z: f64,
    /// Its two-sided p-value.
    pub p_value: f64,
    /// Benjamini–Hochberg adjusted p-value over all functions.
    pub q_value: f64,
    /// Whether it is a mover (q ≤ fdr and both minimum effect sizes met).
    pub significant: bool,
}

/// A service's part of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// Service.
    pub service: String,
    /// The function's flat there.
    pub flat: i64,
    /// The function's cum there.
    pub cum: i64,
    /// cum / the service's total × 100.
    pub cum_pct_of_service: f64,
}

/// Annualised core-hours and cost of a function (Elastic Universal Profiling's method).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCost {
    /// Core-hours per year of flat.
    pub flat_core_hours: f64,
    /// Cost per year of flat.
    pub flat_cost: f64,
    /// Core-hours per year of cum.
    pub cum_core_hours: f64,
    /// Cost per year of cum.
    pub cum_cost: f64,
}

/// How the costs were computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// Price of a core-hour.
    pub price_per_core_hour: f64,
    /// Seconds in a year.
    pub seconds_per_year: f64,
    /// Core-hours per year of the whole selection.
    pub total_core_hours: f64,
    /// Its cost per year.
    pub total_cost: f64,
}

/// How the significance was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Significance {
    /// `samples/count` (counts recorded by the profiles) or `sample_count` (value shares × the
    /// profiles' sample counts).
    pub basis: String,
    /// Samples in the window.
    pub samples: u64,
    /// Samples in the baseline.
    pub baseline_samples: u64,
    /// Functions tested (the m of Benjamini–Hochberg).
    pub tested: usize,
    /// The false-discovery rate.
    pub fdr: f64,
    /// The minimum change of share, percentage points.
    pub min_share_points: f64,
    /// The minimum relative change of share.
    pub min_relative_change: f64,
}

/// A function whose share changed significantly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mover {
    /// Function name.
    pub function: String,
    /// `up` or `down`.
    pub direction: String,
    /// Value (flat or cum, as ranked) over the window.
    pub value: i64,
    /// The same over the baseline.
    pub baseline_value: i64,
    /// The change of share and its significance.
    pub change: Change,
    /// The services spending most in it over the window.
    pub services: Vec<ServiceEntry>,
}

/// Everything [`build`] needs, as the queries return it.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The sample type reported.
    pub sample_type: String,
    /// Every function of the sample type in both windows.
    pub rows: Vec<WindowPairRow>,
    /// The sample type's totals.
    pub total: Total,
    /// The same over the baseline.
    pub baseline_total: Total,
    /// `samples/count` rows and totals when the profile type records them (the test's counts).
    pub counts: Option<(Vec<WindowPairRow>, i64, i64)>,
    /// Top services of the functions that will be listed.
    pub services: Vec<query::FunctionService>,
}

/// The sample type of sample counts.
pub const SAMPLES_COUNT: &str = "samples/count";

/// Runs the report's queries and builds it.
pub async fn compute(client: &clickhouse::Client, cfg: &ReportConfig) -> Result<Report, pprofhouse_sql::Error> {
    let sample_type = match &cfg.sample_type {
        Some(s) => s.clone(),
        None => query::default_sample_type(client, &cfg.profile_type, cfg.window)
            .await?
            .or(query::default_sample_type(client, &cfg.profile_type, cfg.baseline).await?)
            .ok_or_else(|| pprofhouse_sql::Error::Invalid(format!("no {} profiles in the window or the baseline", cfg.profile_type)))?,
    };
    let q = PairQuery {
        profile_type: cfg.profile_type.clone(),
        sample_type: sample_type.clone(),
        window: cfg.window,
        baseline: cfg.baseline,
        service: cfg.service.clone(),
        labels: cfg.labels.clone(),
        source: None,
    };
    let (tw, tb) = (q.top(cfg.window), q.top(cfg.baseline));
    let (rows, total, baseline_total) =
        tokio::try_join!(query::report_functions(client, &q), query::total(client, &tw), query::total(client, &tb))?;
    let counts = if sample_type == SAMPLES_COUNT {
        None
    } else {
        let cq = PairQuery { sample_type: SAMPLES_COUNT.into(), ..q.clone() };
        let (cw, cbw) = (cq.top(cfg.window), cq.top(cfg.baseline));
        let (crows, ct, cb) =
            tokio::try_join!(query::report_functions(client, &cq), query::total(client, &cw), query::total(client, &cbw))?;
        // Only when every profile of both windows records sample counts.
        (ct.profiles == total.profiles && cb.profiles == baseline_total.profiles && ct.profiles + cb.profiles > 0)
            .then_some((crows, ct.total, cb.total))
    };
    let mut inputs = Inputs { sample_type, rows, total, baseline_total, counts, services: Vec::new() };
    // Services only for the functions listed: a first pass decides which.
    let draft = build(&inputs, cfg);
    let mut names: Vec<&str> = draft.functions.iter().map(|f| f.function.as_str()).collect();
    names.extend(draft.movers.iter().map(|m| m.function.as_str()));
    names.sort_unstable();
    names.dedup();
    if !names.is_empty() && cfg.settings.services_per_function > 0 {
        let bytes: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        inputs.services = query::function_services(client, &q, &bytes, cfg.settings.services_per_function).await?;
    }
    Ok(build(&inputs, cfg))
}

/// RFC 3339 of ms since the epoch (UTC).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ms.to_string())
}

fn pct(v: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        v as f64 * 100.0 / total as f64
    }
}

/// Whether a sample type is CPU time in nanoseconds (the cost applies).
pub fn is_cpu_nanoseconds(profile_type: &str, sample_type: &str) -> bool {
    sample_type.ends_with("/nanoseconds") && (profile_type == "cpu" || sample_type.starts_with("cpu/"))
}

/// Each function's sample counts (window, baseline).
type Counts<'a> = BTreeMap<&'a [u8], (f64, f64)>;

/// Builds the report from the queries' rows: pure.
pub fn build(inp: &Inputs, cfg: &ReportConfig) -> Report {
    let s = &cfg.settings;
    let pick = |r: &WindowPairRow| if cfg.by_cum { (r.cum, r.base_cum) } else { (r.flat, r.base_flat) };
    let (total, base_total) = (inp.total.total, inp.baseline_total.total);
    // The test's counts: k (function) of n (window) per side.
    let (basis, n, base_n, counts): (&str, f64, f64, Counts<'_>) = match &inp.counts {
        Some((rows, n, bn)) => (
            SAMPLES_COUNT,
            *n as f64,
            *bn as f64,
            rows.iter()
                .map(|r| {
                    (r.function.as_slice(), {
                        let (a, b) = pick(r);
                        (a as f64, b as f64)
                    })
                })
                .collect(),
        ),
        None if inp.sample_type == SAMPLES_COUNT => (
            SAMPLES_COUNT,
            total as f64,
            base_total as f64,
            inp.rows
                .iter()
                .map(|r| {
                    (r.function.as_slice(), {
                        let (a, b) = pick(r);
                        (a as f64, b as f64)
                    })
                })
                .collect(),
        ),
        None => {
            let (n, bn) = (inp.total.samples as f64, inp.baseline_total.samples as f64);
            let share = |v: i64, t: i64| if t == 0 { 0.0 } else { v as f64 / t as f64 };
            (
                "sample_count",
                n,
                bn,
                inp.rows
                    .iter()
                    .map(|r| {
                        (r.function.as_slice(), {
                            let (a, b) = pick(r);
                            ((share(a, total) * n).round(), (share(b, base_total) * bn).round())
                        })
                    })
                    .collect(),
            )
        }
    };
    let (samples, baseline_samples) = (n as u64, base_n as u64);
    // One test per function seen in either window.
    let tests: Vec<(f64, f64)> = inp
        .rows
        .iter()
        .map(|r| {
            let (k, bk) = counts.get(r.function.as_slice()).copied().unwrap_or((0.0, 0.0));
            stats::two_proportion(bk, base_n, k, n)
        })
        .collect();
    let p: Vec<f64> = tests.iter().map(|t| t.1).collect();
    let q = stats::benjamini_hochberg(&p);
    let change = |i: usize| {
        let r = &inp.rows[i];
        let (v, bv) = pick(r);
        let share = pct(v, total);
        let base_share = pct(bv, base_total);
        let points = share - base_share;
        let ratio = (base_share > 0.0).then(|| share / base_share);
        let relative = ratio.map(|x| (x - 1.0).abs()).unwrap_or(f64::INFINITY);
        let significant = q[i] <= s.fdr && points.abs() >= s.min_share_points && relative >= s.min_relative_change;
        Change {
            share_pct: share,
            baseline_share_pct: base_share,
            share_points: points,
            ratio,
            z: tests[i].0,
            p_value: p[i],
            q_value: q[i],
            significant,
        }
    };
    let services_of = |name: &str| -> Vec<ServiceEntry> {
        inp.services
            .iter()
            .filter(|s| s.function == name.as_bytes())
            .map(|s| ServiceEntry { service: s.service.clone(), flat: s.flat, cum: s.cum, cum_pct_of_service: pct(s.cum, s.service_total) })
            .collect()
    };
    let window_s = (cfg.window.to_ms - cfg.window.from_ms) as f64 / 1000.0;
    let cpu = is_cpu_nanoseconds(&cfg.profile_type, &inp.sample_type) && window_s > 0.0;
    // Elastic's annualisation: CPU seconds × seconds per year / window seconds / 3600.
    let core_hours = |ns: i64| ns as f64 / 1e9 * s.seconds_per_year / window_s / 3600.0;
    // The top table: present in the window, ranked like `top` (|value| desc, name, the other).
    let mut order: Vec<usize> = (0..inp.rows.len()).filter(|&i| inp.rows[i].flat != 0 || inp.rows[i].cum != 0).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&inp.rows[a], &inp.rows[b]);
        let key = |r: &WindowPairRow| if cfg.by_cum { (r.cum.abs(), r.flat.abs()) } else { (r.flat.abs(), r.cum.abs()) };
        key(rb).0.cmp(&key(ra).0).then_with(|| ra.function.cmp(&rb.function)).then_with(|| key(rb).1.cmp(&key(ra).1))
    });
    let functions = order
        .iter()
        .take(cfg.limit)
        .enumerate()
        .map(|(rank, &i)| {
            let r = &inp.rows[i];
            let name = String::from_utf8_lossy(&r.function).into_owned();
            FunctionEntry {
                rank: rank + 1,
                services: services_of(&name),
                function: name,
                flat: r.flat,
                flat_pct: pct(r.flat, total),
                cum: r.cum,
                cum_pct: pct(r.cum, total),
                baseline_flat: r.base_flat,
                baseline_cum: r.base_cum,
                change: change(i),
                cost: cpu.then(|| FunctionCost {
                    flat_core_hours: core_hours(r.flat),
                    flat_cost: core_hours(r.flat) * s.price_per_core_hour,
                    cum_core_hours: core_hours(r.cum),
                    cum_cost: core_hours(r.cum) * s.price_per_core_hour,
                }),
            }
        })
        .collect();
    let mut movers: Vec<(usize, Change)> = (0..inp.rows.len()).map(|i| (i, change(i))).filter(|(_, c)| c.significant).collect();
    movers.sort_by(|a, b| {
        b.1.share_points.abs().total_cmp(&a.1.share_points.abs()).then_with(|| inp.rows[a.0].function.cmp(&inp.rows[b.0].function))
    });
    let movers = movers
        .into_iter()
        .take(s.max_movers)
        .map(|(i, c)| {
            let r = &inp.rows[i];
            let (v, bv) = pick(r);
            let name = String::from_utf8_lossy(&r.function).into_owned();
            Mover {
                direction: if c.share_points > 0.0 { "up" } else { "down" }.into(),
                services: services_of(&name),
                function: name,
                value: v,
                baseline_value: bv,
                change: c,
            }
        })
        .collect();
    Report {
        window: WindowInfo {
            from: rfc3339(cfg.window.from_ms),
            to: rfc3339(cfg.window.to_ms),
            baseline_from: rfc3339(cfg.baseline.from_ms),
            baseline_to: rfc3339(cfg.baseline.to_ms),
            seconds: window_s,
            profile_type: cfg.profile_type.clone(),
            sample_type: inp.sample_type.clone(),
            service: cfg.service.clone(),
            labels: cfg.labels.iter().cloned().collect(),
            order: if cfg.by_cum { "cum" } else { "flat" }.into(),
            total,
            baseline_total: base_total,
            profiles: inp.total.profiles,
            baseline_profiles: inp.baseline_total.profiles,
        },
        functions,
        movers,
        significance: Significance {
            basis: basis.into(),
            samples,
            baseline_samples,
            tested: inp.rows.len(),
            fdr: s.fdr,
            min_share_points: s.min_share_points,
            min_relative_change: s.min_relative_change,
        },
        cost: cpu.then(|| CostModel {
            price_per_core_hour: s.price_per_core_hour,
            seconds_per_year: s.seconds_per_year,
            total_core_hours: core_hours(total),
            total_cost: core_hours(total) * s.price_per_core_hour,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(f: &str, flat: i64, cum: i64, base_flat: i64, base_cum: i64) -> WindowPairRow {
        WindowPairRow { function: f.as_bytes().to_vec(), flat, cum, base_flat, base_cum }
    }

    fn cfg(profile_type: &str, by_cum: bool) -> ReportConfig {
        ReportConfig {
            profile_type: profile_type.into(),
            sample_type: None,
            window: Window { from_ms: 86_400_000, to_ms: 2 * 86_400_000 },
            baseline: Window { from_ms: 0, to_ms: 86_400_000 },
            service: None,
            labels: vec![],
            limit: 10,
            by_cum,
            settings: ReportSettings::default(),
        }
    }

    /// Heap bytes: no sample counts recorded, so shares × the profiles' sample counts are tested.
    #[test]
    fn value_shares_over_sample_counts_rank_and_flag() {
        let inputs = Inputs {
            sample_type: "inuse_space/bytes".into(),
            rows: vec![row("a", 600, 600, 500, 500), row("b", 400, 1000, 500, 1000), row("gone", 0, 0, 0, 0)],
            total: Total { total: 1000, profiles: 3, samples: 100_000 },
            baseline_total: Total { total: 1000, profiles: 3, samples: 100_000 },
            counts: None,
            services: vec![],
        };
        let r = build(&inputs, &cfg("heap", false));
        assert_eq!(r.significance.basis, "sample_count");
        assert_eq!(r.significance.tested, 3);
        assert!(r.cost.is_none(), "no cost for heap");
        let names: Vec<&str> = r.functions.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, ["a", "b"], "ranked by flat; a function absent from the window is not listed");
        let a = &r.functions[0];
        assert_eq!((a.flat_pct, a.change.share_points, a.change.ratio), (60.0, 10.0, Some(1.2)));
        // 60 000 of 100 000 against 50 000 of 100 000: z ≈ 45.
        assert!(a.change.z > 40.0 && a.change.significant);
        assert_eq!(r.movers.iter().map(|m| (m.function.as_str(), m.direction.as_str())).collect::<Vec<_>>(), [("a", "up"), ("b", "down")]);
        // By cum, b leads (1000 of 1000) and its share did not change.
        let r = build(&inputs, &cfg("heap", true));
        assert_eq!(r.functions[0].function, "b");
        assert!(!r.functions[0].change.significant);
    }

    /// CPU: the samples/count rows decide; the cost follows Elastic's formula.
    #[test]
    fn cpu_counts_and_cost() {
        let inputs = Inputs {
            sample_type: "cpu/nanoseconds".into(),
            rows: vec![row("a", 36_000_000_000, 36_000_000_000, 36_000_000_000, 36_000_000_000)],
            total: Total { total: 36_000_000_000, profiles: 1, samples: 7 },
            baseline_total: Total { total: 36_000_000_000, profiles: 1, samples: 7 },
            counts: Some((vec![row("a", 3600, 3600, 3600, 3600)], 3600, 3600)),
            services: vec![],
        };
        let r = build(&inputs, &cfg("cpu", false));
        assert_eq!((r.significance.basis.as_str(), r.significance.samples), ("samples/count", 3600));
        // 36 CPU seconds a day: 36 × 31 536 000 / 86 400 / 3600 = 3.65 core-hours a year.
        let c = r.cost.unwrap();
        assert!((c.total_core_hours - 3.65).abs() < 1e-9, "{c:?}");
        assert!((c.total_cost - 3.65 * 0.0425).abs() < 1e-9);
        assert!(r.movers.is_empty());
    }
}
