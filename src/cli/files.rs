//! `explode` and `top` over local files.
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use pprofhouse_transform::explode::sort_rows;
use pprofhouse_transform::report::{pprof_top_name, write_top_table, write_top_tsv, write_tsv_escaped, TopEntry};
use pprofhouse_transform::{explode as explode_profile, pprof, Demangle, ExplodeOptions, Exploded, FunctionRow};

use super::flags::LimitFlags;
use super::settings::Settings;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExplodeFormat {
    Tsv,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ExplodeArgs {
    /// Output format: TSV `sample_type<TAB>function<TAB>flat<TAB>cum` (a first `file` column
    /// with several files) or JSON lines.
    #[arg(long, default_value = "tsv")]
    pub format: ExplodeFormat,
    /// `pprof`: names as a line-based reader of `go tool pprof -top` sees them (first line of
    /// the name, ` (partial-inline)` label kept, ` (inline)` dropped) — what the fixture oracles
    /// hold. `full`: the complete function name, the key pprofhouse stores in ClickHouse.
    #[arg(long, default_value = "pprof")]
    pub names: NameStyle,
    /// How function names are demangled, as pprof's `-symbolize=demangle=`: `default`
    /// (simplified: no parameters, no template arguments), `templates`, `full`, `none`.
    #[arg(long, default_value = "default")]
    pub demangle: DemangleMode,
    #[command(flatten)]
    pub limits: LimitFlags,
    /// pprof files (gzip or raw protobuf).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NameStyle {
    Pprof,
    Full,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DemangleMode {
    Default,
    Templates,
    Full,
    None,
}

impl From<DemangleMode> for Demangle {
    fn from(m: DemangleMode) -> Demangle {
        match m {
            DemangleMode::Default => Demangle::Default,
            DemangleMode::Templates => Demangle::Templates,
            DemangleMode::Full => Demangle::Full,
            DemangleMode::None => Demangle::None,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TopFormat {
    Table,
    Tsv,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// How many functions to show.
    #[arg(short = 'n', long = "nodecount", default_value_t = 10)]
    pub n: usize,
    /// Sample type (`type` or `type/unit`); default: the one `go tool pprof` picks.
    #[arg(long)]
    pub sample_type: Option<String>,
    /// Sort by cum instead of flat.
    #[arg(long)]
    pub cum: bool,
    /// `table` (like pprof -top, human units) or `tsv` (`function<TAB>flat<TAB>cum`, exact).
    #[arg(long, default_value = "table")]
    pub format: TopFormat,
    /// How function names are demangled, as pprof's `-symbolize=demangle=`: `default`
    /// (simplified: no parameters, no template arguments), `templates`, `full`, `none`.
    #[arg(long, default_value = "default")]
    pub demangle: DemangleMode,
    #[command(flatten)]
    pub limits: LimitFlags,
    /// pprof files; several are summed like `go tool pprof` merges them. Without files, `top`
    /// queries ClickHouse (`--type` and a window are then required).
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub db: super::db::TopDbArgs,
}

/// Reads, decodes and explodes one file; the error names the file.
pub fn load_file(path: &Path, limits: &pprof::Limits, opts: ExplodeOptions) -> anyhow::Result<Exploded> {
    let data = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let profile = pprof::decode(data, limits).with_context(|| format!("{}", path.display()))?;
    Ok(explode_profile(&profile, opts))
}

fn report_error(e: &anyhow::Error) {
    eprintln!("pprofhouse: {}", super::one_line(e));
}

/// Ends output quietly when stdout is a closed pipe (`| head`).
fn finish(r: io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The settings sections the file commands read.
#[derive(Serialize)]
struct FileSettings<'a> {
    limits: &'a LimitFlags,
}

fn limits(flags: &LimitFlags, config: Option<&Path>) -> anyhow::Result<pprof::Limits> {
    Ok(Settings::load(config, &FileSettings { limits: flags })?.limits)
}

pub fn explode(args: ExplodeArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let limits = limits(&args.limits, config)?;
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let many = args.files.len() > 1;
    let mut failed = false;
    for path in &args.files {
        let opts = ExplodeOptions { inline_marks: args.names == NameStyle::Pprof, demangle: args.demangle.into(), ..Default::default() };
        match load_file(path, &limits, opts) {
            Ok(ex) => {
                let r = write_exploded(&mut out, &ex, many.then_some(path), args.format, args.names);
                finish(r)?;
            }
            Err(e) => {
                failed = true;
                report_error(&e);
            }
        }
    }
    finish(out.flush())?;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn write_exploded(out: &mut impl Write, ex: &Exploded, file: Option<&PathBuf>, format: ExplodeFormat, names: NameStyle) -> io::Result<()> {
    let types: Vec<String> = ex.facts.sample_types.iter().map(|t| t.to_string()).collect();
    let file_str = file.map(|f| f.display().to_string());
    for row in ex.all_rows() {
        let name = match names {
            NameStyle::Pprof => pprof_top_name(row.function, row.mark),
            NameStyle::Full => std::borrow::Cow::Borrowed(row.function),
        };
        let name = &name[..];
        match format {
            ExplodeFormat::Tsv => {
                if let Some(f) = &file_str {
                    write_tsv_escaped(out, f.as_bytes())?;
                    out.write_all(b"\t")?;
                }
                write_tsv_escaped(out, types[row.sample_type].as_bytes())?;
                out.write_all(b"\t")?;
                write_tsv_escaped(out, name)?;
                writeln!(out, "\t{}\t{}", row.flat, row.cum)?;
            }
            ExplodeFormat::Jsonl => {
                let mut obj = serde_json::Map::new();
                if let Some(f) = &file_str {
                    obj.insert("file".into(), f.clone().into());
                }
                obj.insert("sample_type".into(), types[row.sample_type].clone().into());
                obj.insert("function".into(), String::from_utf8_lossy(name).into_owned().into());
                obj.insert("flat".into(), row.flat.into());
                obj.insert("cum".into(), row.cum.into());
                serde_json::to_writer(&mut *out, &obj)?;
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

pub fn top(args: TopArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if args.files.is_empty() {
        return super::db::top(args, config);
    }
    let limits = limits(&args.limits, config)?;
    let mut failed = false;
    // The chosen sample type, fixed by the first good file (as pprof's merge keeps the first's).
    let mut chosen: Option<pprof::SampleType> = None;
    let mut sums: HashMap<Vec<u8>, (i64, i64)> = HashMap::new();
    let mut total = 0i64;
    for path in &args.files {
        let ex = match load_file(path, &limits, ExplodeOptions { demangle: args.demangle.into(), ..Default::default() }) {
            Ok(ex) => ex,
            Err(e) => {
                failed = true;
                report_error(&e);
                continue;
            }
        };
        let t = match &chosen {
            Some(st) => ex.facts.sample_types.iter().position(|t| t == st),
            None => match &args.sample_type {
                Some(want) => ex
                    .facts
                    .sample_types
                    .iter()
                    .position(|t| t.to_string() == *want)
                    .or_else(|| ex.facts.sample_types.iter().position(|t| t.r#type == *want)),
                None => Some(ex.facts.default_sample_type),
            },
        };
        let Some(t) = t else {
            failed = true;
            let want = chosen.as_ref().map(|c| c.to_string()).or(args.sample_type.clone()).unwrap_or_default();
            let have: Vec<String> = ex.facts.sample_types.iter().map(|t| t.to_string()).collect();
            eprintln!("pprofhouse: {}: no sample type {want} (has {})", path.display(), have.join(", "));
            continue;
        };
        chosen.get_or_insert_with(|| ex.facts.sample_types[t].clone());
        total += ex.facts.totals[t];
        for row in ex.rows(t) {
            let e = sums.entry(row.function.to_vec()).or_default();
            e.0 += row.flat;
            e.1 += row.cum;
        }
    }
    let Some(st) = chosen else {
        return Ok(ExitCode::FAILURE);
    };
    let mut rows: Vec<FunctionRow<'_>> = sums
        .iter()
        .filter(|(_, &(f, c))| f != 0 || c != 0)
        .map(|(name, &(flat, cum))| FunctionRow { sample_type: 0, function: name, flat, cum, mark: Default::default() })
        .collect();
    sort_rows(&mut rows, args.cum);
    let all = rows.len();
    let entries: Vec<TopEntry> =
        rows.iter().take(args.n).map(|r| TopEntry { function: r.function.to_vec(), flat: r.flat, cum: r.cum }).collect();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let r = match args.format {
        TopFormat::Tsv => write_top_tsv(&mut out, &entries),
        TopFormat::Table => write_top_table(&mut out, &st.to_string(), &st.unit, &entries, total, all),
    };
    finish(r.and_then(|_| out.flush()))?;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
