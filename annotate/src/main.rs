//! `demotape`: the companion tool. See `--help`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Work with recorded demonstration episodes (MCAP files written by demotape-recorder, or any
/// ros2-profile MCAP).
///
/// Exit codes: 0 success, 1 failure (e.g. a damaged file: what was readable is still
/// reported), 2 usage error, 3 success with data loss (recover).
///
/// Logs go to stderr; set RUST_LOG for more detail. --json output is one JSON document on
/// stdout.
#[derive(Parser, Debug)]
#[command(name = "demotape", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Rebuild a valid, indexed MCAP from a truncated or damaged one, and report what was lost.
    ///
    /// Copies the header, schemas, channels, metadata and every message of every readable
    /// chunk bit-exact into OUT (which must not exist), adds a summary section and a
    /// `demotape.recovered` metadata record. Exit 0 if nothing was lost, 3 if something was.
    ///
    /// Example: demotape recover crashed.mcap crashed.recovered.mcap
    Recover {
        /// The damaged file.
        input: PathBuf,
        /// Where to write the recovered file.
        output: PathBuf,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// What is in an episode: channels, types, counts, rates, drops, duration, metadata, sync.
    ///
    /// Reads every record and CRC-checks every chunk, so a truncated or corrupted file is
    /// reported precisely (byte offset of each problem) together with everything that was
    /// still readable. Exits 1 if the file is damaged.
    ///
    /// Example: demotape inspect episodes/sim-robot/sim-robot_20261122T101500Z_0000.mcap
    Inspect {
        /// The MCAP file.
        file: PathBuf,
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
        /// Also re-estimate every device clock offline from /demotape/clock/* and report how
        /// far the recorded (online) stamps are from that re-estimate, per device.
        #[arg(long)]
        resync: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Recover {
            input,
            output,
            json,
        } => match annotate::recover::recover(&input, &output) {
            Ok(r) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                } else {
                    print!("{}", r.render());
                }
                if r.lost_anything() {
                    ExitCode::from(3)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Inspect { file, json, resync } => {
            match annotate::inspect::Inspection::run(&file) {
                Ok(mut ins) => {
                    if resync && ins.intact {
                        match annotate::resync::audit(&file) {
                            Ok(a) => ins.resync = Some(a),
                            Err(e) => eprintln!("error: {e:#}"),
                        }
                    }
                    if json {
                        match serde_json::to_string_pretty(&ins) {
                            Ok(s) => println!("{s}"),
                            Err(e) => {
                                eprintln!("error: {e}");
                                return ExitCode::from(1);
                            }
                        }
                    } else {
                        print!("{}", ins.render());
                    }
                    if ins.intact {
                        ExitCode::SUCCESS
                    } else {
                        for p in &ins.problems {
                            eprintln!(
                                "error: {}: byte {}: {}",
                                file.display(),
                                p.offset,
                                p.message
                            );
                        }
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
