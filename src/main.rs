//! The `timesheets` binary: parse the command line, set up logs, run.

use anyhow::Context;
use clap::Parser;
use timesheets::{
    App,
    config::{Cli, Command},
    dev, telemetry,
};

/// Every request allocates a few dozen small, short-lived objects across the
/// runtime's threads; mimalloc's thread-local free lists serve that pattern
/// with a fraction of glibc malloc's CPU (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Serve(config) => {
            let app = App::build(config).await?;
            if let Some(banner) = app.dev_banner() {
                println!("{banner}");
            }
            app.run_until(shutdown_signal()).await
        }
        Command::Token(args) => {
            println!("{}", dev::mint_token(&args).context("minting a dev token")?);
            Ok(())
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
}
