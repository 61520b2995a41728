//! The `pier` binary: a thin clap layer over the pier crates.

mod serve;

use clap::{Parser, Subcommand};

/// pier: multi-architecture images and a private registry to serve them.
#[derive(Parser)]
#[command(name = "pier", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (OCI Distribution v1.1) on a local data directory.
    Serve(serve::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
    }
}
