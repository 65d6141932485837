//! How close each layer runs to what the machine allows (the roofline model): a layer can go no
//! faster than its FLOPs at the machine's peak compute rate, nor than its bytes at the peak
//! memory bandwidth, so its bound is the larger of the two times and its efficiency is that
//! bound over the time it took. 100% means nothing is left to gain in the kernel; a layer far
//! below is the next target.
//!
//! The peaks are measured on the same threads the profile runs, rather than taken from a data
//! sheet: on the CPU, the compute peak is the best rate of independent fused multiply-adds on
//! the widest vector unit the CPU kernels use ([`temblor_runtime::fma_peak_gflops`]; no kernel
//! can beat it), the bandwidth peak the best rate of an Add of tensors far larger than the
//! caches. On a GPU, both are what the backend itself reaches on the device: a large MatMul
//! (cuBLAS) and the same Add, their operands constants already on the device and their inputs
//! a single scalar, so the copies of a run do not count.

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
/// The extent of the GPU's square MatMul: 17 GFLOP, milliseconds on any current GPU.
const GPU_MATMUL: usize = 2048;

/// The machine's limits as measured.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Peak {
    pub gflops_per_s: f64,
    pub gbytes_per_s: f64,
    /// What the compute peak is the rate of.
    pub compute: &'static str,
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
    /// Measures the peaks of `device`: on the CPU the FMA peak, and the reference Add timed
    /// `RUNS` times on `threads` threads, its best rate kept; on a GPU a MatMul and the Add.
    pub fn measure(threads: usize, device: &Device) -> Result<Peak> {
        match device {
            Device::Cpu => {
                let gflops_per_s =
                    temblor_runtime::fma_peak_gflops(threads).map_err(Error::from)?;
                let stream = best_time(add_graph(), threads, device)?;
                let stream_bytes = 3.0 * 4.0 * STREAM_ELEMENTS as f64;
                Ok(Peak {
                    gflops_per_s,
                    gbytes_per_s: stream_bytes / stream.as_secs_f64() / 1e9,
                    compute: "FMA",
                })
            }
            Device::Cuda { .. } => {
                let n = GPU_MATMUL as f64;
                let matmul =
                    best_time(on_device(Op::MatMul, &[GPU_MATMUL, GPU_MATMUL]), 1, device)?;
                let add = Op::Binary(temblor_ir::BinaryOp::Add);
                let stream = best_time(on_device(add, &[STREAM_ELEMENTS]), 1, device)?;
                // The scalar Add that makes the first operand an input of the run reads and
                // writes it once: 2 tensors; the Add measured, 3.
                let stream_bytes = 5.0 * 4.0 * STREAM_ELEMENTS as f64;
                Ok(Peak {
                    gflops_per_s: 2.0 * n * n * n / matmul.as_secs_f64() / 1e9,
                    gbytes_per_s: stream_bytes / stream.as_secs_f64() / 1e9,
                    compute: "f32 MatMul",
                })
            }
        }
    }

    /// Layers `ids` of `g` run as one step (a layer and the ones fused into it), which took
    /// `ms` per run.
    pub fn place(&self, g: &Graph, ids: &[NodeId], ms: f64) -> Efficiency {
        let flops = ids.iter().map(|&id| cost::flops(g, id)).sum::<f64>();
        let bytes = ids.iter().map(|&id| cost::bytes(g, id)).sum::<f64>();
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

fn best_time(
    (g, inputs): (Graph, Vec<(String, Tensor)>),
    threads: usize,
    device: &Device,
) -> Result<Duration> {
    let options = PrepareOptions {
        threads,
        spin: true,
        ..PrepareOptions::default()
    };
    let plan = prepare(&g, device, &options).map_err(Error::from)?;
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
    output_first_row(&mut g, ValueRef::new(out, 0), dims);
    (g, inputs)
}

/// `op` of `Add(a, s)` and `b` for the GPU: `a` and `b` constants of extents `dims` (uploaded
/// once per plan), `s` the run's only input, a scalar; the output the first row of the result.
fn on_device(op: Op, dims: &[usize]) -> (Graph, Vec<(String, Tensor)>) {
    let ty = TensorType::new(DType::F32, Shape::from_known(dims));
    let n = dims.iter().product::<usize>();
    let values: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.125).collect();
    let mut g = Graph::new("roofline_device");
    let scalar = TensorType::new(DType::F32, Shape::from_known(&[1]));
    let s = g.add_node(Node::new(
        "s",
        Op::Input { index: 0 },
        vec![info("s", scalar)],
    ));
    g.inputs.push(s);
    let mut constant = |name: &str| {
        let w = g.weights.add(Weight::from_f32(dims.to_vec(), &values));
        let id = g.add_node(Node::new(
            name,
            Op::Constant { weight: w },
            vec![info(name, ty.clone())],
        ));
        ValueRef::new(id, 0)
    };
    let (a, b) = (constant("a"), constant("b"));
    let add = Op::Binary(temblor_ir::BinaryOp::Add);
    let shifted = g.add_node(Node::new("shifted", add, vec![info("shifted", ty.clone())]));
    g.connect(a, shifted, 0);
    g.connect(ValueRef::new(s, 0), shifted, 1);
    let out = g.add_node(Node::new("y", op, vec![info("y", ty)]));
    g.connect(ValueRef::new(shifted, 0), out, 0);
    g.connect(b, out, 1);
    output_first_row(&mut g, ValueRef::new(out, 0), dims);
    (g, vec![("s".to_owned(), Tensor::f32(vec![1], vec![0.5]))])
}

/// Makes the graph's output the first row (index 0 of axis 0) of `value`, of extents `dims`:
/// an output is fresh memory on every run (and on a GPU, a copy to the host), so the value
/// itself stays in the plan's reused arena.
fn output_first_row(g: &mut Graph, value: ValueRef, dims: &[usize]) {
    let mut first_dims = dims.to_vec();
    first_dims[0] = 1;
    let first = g.add_node(Node::new(
        "first",
        Op::Slice,
        vec![info(
            "first",
            TensorType::new(DType::F32, Shape::from_known(&first_dims)),
        )],
    ));
    g.connect(value, first, 0);
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
}

fn info(name: &str, ty: TensorType) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        ty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GPU's peak graphs compute what they claim to: run here on the CPU runtime, the first
    /// row of `(a + 0.5) @ b` and of `(a + 0.5) + b`, against sums written out.
    #[test]
    fn the_device_graphs_compute_the_first_row_of_their_op() {
        let n = 16;
        let value = |i: usize| (i % 7) as f32 * 0.125;
        let run = |op: Op, dims: &[usize]| {
            let (g, inputs) = on_device(op, dims);
            let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap();
            let out = plan.run_once(&inputs).unwrap();
            out[0].1.as_f32().unwrap().to_vec()
        };
        let row = run(Op::MatMul, &[n, n]);
        let want: Vec<f32> = (0..n)
            .map(|j| (0..n).map(|k| (value(k) + 0.5) * value(k * n + j)).sum())
            .collect();
        assert_eq!(row.len(), n);
        for (g, w) in row.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{row:?} against {want:?}"
            );
        }
        let add = run(Op::Binary(temblor_ir::BinaryOp::Add), &[n]);
        assert_eq!(add, vec![value(0) + 0.5 + value(0)]);
    }
}
