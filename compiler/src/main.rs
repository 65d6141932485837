//! The `temblor` binary: a thin clap layer over [`cli`] (the crate's library), one module per
//! command.

// Two unsafe calls, in `end_quietly_on_closed_pipe` and `cuda_driver_present`; everything else
// is safe code.
#![deny(unsafe_code)]

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use temblor::cli;
use temblor_ir::limits::{self, Limits};

/// temblor: an ahead-of-time graph compiler for vision and detection models.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Load packages without checking the BLAKE3 hashes package.json records of itself and of
    /// weights.bin (for a package edited on purpose).
    #[arg(long, global = true)]
    no_verify_hashes: bool,
    /// Refuse a model with a value larger than this many bytes (K, M, G, T suffixes; default
    /// 16G, or TEMBLOR_MAX_VALUE_BYTES).
    #[arg(long, global = true, value_name = "BYTES", value_parser = limits::parse_count)]
    max_value_bytes: Option<u64>,
    /// Refuse a model whose run would hold more than this many bytes of values at once
    /// (default 48G, or TEMBLOR_MAX_PEAK_BYTES).
    #[arg(long, global = true, value_name = "BYTES", value_parser = limits::parse_count)]
    max_peak_bytes: Option<u64>,
    /// Refuse a Loop of more iterations (default 16M, or TEMBLOR_MAX_LOOP_ITERATIONS).
    #[arg(long, global = true, value_name = "N", value_parser = limits::parse_count)]
    max_loop_iterations: Option<u64>,
}

impl Cli {
    /// The process's limits: the flags, else the environment, else the defaults.
    fn limits(&self) -> Result<Limits, String> {
        let env = Limits::from_env()?;
        Ok(Limits {
            value_bytes: self.max_value_bytes.unwrap_or(env.value_bytes),
            peak_bytes: self.max_peak_bytes.unwrap_or(env.peak_bytes),
            loop_iterations: self.max_loop_iterations.unwrap_or(env.loop_iterations),
        })
    }
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
    /// Turn a JPEG or PNG image into a normalized [1, 3, H, W] float32 .npy input.
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
    /// Check an ONNX file (or a package's compile.onnx) against TensorRT's ONNX parser rules:
    /// each finding names the node and the rule; exit 1 when a rule is broken.
    CheckTrt(cli::CheckTrtArgs),
    /// Compare two graphs of one model layer by layer (two stages, or two precision plans),
    /// matching values through provenance; exit 1 when a layer exceeds the tolerance.
    Compare(cli::CompareArgs),
    /// Read the text of a photo: DBNet text detection, optional direction classification, CTC
    /// recognition, printed one line per region in reading order.
    Ocr(cli::OcrArgs),
}

impl Command {
    /// The `--device` of the commands that can run on a GPU.
    fn device(&self) -> Option<cli::DeviceArg> {
        match self {
            Command::Run(a) => Some(a.device),
            Command::Bench(a) => Some(a.device),
            Command::Profile(a) => Some(a.device),
            Command::Eval(a) => Some(a.device),
            Command::Preprocess(a) => Some(a.device),
            _ => None,
        }
    }
}

/// Whether the CUDA driver library loads: what `--device cuda` checks before anything else
/// CUDA-related, since cudarc panics when the driver is missing. Here, in the binary, because
/// loading a library is unsafe and the CLI's library crate forbids unsafe code.
#[cfg(unix)]
#[allow(unsafe_code)]
fn cuda_driver_present() -> bool {
    // SAFETY: the name is a constant NUL-terminated string. Loading runs the driver's
    // initializers, which expect exactly this (every CUDA program dlopens libcuda.so.1), and no
    // symbol is used. The handle stays open: the process exits right after.
    let handle =
        unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    !handle.is_null()
}

#[cfg(not(unix))]
fn cuda_driver_present() -> bool {
    false
}

/// Lets the kernel end the process when the reader of its output goes away
/// (`temblor inspect m.onnx | head -1`), as a C program and most Rust CLIs (ripgrep, fd) do.
///
/// Rust ignores SIGPIPE before `main`, so a write to a closed pipe fails with EPIPE and
/// `println!` panics ("failed printing to stdout: Broken pipe"). Restoring the default
/// disposition fixes every print of every command at once; the alternative, a stdout wrapper
/// that turns EPIPE into a quiet exit, would have to replace each `println!` and would miss
/// any that a later command adds. temblor writes to no other pipe or socket (it spawns no
/// child processes), so the signal can only come from a closed stdout or stderr.
#[cfg(unix)]
#[allow(unsafe_code)]
fn end_quietly_on_closed_pipe() {
    // SAFETY: `signal` with SIG_DFL installs no handler code; it runs first in `main`, before
    // any other thread exists that could be changing signal dispositions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    #[cfg(unix)]
    end_quietly_on_closed_pipe();
    // A panic is a temblor bug; still answer with the CLI's error contract, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error (a bug in temblor): {info}");
    }));
    let cli = Cli::parse();
    match cli.limits() {
        Ok(l) => {
            l.install();
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    temblor_ir::package::set_verify_hashes(!cli.no_verify_hashes);
    if cli.command.device() == Some(cli::DeviceArg::Cuda) && !cuda_driver_present() {
        let e = temblor_ir::Error::usage(cli::device::NO_DRIVER);
        eprintln!("error: {e}");
        return ExitCode::from(e.exit_code() as u8);
    }
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
        Command::CheckTrt(a) => cli::check_trt(a),
        Command::Compare(a) => cli::compare(a),
        Command::Ocr(a) => cli::ocr(a),
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
