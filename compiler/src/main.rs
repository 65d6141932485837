//! The `temblor` binary: a thin clap layer over [`cli`], one module per command.

#![forbid(unsafe_code)]

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// COCO AP of a detector over a directory of images, against COCO ground truth or another
    /// model's detections (agreement).
    Eval(cli::EvalArgs),
    /// Time every layer of a package or a model on the CPU runtime: per op type, the slowest
    /// layers, and per stage (preprocess, backbone, neck, head, postprocess).
    Profile(cli::ProfileArgs),
    /// Write a package's graph as ONNX: compile.onnx (TensorRT build input, plugin nodes) and
    /// compile.ort.onnx (standard ops, for onnxruntime), weights as external data.
    Export(cli::ExportArgs),
    /// Compare two graphs of one model layer by layer (two stages, or two precision plans),
    /// matching values through provenance; exit 1 when a layer exceeds the tolerance.
    Compare(cli::CompareArgs),
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
        Command::Eval(a) => cli::eval(a),
        Command::Profile(a) => cli::profile(a),
        Command::Conformance(a) => cli::conformance(a),
        Command::Export(a) => cli::export(a),
        Command::Compare(a) => cli::compare(a),
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
