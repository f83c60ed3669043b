use std::process::ExitCode;

use clap::Parser;
use zeek_operator::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Crd) => zeek_crds::crd_yaml().map(|yaml| print!("{yaml}")).map_err(|e| e.to_string()),
        None => zeek_operator::app::run(cli.run).await.map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zeek-operator: {error}");
            ExitCode::FAILURE
        }
    }
}
