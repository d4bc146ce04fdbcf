//! The schema: numbered migration templates from `sql/migrations/`, and [`render`], which fills
//! in the database, engines, cluster and retention. [`migrate`] applies them.

mod migrate;

pub use migrate::{migrate, pending, require_migrated};

/// One schema migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version number (the file's prefix).
    pub version: u32,
    /// File name without `.sql`.
    pub name: &'static str,
    /// The SQL template.
    pub template: &'static str,
}

macro_rules! migration {
    ($v:expr, $name:literal) => {
        Migration { version: $v, name: $name, template: include_str!(concat!("../../migrations/", $name, ".sql")) }
    };
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_profiles"),
    migration!(2, "0002_function_values"),
    migration!(3, "0003_stacks"),
    migration!(4, "0004_rollups"),
    migration!(5, "0005_ingest"),
    migration!(6, "0006_distributed"),
    migration!(7, "0007_marker_last"),
    migration!(8, "0008_stack_samples"),
    migration!(9, "0009_profile_id_projection"),
    migration!(10, "0010_stack_arrays_by_type"),
    migration!(11, "0011_rollups_by_the_sink"),
    migration!(12, "0012_attempts"),
];

/// Retention per table family, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// `profiles`.
    pub profiles_days: u32,
    /// `function_values`, `stacks`, `stack_values`.
    pub raw_days: u32,
    /// `function_values_hourly`.
    pub hourly_days: u32,
    /// `function_values_daily`.
    pub daily_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { profiles_days: 90, raw_days: 30, hourly_days: 180, daily_days: 730 }
    }
}

impl Retention {
    /// The tables whose TTL has already passed for a profile taken at `ts_ms`, as of `now_ms`
    /// (`(table family, days)`), shortest retention first.
    pub fn expired_for(&self, ts_ms: i64, now_ms: i64) -> Vec<(&'static str, u32)> {
        let age_days = (now_ms - ts_ms).max(0) / 86_400_000;
        let mut out: Vec<(&'static str, u32)> = [
            ("raw rows (function_values, stacks)", self.raw_days),
            ("profiles", self.profiles_days),
            ("hourly rollup", self.hourly_days),
            ("daily rollup", self.daily_days),
        ]
        .into_iter()
        .filter(|&(_, days)| age_days >= days as i64)
        .collect();
        out.sort_by_key(|&(_, d)| d);
        out
    }

    /// True when every table's TTL has passed: nothing of the profile would stay visible.
    pub fn all_expired(&self, ts_ms: i64, now_ms: i64) -> bool {
        self.expired_for(ts_ms, now_ms).len() == 4
    }
}

/// How to render the templates.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Database name.
    pub database: String,
    /// `Some(cluster)`: `ON CLUSTER`, Replicated engines, `_local` tables + Distributed ones.
    pub cluster: Option<String>,
    /// TTLs.
    pub retention: Retention,
}

/// Quotes an identifier for ClickHouse (backticks, with `\` and `` ` `` escaped).
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('\\', "\\\\").replace('`', "\\`"))
}

/// Renders a migration into the statements to run, in order.
pub fn render(template: &str, o: &RenderOptions) -> Vec<String> {
    let cluster = o.cluster.as_deref();
    let on_cluster = cluster.map(|c| format!(" ON CLUSTER {}", quote_ident(c))).unwrap_or_default();
    let prefix = if cluster.is_some() { "Replicated" } else { "" };
    let r = &o.retention;
    let vars: [(&str, String); 11] = [
        ("{db}", quote_ident(&o.database)),
        ("{on_cluster}", on_cluster),
        ("{local}", if cluster.is_some() { "_local".into() } else { String::new() }),
        ("{cluster}", cluster.map(|c| format!("'{}'", c.replace('\\', "\\\\").replace('\'', "\\'"))).unwrap_or_default()),
        ("{merge_tree}", format!("{prefix}MergeTree")),
        ("{replacing}", format!("{prefix}ReplacingMergeTree")),
        ("{summing}", format!("{prefix}SummingMergeTree")),
        ("{ttl_profiles_days}", r.profiles_days.to_string()),
        ("{ttl_raw_days}", r.raw_days.to_string()),
        ("{ttl_hourly_days}", r.hourly_days.to_string()),
        ("{ttl_daily_days}", r.daily_days.to_string()),
    ];
    template
        .split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter(|s| s.lines().any(|l| !l.trim_start().starts_with("--") && !l.trim().is_empty()))
        .filter(|s| cluster.is_some() || !s.contains("-- cluster-only"))
        .map(|s| {
            let mut out = s.trim_end_matches(';').to_string();
            for (k, v) in &vars {
                out = out.replace(k, v);
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_names_the_retention_that_drops_a_profile() {
        let r = Retention::default();
        let day = 86_400_000;
        let now = 1_000 * day;
        assert!(r.expired_for(now - 2 * day, now).is_empty());
        assert_eq!(r.expired_for(now - 40 * day, now), vec![("raw rows (function_values, stacks)", 30)]);
        assert!(!r.all_expired(now - 700 * day, now));
        assert!(r.all_expired(now - 731 * day, now));
    }

    #[test]
    fn renders_single_node_without_cluster_statements() {
        let o = RenderOptions { database: "pp".into(), ..Default::default() };
        let all: Vec<String> = MIGRATIONS.iter().flat_map(|m| render(m.template, &o)).collect();
        assert!(all.iter().all(|s| !s.contains('{') || s.contains("{ ") || !s.contains("{db}")));
        assert!(all.iter().any(|s| s.contains("CREATE TABLE IF NOT EXISTS `pp`.function_values\n")));
        assert!(!all.iter().any(|s| s.contains("Distributed") || s.contains("ON CLUSTER") || s.contains("Replicated")));
        assert!(all.iter().any(|s| s.contains("INTERVAL 30 DAY")));
    }

    #[test]
    fn renders_cluster_mode() {
        let o = RenderOptions { database: "pp".into(), cluster: Some("prod".into()), ..Default::default() };
        let all: Vec<String> = MIGRATIONS.iter().flat_map(|m| render(m.template, &o)).collect();
        assert!(all.iter().any(|s| s.contains("`pp`.function_values_local ON CLUSTER `prod`")));
        assert!(all.iter().any(|s| s.contains("ENGINE = ReplicatedMergeTree")));
        assert!(all.iter().any(|s| s.contains("Distributed('prod', `pp`, function_values_local")));
        // The sink inserts into the rollups through their Distributed tables: the last
        // definition of each has a sharding key, and the table it replaces is dropped first.
        for t in ["function_values_hourly", "function_values_daily"] {
            let defs: Vec<usize> =
                (0..all.len()).filter(|&i| all[i].contains(&format!("`pp`.{t} ON CLUSTER")) && all[i].contains("Distributed")).collect();
            let last = &all[*defs.last().unwrap()];
            assert!(last.contains(&format!("{t}_local, cityHash64(profile_type, sample_type, service, function))")), "{last}");
            let drop =
                all.iter().position(|s| s.lines().any(|l| l.starts_with(&format!("DROP TABLE IF EXISTS `pp`.{t} ON CLUSTER")))).unwrap();
            assert!(defs[0] < drop && drop < *defs.last().unwrap());
        }
    }
}
