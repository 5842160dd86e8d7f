//! The `ustack` command.

mod cli;
mod cmd;
mod global;
mod observe;

use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = cli::Cli::parse();
    // Before any device is opened or any thread spawned: every thread started later
    // (the signal thread, the stack's driver, the workers) inherits the namespace.
    if let Some(name) = &cli.global.netns {
        if let Err(e) = ustack_socket::netns::enter(name) {
            eprintln!("ustack: {e}");
            std::process::exit(1);
        }
    }
    let result = match cli.command {
        cli::Command::Up => cmd::up::run(&cli.global),
        cli::Command::Demo => cmd::demo::run(&cli.global),
        cli::Command::Dump(args) => cmd::dump::run(&args),
        cli::Command::Plot(args) => cmd::plot::run(&args),
        cli::Command::Stats(args) => cmd::stats::run(&args),
        cli::Command::Echo(args) => cmd::echo::run(&cli.global, &args),
        cli::Command::Http(args) => cmd::http::run(&cli.global, &args),
        cli::Command::Nc(args) => cmd::nc::run(&cli.global, &args),
        cli::Command::Send(args) => cmd::xfer::send(&cli.global, &args),
        cli::Command::Recv(args) => cmd::xfer::recv(&cli.global, &args),
        cli::Command::Ping(args) => cmd::ping::run(&cli.global, &args),
        cli::Command::Dns(args) => cmd::dns::run(&cli.global, &args),
        cli::Command::Wire(args) => cmd::wire::run(&cli.global, &args),
        cli::Command::Run(args) => cmd::run::run(&cli.global, &args),
        cli::Command::Bench(args) => cmd::bench::run(&args),
        cli::Command::BenchServe(args) => cmd::bench::serve::run(&cli.global, &args),
        cli::Command::BenchInmem(args) => cmd::bench::inmem::run(&args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ustack: {e}");
            std::process::exit(1);
        }
    }
}
