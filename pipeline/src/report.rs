//! `report.json`: what the compiler did to a model, stage by stage and pass by pass.

use crate::{Compiled, Timings};
use serde::Serialize;
use std::collections::BTreeMap;
use temblor_ir::Graph;
use temblor_passes::PassRecord;
use temblor_precision::{LayerError, Summary};
use temblor_tools::measure::{Measurement, PassEffect};
use temblor_tools::profile::Profile;
use temblor_tools::verify::Verification;

#[derive(Serialize)]
pub struct Report<'a> {
    pub temblor_version: &'static str,
    pub model: String,
    /// The software and machine the compile ran (and was measured) on.
    pub context: Context,
    pub inputs: Vec<ValueDoc>,
    pub outputs: Vec<ValueDoc>,
    pub views: BTreeMap<&'static str, ViewStats>,
    pub passes: &'a [PassRecord],
    /// Per pass that ran: its status, the layers it removed and added, and its latency effect.
    pub optimizations: &'a [PassEffect],
    /// The parsed and compiled graphs' latencies and the speedup, or why they were not measured.
    pub measurement: &'a Measurement,
    /// Where the compiled graph's time goes, per op type and stage (when measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<&'a Profile>,
    pub timings: &'a Timings,
    /// The check of the optimized graph against the parsed one (absent with --no-verify).
    pub verification: Option<&'a Verification>,
    /// The precision plan and its accuracy.
    pub precision: &'a Summary,
    /// The error each layer of the chosen precision plan adds (absent for fp32 or unmeasured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_layer_error: Option<&'a [LayerError]>,
    /// The compiled graph's static memory plan (absent when some size is dynamic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

/// What a run of the compiled graph holds at once, besides its inputs and weights.
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    /// The arena every computed value gets an offset in: the plan's memory peak.
    pub arena_bytes: usize,
    /// The most bytes alive at one step: no plan needs less.
    pub widest_cut_bytes: usize,
    /// Every computed value's bytes summed: what a run without reuse would hold.
    pub values_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Context {
    pub software: Software,
    pub hardware: Hardware,
    /// Threads of the CPU runtime in the measurements.
    pub threads: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Software {
    pub temblor: &'static str,
    /// The compiler that built temblor, where the build recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rustc: Option<&'static str>,
    /// The distribution's name (`/etc/os-release`), or the OS family.
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    pub arch: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Hardware {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Logical CPUs of the machine (`/proc/cpuinfo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_cpus: Option<usize>,
    /// CPUs this process may use (affinity and cgroup limits applied).
    pub available_cpus: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// The instruction set the CPU runtime's kernels use here (`avx512f`, `avx2+fma`, `scalar`):
    /// the same model runs different kernels, at different speeds, on another machine.
    pub isa: &'static str,
    /// The extensions beyond `isa` whose kernels run here (`avx512vnni` for int8 layers,
    /// `avx512bf16` and `amx-bf16` for bf16 ones); absent where there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub isa_extensions: Vec<&'static str>,
}

/// The machine as Linux describes it; fields another OS does not provide are left out.
pub fn context(threads: usize) -> Context {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |line: &str, key: &str| {
        line.split_once(':')
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    let cpu = cpuinfo.lines().find_map(|l| field(l, "model name"));
    let logical = cpuinfo
        .lines()
        .filter(|l| field(l, "processor").is_some())
        .count();
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| field(l, "MemTotal")))
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|r| {
            r.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    Context {
        software: Software {
            temblor: env!("CARGO_PKG_VERSION"),
            rustc: option_env!("TEMBLOR_RUSTC_VERSION"),
            os,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|k| k.trim().to_string()),
            arch: std::env::consts::ARCH,
        },
        hardware: Hardware {
            cpu,
            logical_cpus: (logical > 0).then_some(logical),
            available_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            isa: temblor_runtime::Device::Cpu.isa(),
            isa_extensions: temblor_runtime::Device::Cpu.isa_extensions(),
        },
        threads,
    }
}

#[derive(Serialize)]
pub struct ValueDoc {
    pub name: String,
    pub dtype: String,
    pub shape: String,
}

#[derive(Serialize)]
pub struct ViewStats {
    pub layers: usize,
    pub nodes: usize,
    pub op_counts: BTreeMap<String, usize>,
}

fn stats(g: &Graph) -> ViewStats {
    ViewStats {
        layers: g.layer_count(),
        nodes: g.node_count(),
        op_counts: g.op_counts().into_iter().collect(),
    }
}

pub fn inputs(g: &Graph) -> Vec<ValueDoc> {
    g.inputs
        .iter()
        .map(|&id| {
            let info = &g.node(id).outputs[0];
            ValueDoc {
                name: info.name.clone(),
                dtype: info.ty.dtype.to_string(),
                shape: info.ty.shape.to_string(),
            }
        })
        .collect()
}

pub fn outputs(g: &Graph) -> Vec<ValueDoc> {
    g.outputs
        .iter()
        .map(|o| {
            let ty = g.value_type(o.value);
            ValueDoc {
                name: o.name.clone(),
                dtype: ty.dtype.to_string(),
                shape: ty.shape.to_string(),
            }
        })
        .collect()
}

pub fn build<'a>(model: &str, c: &'a Compiled) -> Report<'a> {
    Report {
        temblor_version: env!("CARGO_PKG_VERSION"),
        model: model.to_string(),
        context: context(c.measured.measurement.threads),
        inputs: inputs(&c.parse),
        outputs: outputs(&c.compile),
        views: BTreeMap::from([
            ("parse", stats(&c.parse)),
            ("optimize", stats(&c.optimize)),
            ("compile", stats(&c.compile)),
        ]),
        passes: &c.passes,
        optimizations: &c.measured.optimizations,
        measurement: &c.measured.measurement,
        profile: c.measured.profile.as_ref(),
        timings: &c.timings,
        verification: c.verification.as_ref(),
        precision: &c.precision,
        per_layer_error: Some(&c.per_layer_error[..]).filter(|e| !e.is_empty()),
        memory: temblor_runtime::plan_memory(&c.compile).map(|m| Memory {
            arena_bytes: m.arena_bytes,
            widest_cut_bytes: m.widest_cut_bytes,
            values_bytes: m.values_bytes,
        }),
    }
}
