use apiserver::{Cli, ServerConfig};
use clap::Parser;

fn main() {
    let cli = Cli::parse();
    env_logger::Builder::new()
        .filter_level(cli.log_level)
        .format_timestamp(None)
        .init();
    if let Err(e) = ServerConfig::load(&cli).and_then(|config| apiserver::run(&config)) {
        eprintln!("apiserver: {e}");
        std::process::exit(1);
    }
}
