//! `claude-lsp`: the language server (default), plus `run` (headless) and `doctor`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use claude_lsp::base::logging::LogLevel;
use claude_lsp::headless::doctor::DoctorArgs;
use claude_lsp::headless::run::RunArgs;
use claude_lsp::lsp_server::server::{ServerOptions, serve};

#[derive(Parser)]
#[command(
    name = "claude-lsp",
    version,
    about = "The Claude Code agent behind the Language Server Protocol"
)]
struct Cli {
    /// Speak LSP over stdin/stdout (the default; accepted for editors that pass it).
    #[arg(long, global = false)]
    stdio: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve LSP over stdin/stdout (same as no subcommand).
    Serve,
    /// Run one action without an editor: progress on stderr, the result on stdout.
    ///
    /// Exit codes: 0 success, 1 the run failed, 2 bad arguments or target, 3 Claude Code is
    /// missing, unsupported or not logged in, 4 the edits could not be applied, 130 interrupted.
    Run(RunArgs),
    /// Check the installation: the Claude Code CLI, its version, authentication, git, the
    /// sandbox for the agent's commands, the cache directory (`--smoke`: also one real turn).
    /// Exit code 1 when a check fails.
    Doctor(DoctorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = claude_lsp::base::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let _ = cli.stdio;
    match cli.command {
        None | Some(Command::Serve) => {
            let options = ServerOptions { log, ..ServerOptions::default() };
            let ending = runtime.block_on(serve(tokio::io::stdin(), tokio::io::stdout(), options));
            ExitCode::from(ending.exit_code())
        }
        // On the command line, stderr carries progress: only warnings and errors are logged
        // there (unless CLAUDE_LSP_LOG says otherwise).
        Some(Command::Run(args)) => {
            quiet(log.as_ref());
            ExitCode::from(runtime.block_on(claude_lsp::headless::run::main(args)))
        }
        Some(Command::Doctor(args)) => {
            quiet(log.as_ref());
            ExitCode::from(runtime.block_on(claude_lsp::headless::doctor::main(args)))
        }
    }
}

fn quiet(log: Option<&claude_lsp::base::logging::LogControl>) {
    if let Some(log) = log
        && let Err(err) = log.apply(LogLevel::Warn, None)
    {
        tracing::warn!(%err, "logging settings");
    }
}
