//! `pprofhouse report`: flags → a typed [`ReportConfig`], then [`crate::report::compute`],
//! rendering and delivery — once, or on a cron schedule in-process (`--cron`, stops on
//! SIGTERM/Ctrl-C).
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use pprofhouse_sql::query::Window;
use serde::Serialize;

use super::flags::{ClickHouseFlags, ReportFlags, S3Flags};
use super::settings::Settings;
use super::{now_ms, parse_time, runtime, SelectionFlags};
use crate::report::deliver::{deliver, Destination};
use crate::report::render::Format;
use crate::report::{compute, ReportConfig};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Profile type (cpu, heap, …).
    #[arg(long = "type")]
    pub profile_type: String,
    /// Sample type `type/unit` [default: the type's default among the window's profiles].
    #[arg(long)]
    pub sample_type: Option<String>,
    /// The window ends now (at each run with --cron) and lasts this long; the baseline is the
    /// same length just before it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h", conflicts_with_all = ["from", "to"])]
    pub since: Duration,
    #[command(flatten)]
    pub select: SelectionFlags,
    /// Baseline start (RFC 3339) [default: the window's length before the window].
    #[arg(long, value_parser = parse_time, requires = "baseline_to")]
    pub baseline_from: Option<i64>,
    /// Baseline end, exclusive (RFC 3339).
    #[arg(long, value_parser = parse_time, requires = "baseline_from")]
    pub baseline_to: Option<i64>,
    /// Functions in the top table.
    #[arg(short = 'n', default_value_t = 10)]
    pub n: usize,
    /// Rank by cum (and test cum shares) instead of flat.
    #[arg(long)]
    pub cum: bool,
    /// Output format (a webhook always gets markdown).
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: Format,
    /// Where the report goes (repeatable, or comma-separated in the variable): `-` (stdout), a
    /// file, `s3://bucket/prefix/`, or an http(s):// webhook (Slack-compatible `{"text": markdown}`;
    /// its URL is treated as a secret: only its host is ever shown).
    #[arg(
        long = "output",
        short = 'o',
        default_value = "-",
        env = "PPROFHOUSE_REPORT_OUTPUT",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub outputs: Vec<Destination>,
    /// Run on this schedule (cron: 5 fields, or 6 with seconds first; UTC; e.g. "0 8 * * *")
    /// until SIGTERM/Ctrl-C.
    #[arg(long, conflicts_with_all = ["from", "to", "baseline_from", "baseline_to"])]
    pub cron: Option<String>,
    #[command(flatten)]
    pub settings: ReportSettingsFlags,
}

/// The settings sections `report` reads.
#[derive(Debug, Args, Serialize)]
pub struct ReportSettingsFlags {
    #[command(flatten)]
    pub clickhouse: ClickHouseFlags,
    #[command(flatten)]
    pub s3: S3Flags,
    #[command(flatten)]
    pub report: ReportFlags,
}

/// The window and baseline of one run at `now`.
fn windows(a: &ReportArgs, now: i64) -> anyhow::Result<(Window, Window)> {
    let window = a.select.window(Some(a.since), now)?;
    let len = window.to_ms - window.from_ms;
    let baseline = match (a.baseline_from, a.baseline_to) {
        (Some(from), Some(to)) => Window { from_ms: from, to_ms: to },
        _ => Window { from_ms: window.from_ms - len, to_ms: window.from_ms },
    };
    if baseline.to_ms <= baseline.from_ms {
        bail!("the baseline is empty: --baseline-to must be after --baseline-from");
    }
    if window.from_ms < baseline.to_ms && baseline.from_ms < window.to_ms {
        bail!("the baseline overlaps the window");
    }
    Ok((window, baseline))
}

pub fn report(a: ReportArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = Settings::load(config, &a.settings)?;
    let schedule = match &a.cron {
        Some(expr) => Some(croner::Cron::new(expr).with_seconds_optional().parse().with_context(|| format!("--cron {expr:?}"))?),
        None => None,
    };
    let rt = runtime()?;
    let client = s.clickhouse.client();
    let run_once = |now: i64| {
        let (window, baseline) = windows(&a, now)?;
        let cfg = ReportConfig {
            profile_type: a.profile_type.clone(),
            sample_type: a.sample_type.clone(),
            window,
            baseline,
            service: a.select.service.clone(),
            labels: a.select.labels.clone(),
            limit: a.n,
            by_cum: a.cum,
            settings: s.report.clone(),
        };
        let (client, s3, settings, outputs, format) = (&client, &s.s3, &s.report, &a.outputs, a.format);
        anyhow::Ok(async move {
            let report = compute(client, &cfg).await.context("computing the report")?;
            let mut failed = Vec::new();
            for dest in outputs {
                if let Err(e) = deliver(&report, format, dest, s3, settings).await {
                    tracing::error!(error = %e, "report not delivered");
                    failed.push(e.to_string());
                }
            }
            if !failed.is_empty() {
                bail!("{}", failed.join("; "));
            }
            tracing::info!(movers = report.movers.len(), functions = report.functions.len(), "report delivered");
            Ok(())
        })
    };
    let Some(cron) = schedule else {
        rt.block_on(run_once(now_ms())?)?;
        return Ok(ExitCode::SUCCESS);
    };
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            let now = chrono::Utc::now();
            let next = cron.find_next_occurrence(&now, false).context("no next run on that schedule")?;
            let wait = (next - now).to_std().unwrap_or_default();
            tracing::info!(next = %next.to_rfc3339(), "next report");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
            // A failed run is logged; the schedule goes on.
            let run = run_once(next.timestamp_millis())?;
            tokio::select! {
                r = run => if let Err(e) = r { tracing::error!(error = super::one_line(&e), "report run failed") },
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
