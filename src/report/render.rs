//! A [`Report`] as markdown, HTML (one self-contained file: inline CSS and an inline SVG bar
//! chart, no script, nothing fetched), CSV or JSON (exact integers).
use std::fmt::Write as _;

use pprofhouse_transform::report::scaled_label;
use serde::{Deserialize, Serialize};

use super::{Change, Report, ServiceEntry};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A markdown document (also the webhook's text).
    Markdown,
    /// One self-contained HTML file with an SVG bar chart.
    Html,
    /// One CSV row per top function.
    Csv,
    /// The report as JSON.
    Json,
}

impl Format {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }

    /// MIME type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// Renders `r` in `format`.
pub fn render(r: &Report, format: Format) -> Vec<u8> {
    match format {
        Format::Markdown => markdown(r).into_bytes(),
        Format::Html => html(r).into_bytes(),
        Format::Csv => csv(r),
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(r).expect("a report serializes");
            v.push(b'\n');
            v
        }
    }
}

fn unit(r: &Report) -> &str {
    r.window.sample_type.split_once('/').map(|(_, u)| u).unwrap_or("")
}

fn title(r: &Report) -> String {
    let w = &r.window;
    let mut sel = String::new();
    if let Some(s) = &w.service {
        let _ = write!(sel, ", service {s}");
    }
    for (k, v) in &w.labels {
        let _ = write!(sel, ", {k}={v}");
    }
    format!("pprofhouse report: {} {}{sel}", w.profile_type, w.sample_type)
}

fn change_text(c: &Change) -> String {
    let ratio = c.ratio.map(|x| format!("×{x:.2}")).unwrap_or_else(|| "new".into());
    format!("{:+.2} pp ({ratio})", c.share_points)
}

fn q_text(c: &Change) -> String {
    let q = if c.q_value < 1e-4 { format!("{:.0e}", c.q_value) } else { format!("{:.4}", c.q_value) };
    if c.significant {
        format!("{q} **significant**")
    } else {
        q
    }
}

