use clap::Parser;
use firstreply::cli::{init_tracing, run, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    run(cli).await
}
