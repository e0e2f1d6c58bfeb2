//! `strand-sim run SCENARIO.toml --seed N [--json] [--out DIR]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Strand network simulator: the real ledger, repair and placement over
/// simulated time, seeded.
#[derive(Parser)]
#[command(name = "strand-sim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario and prints its report; exits 1 if an invariant failed.
    Run {
        /// The scenario (commented TOML; see sim/scenarios/).
        scenario: PathBuf,
        /// The seed: the same seed gives the same report, byte for byte.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
        /// Also write `report.json`, the epoch-by-epoch `timeline.csv`
        /// (redundancy, repair backlog, nodes) and its plot `timeline.svg`
        /// into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Command::Run { scenario: path, seed, json, out } = Cli::parse().command;
    let scenario = match std::fs::read_to_string(&path)
        .map_err(|error| error.to_string())
        .and_then(|text| strand_sim::Scenario::from_toml(&text).map_err(|error| error.to_string()))
    {
        Ok(scenario) => scenario,
        Err(error) => {
            eprintln!("strand-sim: {}: {error}", path.display());
            return ExitCode::from(2);
        }
    };
    let report = strand_sim::run(&scenario, seed);
    if let Some(directory) = out {
        let written = std::fs::create_dir_all(&directory)
            .and_then(|()| std::fs::write(directory.join("timeline.csv"), report.timeline_csv()))
            .and_then(|()| {
                let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
                std::fs::write(directory.join("report.json"), text + "\n")
            })
            .and_then(|()| {
                let svg = strand_sim::plot::timeline_svg(&report.scenario, &report.timeline)
                    .map_err(std::io::Error::other)?;
                std::fs::write(directory.join("timeline.svg"), svg)
            });
        if let Err(error) = written {
            eprintln!("strand-sim: cannot write into {}: {error}", directory.display());
            return ExitCode::from(2);
        }
    }
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("strand-sim: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.text());
    }
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("strand-sim: invariants failed; reproduce with: strand-sim run {} --seed {seed}", path.display());
        ExitCode::from(1)
    }
}
