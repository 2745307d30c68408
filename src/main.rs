//! `claude-lsp`: the language server (default), plus `run` (headless) and `doctor`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use claude_lsp::server::{ServerOptions, serve};

#[derive(Parser)]
#[command(name = "claude-lsp", version, about = "The Claude Code agent behind the Language Server Protocol")]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = claude_lsp::logging::init();
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
            runtime.block_on(serve(tokio::io::stdin(), tokio::io::stdout(), options));
            ExitCode::SUCCESS
        }
    }
}