fn services_text(s: &[ServiceEntry], unit: &str) -> String {
    s.iter()
        .map(|e| format!("{} {} ({:.1}% of {})", e.service, scaled_label(e.cum, unit), e.cum_pct_of_service, e.service))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Core-hours and money: two decimals below 10, one above.
fn num(x: f64) -> String {
    if x.abs() < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn md_name(name: &str) -> String {
    format!("`{}`", name.replace('`', "'").replace('|', "\\|").replace('\n', " "))
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The markdown document (GitHub/Slack-flavoured tables).
pub fn markdown(r: &Report) -> String {
    let w = &r.window;
    let u = unit(r);
    let mut o = String::new();
    let _ = writeln!(o, "## {}\n", md_cell(&title(r)));
    let _ = writeln!(
        o,
        "Window {} → {} ({} profiles, total {}) against {} → {} ({} profiles, total {}); ranked by {}.\n",
        w.from,
        w.to,
        w.profiles,
        scaled_label(w.total, u),
        w.baseline_from,
        w.baseline_to,
        w.baseline_profiles,
        scaled_label(w.baseline_total, u),
        w.order
    );
    if let Some(c) = &r.cost {
        let _ = writeln!(
            o,
            "At this rate the selection uses **{:.1} core-hours a year** (${:.2} at ${} per core-hour).\n",
            c.total_core_hours, c.total_cost, c.price_per_core_hour
        );
    }
    let cost = r.cost.is_some();
    let _ = write!(o, "| # | function | flat | flat% | cum | cum% | change of share | q |");
    if cost {
        let _ = write!(o, " core-h/yr | $/yr |");
    }
    let _ = writeln!(o, " top services |");
    let _ = write!(o, "|---:|---|---:|---:|---:|---:|---:|---:|");
    if cost {
        let _ = write!(o, "---:|---:|");
    }
    let _ = writeln!(o, "---|");
    for f in &r.functions {
        let _ = write!(
            o,
            "| {} | {} | {} | {:.2}% | {} | {:.2}% | {} | {} |",
            f.rank,
            md_name(&f.function),
            scaled_label(f.flat, u),
            f.flat_pct,
            scaled_label(f.cum, u),
            f.cum_pct,
            change_text(&f.change),
            q_text(&f.change)
        );
        if let Some(c) = &f.cost {
            let (h, d) = if w.order == "cum" { (c.cum_core_hours, c.cum_cost) } else { (c.flat_core_hours, c.flat_cost) };
            let _ = write!(o, " {} | {} |", num(h), num(d));
        }
        let _ = writeln!(o, " {} |", md_cell(&services_text(&f.services, u)));
    }
    let s = &r.significance;
    let _ = writeln!(o, "\n### Movers\n");
    if r.movers.is_empty() {
        let _ = writeln!(o, "No function's share of {} changed significantly.", w.order);
    } else {
        let _ = writeln!(o, "| function | {} | baseline | share | change of share | q | top services |", w.order);
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---|");
        for m in &r.movers {
            let _ = writeln!(
                o,
                "| {} {} | {} | {} | {:.2}% | {} | {} | {} |",
                if m.direction == "up" { "▲" } else { "▼" },
                md_name(&m.function),
                scaled_label(m.value, u),
                scaled_label(m.baseline_value, u),
                m.change.share_pct,
                change_text(&m.change),
                q_text(&m.change),
                md_cell(&services_text(&m.services, u))
            );
        }
    }
    let _ = writeln!(
        o,
        "\n_Two-proportion z-tests on {} ({} vs {} samples) over {} functions; Benjamini–Hochberg at FDR {}; a mover also moves ≥ {} pp and ≥ {:.0}% of its share._",
        s.basis,
        s.samples,
        s.baseline_samples,
        s.tested,
        s.fdr,
        s.min_share_points,
        s.min_relative_change * 100.0
    );
    o
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// One self-contained HTML file: the tables and a horizontal bar chart (inline SVG) of the
/// ranked value.
pub fn html(r: &Report) -> String {
    let w = &r.window;
    let u = unit(r);
    let by_cum = w.order == "cum";
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
body{{font-family:system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}}\
table{{border-collapse:collapse;margin:12px 0}}td,th{{border:1px solid #d0d7de;padding:4px 8px;font-size:13px}}\
td.n{{text-align:right;font-variant-numeric:tabular-nums}}code{{font-size:12px}}.up{{color:#b42318}}.down{{color:#067647}}\
</style></head><body>\n<h2>{}</h2>\n<p>Window {} → {} ({} profiles, total {}) against {} → {} ({} profiles, total {}); ranked by {}.</p>\n",
        esc(&title(r)),
        esc(&title(r)),
        esc(&w.from),
        esc(&w.to),
        w.profiles,
        esc(&scaled_label(w.total, u)),
        esc(&w.baseline_from),
        esc(&w.baseline_to),
        w.baseline_profiles,
        esc(&scaled_label(w.baseline_total, u)),
        esc(&w.order)
    );
    if let Some(c) = &r.cost {
        let _ = writeln!(
            o,
            "<p>{:.1} core-hours a year (${:.2} at ${} per core-hour).</p>",
            c.total_core_hours, c.total_cost, c.price_per_core_hour
        );
    }
    // The chart: one bar per function, length ∝ its share, labelled.
    let (bar_h, label_w, chart_w) = (22.0, 420.0, 420.0);
    let height = bar_h * r.functions.len() as f64 + 10.0;
    let max = r.functions.iter().map(|f| if by_cum { f.cum_pct } else { f.flat_pct }).fold(0.0f64, f64::max).max(1e-9);
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"top functions by {}\">",
        label_w + chart_w + 80.0,
        esc(&w.order)
    );
    for (i, f) in r.functions.iter().enumerate() {
        let share = if by_cum { f.cum_pct } else { f.flat_pct };
        let y = 5.0 + i as f64 * bar_h;
        let len = (share / max * chart_w).max(1.0);
        let name: String = f.function.chars().take(60).collect();
        let color = if f.change.significant && f.change.share_points > 0.0 {
            "#d92d20"
        } else if f.change.significant {
            "#12b76a"
        } else {
            "#2e90fa"
        };
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\" font-family=\"monospace\">{}</text><rect x=\"{}\" y=\"{}\" width=\"{len:.1}\" height=\"{}\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{share:.2}%</text>",
            label_w - 6.0,
            y + 14.0,
            esc(&name),
            label_w,
            y + 2.0,
            bar_h - 4.0,
            label_w + len + 4.0,
            y + 14.0
        );
    }
    let _ = writeln!(o, "</svg>");
    let _ = writeln!(
        o,
        "<table><thead><tr><th>#</th><th>function</th><th>flat</th><th>flat%</th><th>cum</th><th>cum%</th><th>change of share</th><th>q</th>{}<th>top services</th></tr></thead><tbody>",
        if r.cost.is_some() { "<th>core-h/yr</th><th>$/yr</th>" } else { "" }
    );
    for f in &r.functions {
        let cost = f
            .cost
            .as_ref()
            .map(|c| {
                let (h, d) = if by_cum { (c.cum_core_hours, c.cum_cost) } else { (c.flat_core_hours, c.flat_cost) };
                format!("<td class=\"n\">{}</td><td class=\"n\">{}</td>", num(h), num(d))
            })
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "<tr><td class=\"n\">{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{:.2}%</td><td class=\"n\">{}</td><td class=\"n\">{:.2}%</td><td class=\"n\">{}</td><td class=\"n\">{}</td>{cost}<td>{}</td></tr>",
            f.rank,
            esc(&f.function),
            esc(&scaled_label(f.flat, u)),
            f.flat_pct,
            esc(&scaled_label(f.cum, u)),
            f.cum_pct,
            esc(&change_text(&f.change)),
            esc(&q_text(&f.change).replace("**", "")),
            esc(&services_text(&f.services, u))
        );
    }
    let _ = writeln!(o, "</tbody></table>\n<h3>Movers</h3>");
    if r.movers.is_empty() {
        let _ = writeln!(o, "<p>No function's share of {} changed significantly.</p>", esc(&w.order));
    } else {
        let _ = writeln!(o, "<table><thead><tr><th>function</th><th>{}</th><th>baseline</th><th>share</th><th>change of share</th><th>q</th><th>top services</th></tr></thead><tbody>", esc(&w.order));
        for m in &r.movers {
            let _ = writeln!(
                o,
                "<tr><td class=\"{}\"><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}%</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&m.direction),
                esc(&m.function),
                esc(&scaled_label(m.value, u)),
                esc(&scaled_label(m.baseline_value, u)),
                m.change.share_pct,
                esc(&change_text(&m.change)),
                esc(&q_text(&m.change).replace("**", "")),
                esc(&services_text(&m.services, u))
            );
        }
        let _ = writeln!(o, "</tbody></table>");
    }
    let s = &r.significance;
    let _ = writeln!(
        o,
        "<p><small>Two-proportion z-tests on {} ({} vs {} samples) over {} functions; Benjamini–Hochberg at FDR {}; a mover also moves ≥ {} pp and ≥ {:.0}% of its share.</small></p>\n</body></html>",
        esc(&s.basis),
        s.samples,
        s.baseline_samples,
        s.tested,
        s.fdr,
        s.min_share_points,
        s.min_relative_change * 100.0
    );
    o
}

/// One row per top function, exact integers, a header row.
pub fn csv(r: &Report) -> Vec<u8> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let header = [
        "rank",
        "function",
        "flat",
        "flat_pct",
        "cum",
        "cum_pct",
        "baseline_flat",
        "baseline_cum",
        "share_points",
        "ratio",
        "p_value",
        "q_value",
        "significant",
        "annual_core_hours",
        "annual_cost",
        "services",
    ];
    let _ = w.write_record(header);
    let by_cum = r.window.order == "cum";
    for f in &r.functions {
        let (h, d) = match &f.cost {
            Some(c) if by_cum => (c.cum_core_hours.to_string(), c.cum_cost.to_string()),
            Some(c) => (c.flat_core_hours.to_string(), c.flat_cost.to_string()),
            None => (String::new(), String::new()),
        };
        let services = f.services.iter().map(|s| format!("{}={}", s.service, s.cum)).collect::<Vec<_>>().join(";");
        let _ = w.write_record([
            f.rank.to_string(),
            f.function.clone(),
            f.flat.to_string(),
            f.flat_pct.to_string(),
            f.cum.to_string(),
            f.cum_pct.to_string(),
            f.baseline_flat.to_string(),
            f.baseline_cum.to_string(),
            f.change.share_points.to_string(),
            f.change.ratio.map(|x| x.to_string()).unwrap_or_default(),
            f.change.p_value.to_string(),
            f.change.q_value.to_string(),
            f.change.significant.to_string(),
            h,
            d,
            services,
        ]);
    }
    w.into_inner().unwrap_or_default()
}
