use clap::{Parser, Subcommand};
use std::process::ExitCode;
use temblor::cli;

/// temblor: an ahead-of-time graph compiler for vision and detection models.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compile a model into a package with its parse/optimize/compile views and a report.
    Compile(cli::CompileArgs),
    /// Run a package or a model on .npy inputs with the CPU runtime.
    Run(cli::RunArgs),
    /// Time a package or a model on the CPU runtime: latency percentiles, throughput, peak memory.
    Bench(cli::BenchArgs),
    /// Print a model's inputs, outputs, op counts and parameter count.
    Inspect(cli::InspectArgs),
    /// Run the ONNX backend node test suite (or any directory of such cases) and print a
    /// per-op table of passed, failed and unsupported cases.
    Conformance(cli::ConformanceArgs),
    /// Turn a PNG image into a normalized [1, 3, H, W] float32 .npy input.
    Preprocess(cli::PreprocessArgs),
}

fn main() -> ExitCode {
    // A panic is a temblor bug; still answer with the CLI's error contract, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error (a bug in temblor): {info}");
    }));
    let cli = Cli::parse();
    let result = std::panic::catch_unwind(|| match &cli.command {
        Command::Compile(a) => cli::compile(a),
        Command::Run(a) => cli::run(a),
        Command::Bench(a) => cli::bench(a),
        Command::Inspect(a) => cli::inspect(a),
        Command::Preprocess(a) => cli::preprocess(a),
        Command::Conformance(a) => cli::conformance(a),
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
        Err(_) => ExitCode::from(1),
    }
}
