//! `exhibit`: the exhibit client.

use clap::Parser;

/// How long the closing packets of a finished command get to leave.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = exhibit_client::cli::Cli::parse();
    let json = cli.json;
    let result = cli.run().await;
    // Connections closed by the command are told to the server by tasks of
    // this runtime: give them a moment before it goes, or the server keeps
    // each connection (and what it counts against, such as a place for an
    // enrolling stranger) until its idle timeout.
    tokio::time::sleep(CLOSE_GRACE).await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // Under --json the error is JSON too, on stdout where the script
        // reads; the words still go to stderr for a person watching.
        Err(e) => {
            eprintln!("error: {}", exhibit_proto::text::escape_lines(&e.to_string()));
            if json {
                let _ = exhibit_client::cli::print::json(&e.to_json());
            }
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
