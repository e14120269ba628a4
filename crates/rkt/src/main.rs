//! `rkt`: the command line. It parses rkt 1.30's arguments, calls the libraries, and prints
//! rkt's output formats; nothing else lives here.
//!
//! Exit status: 0 on success, 254 for rkt's own errors (bad flags included), as rkt did.

mod commands;
mod flags;
mod output;
mod progress;

use clap::{Parser, Subcommand};
use flags::GlobalArgs;

#[derive(Parser)]
#[command(name = "rkt", about = "rkt, the application container runner", version = None)]
#[command(disable_version_flag = true, propagate_version = false)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit
    Version,
    /// Fetch image(s) and store them in the local store
    Fetch(commands::fetch::FetchArgs),
    /// Operate on image(s) in the local store
    Image {
        #[command(subcommand)]
        command: commands::image::ImageCommand,
    },
}

/// rkt's exit status for its own failures.
pub const EXIT_ERROR: i32 = 254;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | clap::error::ErrorKind::DisplayVersion => 0,
                _ => EXIT_ERROR,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let (name, result) = match cli.command {
        Command::Version => ("version", commands::version::run()),
        Command::Fetch(args) => ("fetch", commands::fetch::run(&cli.global, args)),
        Command::Image { command } => ("image", commands::image::run(&cli.global, command)),
    };
    if let Err(e) = result {
        eprintln!("{name}: {}", output::error_chain(&e));
        std::process::exit(EXIT_ERROR);
    }
}
