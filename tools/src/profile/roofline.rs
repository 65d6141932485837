//! How close each layer runs to what the machine allows (the roofline model): a layer can go no
//! faster than its FLOPs at the machine's peak compute rate, nor than its bytes at the peak
//! memory bandwidth, so its bound is the larger of the two times and its efficiency is that
//! bound over the time it took. 100% means nothing is left to gain in the kernel; a layer far
//! below is the next target.
//!
//! The peaks are measured on the same threads the profile runs, rather than taken from a data
//! sheet: the compute peak is the best rate of independent fused multiply-adds on the widest
//! vector unit the CPU kernels use ([`temblor_runtime::fma_peak_gflops`]; no kernel can beat
//! it), the bandwidth peak the best rate of an Add of tensors far larger than the caches.

use serde::Serialize;
use std::time::{Duration, Instant};
use temblor_ir::{
    cost, DType, Error, Graph, GraphOutput, Node, NodeId, Op, Result, Shape, TensorInfo,
    TensorType, ValueRef, Weight,
};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};

/// Three tensors of this many f32 elements (96 MiB) dwarf any cache.
const STREAM_ELEMENTS: usize = 8 << 20;
const RUNS: usize = 5;

/// The machine's limits as measured.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Peak {
    pub gflops_per_s: f64,
    pub gbytes_per_s: f64,
}

/// Where one layer stands against the peaks.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Efficiency {
    pub flops: f64,
    pub bytes: f64,
    pub gflops_per_s: f64,
    pub gbytes_per_s: f64,
    /// The time the roofline allows over the time taken (0 when nothing was measured).
    pub of_roofline: f64,
    /// Whether the layer's bound is compute (its FLOPs at peak take longer than its bytes).
    pub compute_bound: bool,
}

impl Peak {
    /// Measures the FMA peak, and times the reference Add `RUNS` times on `threads` threads
    /// and keeps its best rate.
    pub fn measure(threads: usize) -> Result<Peak> {
        let gflops_per_s = temblor_runtime::fma_peak_gflops(threads).map_err(Error::from)?;
        let stream = best_time(add_graph(), threads)?;
        let stream_bytes = 3.0 * 4.0 * STREAM_ELEMENTS as f64;
        Ok(Peak {
            gflops_per_s,
            gbytes_per_s: stream_bytes / stream.as_secs_f64() / 1e9,
        })
    }

    /// Layer `id` of `g`, which took `ms` per run.
    pub fn place(&self, g: &Graph, id: NodeId, ms: f64) -> Efficiency {
        let (flops, bytes) = (cost::flops(g, id), cost::bytes(g, id));
        let seconds = ms / 1e3;
        if seconds <= 0.0 {
            return Efficiency {
                flops,
                bytes,
                ..Efficiency::default()
            };
        }
        let compute = flops / (self.gflops_per_s * 1e9);
        let memory = bytes / (self.gbytes_per_s * 1e9);
        Efficiency {
            flops,
            bytes,
            gflops_per_s: flops / seconds / 1e9,
            gbytes_per_s: bytes / seconds / 1e9,
            of_roofline: compute.max(memory) / seconds,
            compute_bound: compute >= memory,
        }
    }
}

fn best_time((g, inputs): (Graph, Vec<(String, Tensor)>), threads: usize) -> Result<Duration> {
    let options = PrepareOptions {
        threads,
        spin: true,
        ..PrepareOptions::default()
    };
    let plan = prepare(&g, &Device::Cpu, &options).map_err(Error::from)?;
    let mut state = plan.new_state();
    plan.run(&mut state, &inputs).map_err(Error::from)?;
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = plan.run(&mut state, &inputs).map_err(Error::from)?;
        best = best.min(start.elapsed());
        drop(out);
    }
    Ok(best)
}

fn add_graph() -> (Graph, Vec<(String, Tensor)>) {
    let add = Op::Binary(temblor_ir::BinaryOp::Add);
    binary_graph("roofline_stream", add, &[STREAM_ELEMENTS])
}

/// `op` of two f32 inputs of extents `dims`, filled with small values. The graph outputs one
/// element of the result, so that the result lives in the plan's reused arena: a graph output is
/// fresh memory on every run, and its page faults would be timed as well.
fn binary_graph(name: &str, op: Op, dims: &[usize]) -> (Graph, Vec<(String, Tensor)>) {
    let ty = TensorType::new(DType::F32, Shape::from_known(dims));
    let mut g = Graph::new(name);
    let mut inputs = Vec::new();
    let mut values = Vec::new();
    for (index, input) in ["a", "b"].into_iter().enumerate() {
        let id = g.add_node(Node::new(
            input,
            Op::Input { index },
            vec![info(input, ty.clone())],
        ));
        g.inputs.push(id);
        values.push(ValueRef::new(id, 0));
        let n = dims.iter().product::<usize>();
        let data = (0..n).map(|i| (i % 7) as f32 * 0.125).collect();
        inputs.push((input.to_string(), Tensor::f32(dims.to_vec(), data)));
    }
    let out = g.add_node(Node::new("y", op, vec![info("y", ty)]));
    for (port, v) in values.into_iter().enumerate() {
        g.connect(v, out, port);
    }
    let first = g.add_node(Node::new(
        "first",
        Op::Slice,
        vec![info(
            "first",
            TensorType::new(DType::F32, Shape::from_known(&[1])),
        )],
    ));
    g.connect(ValueRef::new(out, 0), first, 0);
    for (port, v) in [(1, 0), (2, 1)] {
        let w = g.weights.add(Weight::from_i64(vec![1], &[v]));
        let c = g.add_node(Node::new(
            format!("bound{port}"),
            Op::Constant { weight: w },
            vec![info(
                &format!("bound{port}"),
                TensorType::new(DType::I64, Shape::from_known(&[1])),
            )],
        ));
        g.connect(ValueRef::new(c, 0), first, port);
    }
    g.outputs.push(GraphOutput {
        name: "out".into(),
        value: ValueRef::new(first, 0),
    });
    (g, inputs)
}

fn info(name: &str, ty: TensorType) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        ty,
    }
}
