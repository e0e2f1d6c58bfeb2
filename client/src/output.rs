//! What `strand` prints on standard output, and how.
//!
//! Every line goes through [`out!`], which returns the write's error instead
//! of panicking as `println!` does: when the reader goes away
//! (`strand proofs UPLOAD | head`), the command unwinds normally (a devnet
//! stops its processes) and `main` exits quietly ([`is_broken_pipe`]).

use std::io::Write as _;

use serde::Serialize;
use strand_client::offline::{DecodeSummary, EncodeSummary};

/// Writes one line to standard output; `Err` when it cannot (a closed pipe).
macro_rules! out {
    ($($argument:tt)*) => {
        $crate::output::line(format_args!($($argument)*))
    };
}

/// Writes one line to standard output.
pub fn line(arguments: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(arguments)?;
    stdout.write_all(b"\n")
}

/// Whether `error` comes from writing to a reader that went away.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints `value` as JSON, or as text with `text`.
pub fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> std::io::Result<()>) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string_pretty(value)?)?;
    } else {
        text(value)?;
    }
    Ok(())
}

fn text(value: &serde_json::Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_string)
}

fn short(value: &serde_json::Value) -> String {
    let text = text(value);
    text[..16.min(text.len())].to_string()
}

/// The proof history of an upload, one line per provider and per check.
pub fn print_proofs(value: &serde_json::Value) -> std::io::Result<()> {
    out!("upload {}  (ledger epoch {}, height {})", text(&value["upload"]), value["epoch"], value["height"])?;
    for provider in value["providers"].as_array().into_iter().flatten() {
        out!(
            "provider {}  contract {}  {}  passed {} failed {} missed {}  strikes {}/{}  provider missed {} epoch(s)",
            short(&provider["provider"]),
            short(&provider["contract"]),
            text(&provider["status"]),
            provider["passed"],
            provider["failed"],
            provider["missed"],
            provider["strikes"],
            provider["strikes_max"],
            provider["provider_missed_epochs"],
        )?;
        let repair = &provider["repair"];
        let health = text(&repair["health"]);
        match health.as_str() {
            "healthy" | "" => {}
            "repaired" => out!(
                "  repaired ({} move(s)); first held by {}",
                repair["repairs"],
                short(&provider["original_provider"])
            )?,
            "lost" => out!("  lost: queued for a repairer since epoch {}", repair["queued_since_epoch"])?,
            other => out!(
                "  {other}: repairer {} since epoch {}, deadline epoch {}{}",
                short(&repair["repairer"]),
                repair["since_epoch"],
                repair["deadline_epoch"],
                if repair["reported"] == true { ", reported" } else { "" },
            )?,
        }
        for epoch in provider["epochs"].as_array().into_iter().flatten() {
            let reason = epoch["reason"].as_str().map(|reason| format!("  {reason}")).unwrap_or_default();
            let height = epoch["height"].as_u64().map(|height| format!("  height {height}")).unwrap_or_default();
            out!("  epoch {:>6}  {:<6}{height}{reason}", epoch["epoch"], text(&epoch["verdict"]))?;
        }
    }
    Ok(())
}

/// Human form of a ledger answer: one `key: value` line per field, nested
/// lists indented.
pub fn print_ledger(value: &serde_json::Value) -> std::io::Result<()> {
    fn walk(value: &serde_json::Value, indent: usize) -> std::io::Result<()> {
        let pad = " ".repeat(indent);
        match value {
            serde_json::Value::Object(fields) => {
                for (key, field) in fields {
                    match field {
                        serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                            out!("{pad}{key}:")?;
                            walk(field, indent + 2)?;
                        }
                        scalar => out!("{pad}{key}: {}", text(scalar))?,
                    }
                }
            }
            serde_json::Value::Array(items) if items.is_empty() => out!("{pad}(none)")?,
            serde_json::Value::Array(items) => {
                for item in items {
                    match item {
                        serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                            out!("{pad}-")?;
                            walk(item, indent + 2)?;
                        }
                        scalar => out!("{pad}- {}", text(scalar))?,
                    }
                }
            }
            scalar => out!("{pad}{scalar}")?,
        }
        Ok(())
    }
    walk(value, 0)
}

/// The summary of `strand encode`.
pub fn print_encode(summary: &EncodeSummary) -> std::io::Result<()> {
    out!("upload    {}", summary.upload_id)?;
    out!(
        "encoded   {} ({} bytes) in {:.2} s, {:.0} MB/s",
        summary.file.display(),
        summary.file_bytes,
        summary.seconds,
        summary.bytes_per_second / 1e6
    )?;
    out!(
        "code      RS({}+{}), chunk {} bytes: {} stripes, {} fragments of {} bytes",
        summary.data_shards,
        summary.parity_shards,
        summary.chunk_size,
        summary.stripes,
        summary.fragments,
        summary.fragment_bytes
    )?;
    out!("fragments {}", summary.fragment_directory.display())?;
    out!("index     {} (sealed to {})", summary.index.display(), &summary.owner[..10])?;
    out!("blake3    {}", summary.file_blake3)
}

/// The summary of `strand decode`.
pub fn print_decode(summary: &DecodeSummary) -> std::io::Result<()> {
    out!(
        "decoded   {} bytes [{}..{}) to {} in {:.2} s, {:.0} MB/s",
        summary.bytes,
        summary.range[0],
        summary.range[1],
        summary.output.display(),
        summary.seconds,
        summary.bytes_per_second / 1e6
    )?;
    if summary.file_blake3_verified {
        out!("check     blake3 {} verified", summary.file_blake3)?;
    } else {
        out!("check     every chunk authenticated (a range: the whole-file hash is not checked)")?;
    }
    for stripe in &summary.degraded_stripes {
        out!("degraded  stripe {} rebuilt from parity: {}", stripe.stripe, stripe.problems.join("; "))?;
    }
    Ok(())
}

/// `strand load`'s report as text.
pub fn print_load(report: &strand_client::load::LoadReport) -> std::io::Result<()> {
    let latency = |name: &str, latency: &strand_client::load::Latency| {
        format!(
            "{name:<9} {:>6} done   p50 {:>8.1} ms   p99 {:>8.1} ms   max {:>8.1} ms",
            latency.count, latency.p50_ms, latency.p99_ms, latency.max_ms
        )
    };
    out!("{} clients for {:.1} s", report.clients, report.seconds)?;
    out!("{}", latency("upload", &report.upload))?;
    out!("{}", latency("download", &report.download))?;
    out!(
        "throughput {:.2} MB/s (uploaded + downloaded); {} downloads byte-identical; {} errors",
        report.throughput_bytes_per_s / 1e6,
        report.identical,
        report.errors.len()
    )?;
    for error in &report.errors {
        out!("error: {error}")?;
    }
    Ok(())
}
