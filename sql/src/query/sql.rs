//! The SQL text of `sql/queries/*.sql`, embedded at build time. Parameters are ClickHouse
//! server-side parameters (`{name:Type}`); table names are unqualified (the client's database
//! applies).

/// Top-N functions over raw rows.
pub const TOP_FUNCTIONS: &str = include_str!("../../queries/top_functions.sql");
/// Has a `{rollup}` placeholder for the table: see [`top_functions_rollup`].
pub const TOP_FUNCTIONS_ROLLUP: &str = include_str!("../../queries/top_functions_rollup.sql");
/// Sample-type total over a window.
pub const TOTAL: &str = include_str!("../../queries/total.sql");
/// A function's time series per service from raw rows.
pub const FUNCTION_TIMESERIES: &str = include_str!("../../queries/function_timeseries.sql");
/// A function's time series per service from a rollup.
pub const FUNCTION_TIMESERIES_ROLLUP: &str = include_str!("../../queries/function_timeseries_rollup.sql");
/// The services a function spends in.
pub const SERVICES_FOR_FUNCTION: &str = include_str!("../../queries/services_for_function.sql");
/// Per-function diff of two sides.
pub const DIFF: &str = include_str!("../../queries/diff.sql");
/// Every function's flat/cum in a window and its baseline (the report).
pub const REPORT_FUNCTIONS: &str = include_str!("../../queries/report_functions.sql");
/// Has a `{rollup}` placeholder for the table: see [`report_functions_rollup`].
pub const REPORT_FUNCTIONS_ROLLUP: &str = include_str!("../../queries/report_functions_rollup.sql");
/// The top services of each of a list of functions (the report).
pub const FUNCTION_SERVICES: &str = include_str!("../../queries/function_services.sql");
/// Flame graph in nested-set form.
pub const FLAMEGRAPH: &str = include_str!("../../queries/flamegraph.sql");

/// The headers of the profiles a merge covers.
pub const MERGE_HEADERS: &str = include_str!("../../queries/merge_headers.sql");
/// The stacks of the profiles a merge covers, with their frames.
pub const MERGE_STACKS: &str = include_str!("../../queries/merge_stacks.sql");

/// The services that have stored profiles.
pub const SERVICES: &str = include_str!("../../queries/services.sql");
/// Stored profiles' metadata, newest first.
pub const LIST_PROFILES: &str = include_str!("../../queries/list_profiles.sql");
/// Where one stored profile came from.
pub const PROFILE_SOURCE: &str = include_str!("../../queries/profile_source.sql");

/// Which rollup a query over a window can read exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `function_values`: any window, label filters.
    Raw,
    /// `function_values_hourly`: windows on whole hours.
    Hourly,
    /// `function_values_daily`: windows on whole UTC days.
    Daily,
}

/// `TOP_FUNCTIONS_ROLLUP` with its table filled in.
pub fn top_functions_rollup(source: Source) -> String {
    let table = match source {
        Source::Raw => return TOP_FUNCTIONS.to_string(),
        Source::Hourly => "function_values_hourly",
        Source::Daily => "function_values_daily",
    };
    TOP_FUNCTIONS_ROLLUP.replace("{rollup}", table)
}

/// `REPORT_FUNCTIONS_ROLLUP` with its table filled in (`REPORT_FUNCTIONS` for [`Source::Raw`]).
pub fn report_functions_rollup(source: Source) -> String {
    let table = match source {
        Source::Raw => return REPORT_FUNCTIONS.to_string(),
        Source::Hourly => "function_values_hourly",
        Source::Daily => "function_values_daily",
    };
    REPORT_FUNCTIONS_ROLLUP.replace("{rollup}", table)
}

/// Strips the leading `--` comment lines (clients that show the query text stay tidy).
pub fn body(q: &str) -> &str {
    let mut rest = q;
    while let Some(line) = rest.lines().next() {
        if line.trim_start().starts_with("--") {
            rest = rest[line.len()..].trim_start_matches('\n');
        } else {
            break;
        }
    }
    rest
}
