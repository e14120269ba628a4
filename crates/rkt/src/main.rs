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
    /// Trust a key for image verification
    Trust(commands::trust::TrustArgs),
    /// Operate on image(s) in the local store
    Image {
        #[command(subcommand)]
        command: commands::image::ImageCommand,
    },
    /// Run image(s) in a pod: [pod flags] IMAGE [app flags] [-- args] [--- IMAGE …]
    #[command(after_long_help = rkt::grammar::help())]
    Run {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Prepare a pod to run later with run-prepared; prints its UUID
    #[command(after_long_help = rkt::grammar::help())]
    Prepare {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Run a prepared pod
    RunPrepared {
        #[command(flatten)]
        runtime: commands::run::RuntimeArgs,
        uuid: String,
    },
    /// Check the status of a pod
    Status(commands::pods::StatusArgs),
    /// List pods
    List(commands::pods::ListArgs),
    /// Stop running pods
    Stop {
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
        force: bool,
        #[arg(long = "uuid-file")]
        uuid_file: Option<std::path::PathBuf>,
        uuids: Vec<String>,
    },
    /// Remove pods and free their resources
    Rm {
        #[arg(long = "uuid-file")]
        uuid_file: Option<std::path::PathBuf>,
        uuids: Vec<String>,
    },
    /// Garbage collect exited pods
    Gc {
        #[arg(long = "grace-period", default_value = "30m0s", value_parser = flags::parse_duration)]
        grace_period: std::time::Duration,
        #[arg(long = "expire-prepared", default_value = "24h0m0s", value_parser = flags::parse_duration)]
        expire_prepared: std::time::Duration,
        #[arg(long = "mark-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "false")]
        mark_only: bool,
    },
    /// Run a command in a running pod, confined like its app
    Enter {
        /// The app to enter (required when the pod has several)
        #[arg(long)]
        app: Option<String>,
        uuid: String,
        /// The command and its arguments (default /bin/bash)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Export an app from an exited pod to an ACI file
    Export(commands::export::ExportArgs),
    /// Print configuration for each stage in JSON format
    Config {
        /// Apply indent to format the output
        #[arg(long = "pretty-print", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "true")]
        pretty_print: bool,
    },
    /// Output shell completion code for the specified shell (bash or zsh)
    Completion {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Run API service (read-only, gRPC): lists and inspects pods and images
    ApiService {
        /// Address to listen for client API requests
        #[arg(long, default_value = commands::api_service::DEFAULT_LISTEN)]
        listen: String,
    },
    /// Run metadata service: apps of pods run with --mds-register introspect their pod and
    /// assert its identity
    MetadataService {
        /// Listen port
        #[arg(long = "listen-port", default_value_t = layout::MDS_PORT)]
        listen_port: u16,
    },
    /// Print a pod's manifest
    CatManifest {
        #[arg(long = "pretty-print", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = flags::parse_bool, default_value = "true")]
        pretty_print: bool,
        #[arg(long = "uuid-file")]
        uuid_file: Option<std::path::PathBuf>,
        uuid: Option<String>,
    },
    /// Undo a pod's network (run by the pod's supervisor when the pod exits)
    #[command(hide = true, name = "net-teardown")]
    NetTeardown { pod_dir: std::path::PathBuf },
}

/// The shells `rkt completion` writes for, as rkt 1.30 did.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
}

/// Completion code generated from this command line's own definitions.
fn completion(shell: CompletionShell) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
    };
    clap_complete::generate(shell, &mut Cli::command(), "rkt", &mut std::io::stdout());
    Ok(())
}

/// rkt's exit status for its own failures.
pub const EXIT_ERROR: i32 = 254;

fn main() {
    // Output piped into `head` and the like ends when the reader goes, quietly, as it did
    // for rkt (Go programs die of SIGPIPE on stdout); Rust ignores SIGPIPE and would panic.
    // SAFETY: setting a signal's disposition to its default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
        Command::Trust(args) => ("trust", commands::trust::run(&cli.global, args)),
        Command::Image { command } => ("image", commands::image::run(&cli.global, command)),
        Command::Run { args } => ("run", commands::run::run(&cli.global, &args)),
        Command::Prepare { args } => ("prepare", commands::run::prepare(&cli.global, &args)),
        Command::RunPrepared { runtime, uuid } => (
            "run-prepared",
            commands::run::run_prepared(&cli.global, &uuid, &runtime),
        ),
        Command::NetTeardown { pod_dir } => {
            ("net-teardown", commands::pods::net_teardown(&pod_dir))
        }
        Command::Status(a) => ("status", commands::pods::status(&cli.global, &a)),
        Command::List(a) => ("list", commands::pods::list(&cli.global, &a)),
        Command::Stop {
            force,
            uuid_file,
            uuids,
        } => (
            "stop",
            commands::pods::stop(&cli.global, force, uuid_file.as_deref(), &uuids),
        ),
        Command::Rm { uuid_file, uuids } => (
            "rm",
            commands::pods::rm(&cli.global, uuid_file.as_deref(), &uuids),
        ),
        Command::Gc {
            grace_period,
            expire_prepared,
            mark_only,
        } => (
            "gc",
            commands::pods::gc(&cli.global, grace_period, expire_prepared, mark_only),
        ),
        Command::Enter { app, uuid, command } => (
            "enter",
            commands::pods::enter(&cli.global, app.as_deref(), &uuid, &command),
        ),
        Command::Export(a) => ("export", commands::export::run(&cli.global, &a)),
        Command::Config { pretty_print } => {
            ("config", commands::config::run(&cli.global, pretty_print))
        }
        Command::Completion { shell } => ("completion", completion(shell)),
        Command::MetadataService { listen_port } => (
            "metadata-service",
            commands::metadata_service::run(listen_port),
        ),
        Command::ApiService { listen } => (
            "api-service",
            commands::api_service::run(&cli.global, &listen),
        ),
        Command::CatManifest {
            pretty_print,
            uuid_file,
            uuid,
        } => (
            "cat-manifest",
            commands::pods::cat_manifest(
                &cli.global,
                pretty_print,
                uuid_file.as_deref(),
                uuid.as_deref(),
            ),
        ),
    };
    if let Err(e) = result {
        eprintln!("{name}: {}", output::error_chain(&e));
        std::process::exit(EXIT_ERROR);
    }
}
