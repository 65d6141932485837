//! What a plan changes in the graph it runs, when it is prepared: an int8 convolution reads the
//! float value its input quantizes (`int8_conv.rs`, `int8_depthwise.rs`; the float stencils
//! quantize it as they pad), and a convolution or concatenation that only int8 layers read
//! hands them its output in bytes; a quantize-dequantize pair becomes one pass; a depthwise
//! convolution runs the convolution before it (an expansion, a stem) band by band, and a
//! pointwise projection both (`expand_depthwise.rs`); a dequantized
//! constant is computed once; a half layer reads f32 copies of its half constants; and steps
//! nothing reads are left out.

use super::{CpuPlan, Lowered};
use crate::cpu::args::Args;
use crate::cpu::cast::cast;
use crate::cpu::execute::execute;
use crate::cpu::int8_gemm::Quantizer;
use crate::cpu::isa::Isa;
use crate::cpu::{bf16_conv, byte_table, expand_depthwise, fully_connected, int8_conv};
use crate::{Int8Execution, RuntimeError, Tensor};
use std::collections::HashMap;
use temblor_ir::{DType, Graph, NodeId, Op, ValueRef};

/// What a plan may change in its graph: how int8 layers run, and whether a step may do another
/// node's work (`PrepareOptions::every_value` off).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rewrites {
    pub int8: Int8Execution,
    pub fuse: bool,
}

/// The values node `id` reads, by port, and what it was lowered to, when the plan reads past
/// part of the graph for it.
pub(super) fn inputs(
    g: &Graph,
    id: NodeId,
    rewrites: Rewrites,
    isa: Isa,
) -> (Vec<Option<ValueRef>>, Option<Lowered>) {
    let sources = g.inputs_of(id);
    match &g.node(id).op {
        Op::Conv(_) if rewrites.int8 == Int8Execution::Native => {
            if let Some(conv) = bf16_conv::lower(g, id) {
                // The convolution holds its weight, packed.
                let port = |p: usize| sources.get(p).copied().flatten();
                let reads = vec![port(0), None, port(2), port(3)];
                return (reads, Some(Lowered::Bf16Conv(Box::new(conv))));
            }
            if let Some((conv, x)) = int8_conv::lower(g, id) {
                // The convolution quantizes `x` itself and holds its weight.
                let port = |p: usize| sources.get(p).copied().flatten();
                let reads = vec![Some(x), None, port(2), port(3)];
                return (reads, Some(Lowered::Int8Conv(Box::new(conv))));
            }
            if let Some((conv, x)) = int8_conv::lower_depthwise(g, id) {
                let port = |p: usize| sources.get(p).copied().flatten();
                let reads = vec![Some(x), None, port(2), port(3)];
                return (reads, Some(Lowered::Int8Depthwise(Box::new(conv))));
            }
            if let Some((x, q)) = int8_conv::stencil_input(g, id) {
                let mut reads = sources;
                reads[0] = Some(x);
                return (reads, Some(Lowered::FakeQuantize(q)));
            }
        }
        Op::DequantizeLinear { .. } => {
            if let Some((x, q)) = int8_conv::quantized_input(g, ValueRef::new(id, 0)) {
                return (vec![Some(x)], Some(Lowered::FakeQuantize(q)));
            }
        }
        // `byte_table::lower` takes the elementwise ops it can tabulate, and only them.
        _ if rewrites.int8 == Int8Execution::Native => {
            if let Some((table, y)) = byte_table::lower(g, id) {
                return (vec![Some(y)], Some(Lowered::ByteTable(Box::new(table))));
            }
        }
        _ => {}
    }
    let fused = || {
        expand_depthwise::lower_projected(g, id, isa)
            .or_else(|| expand_depthwise::lower(g, id, isa))
    };
    if let Some((fused, reads)) = rewrites.fuse.then(fused).flatten() {
        return (reads, Some(Lowered::ExpandDepthwise(Box::new(fused))));
    }
    let fully_connected = || fully_connected::lower(g, id, isa);
    if let Some((fc, reads)) = rewrites.fuse.then(fully_connected).flatten() {
        return (reads, Some(Lowered::FullyConnected(Box::new(fc))));
    }
    (sources, None)
}

/// Whether node `id` reads a computed (not constant) half value: a layer of an fp16 or bf16
/// region.
pub(super) fn reads_half(g: &Graph, id: NodeId) -> bool {
    g.inputs_of(id)
        .into_iter()
        .flatten()
        .any(|v| g.constant(v).is_none() && g.value_type(v).dtype.is_half())
}

impl CpuPlan {
    /// Points `inputs` that are half constants at f32 copies made once here: a half layer
    /// computes in f32 (`execute::in_f32`), which otherwise widened its weights on every run and
    /// left convolutions without packed weights. The values are the same, so are the results.
    pub(super) fn widen_half_constants(
        &mut self,
        inputs: &mut [Option<usize>],
        widened: &mut HashMap<usize, usize>,
    ) {
        for slot in inputs.iter_mut().flatten() {
            if let Some(&copy) = widened.get(slot) {
                *slot = copy;
                continue;
            }
            let Some(t) = self
                .constants
                .iter()
                .find(|(c, _)| c == slot)
                .map(|(_, t)| t)
            else {
                continue;
            };
            if !t.dtype().is_half() {
                continue;
            }
            let Ok(wide) = cast(t, DType::F32) else {
                continue;
            };
            let copy = self.uses.len();
            self.uses.push(0);
            self.constants.push((copy, wide));
            widened.insert(*slot, copy);
            *slot = copy;
        }
    }

    /// `op` computed now, when every input it reads is a constant: a dequantized weight is then
    /// computed once, not on every run.
    pub(super) fn fold(
        &self,
        op: &Op,
        inputs: &[Option<usize>],
    ) -> Option<Result<Tensor, RuntimeError>> {
        let constant = |s: usize| self.constants.iter().find(|(c, _)| *c == s).map(|(_, t)| t);
        let ins: Vec<Option<&Tensor>> = inputs
            .iter()
            .map(|s| s.map(|s| constant(s).ok_or(())).transpose())
            .collect::<Result<_, _>>()
            .ok()?;
        let args = Args {
            ins: &ins,
            outputs: 1,
            isa: self.isa,
            lowered: None,
            bytes: None,
        };
        Some(execute(op, &args).and_then(|outs| {
            outs.into_iter()
                .next()
                .ok_or_else(|| RuntimeError::internal("a folded step made no output"))
        }))
    }

    /// Drops the steps and constants nothing reads: the quantization steps and weight an int8
    /// convolution reads past, and what only they read.
    pub(super) fn drop_unread(&mut self) {
        let mut keep = vec![true; self.steps.len()];
        // Readers come after what they read, so one backward sweep frees whole chains.
        for (i, step) in self.steps.iter().enumerate().rev() {
            if !step.outputs.is_empty() && step.outputs.iter().all(|&s| self.uses[s] == 0) {
                keep[i] = false;
                for &s in step.inputs.iter().flatten() {
                    self.uses[s] -= 1;
                }
            }
        }
        let mut kept = keep.iter();
        self.infos.retain(|_| *kept.next().unwrap_or(&true));
        let mut kept = keep.iter();
        self.steps.retain(|_| *kept.next().unwrap_or(&true));
        let uses = &self.uses;
        self.constants.retain(|(slot, _)| uses[*slot] > 0);
    }

    /// Leaves in bytes the output of each convolution and concatenation that only int8 layers
    /// read, all quantizing it the same way: a convolution's epilogue quantizes each row while
    /// the row is in cache (`conv::output`), a concatenation its inputs as it copies them, and
    /// the readers skip their own pass over it (in PicoDet's int8 plan, those passes were a
    /// fifth of the time). The readers take either form, so a run that keeps every value in
    /// f32 (observed, or a half layer's) needs nothing else.
    pub(super) fn bytes_between_layers(&mut self) {
        // Per slot: `None` before its first reader, then the quantizer every reader applies to
        // it, `Some(None)` once one applies none or another.
        let mut read_as: Vec<Option<Option<Quantizer>>> = vec![None; self.uses.len()];
        for step in &self.steps {
            let quantizes = match &step.lowered {
                Some(Lowered::Int8Conv(c)) => Some(c.quantizer()),
                Some(Lowered::Int8Depthwise(d)) => Some(d.quantizer()),
                Some(Lowered::FakeQuantize(q)) => Some(*q),
                Some(Lowered::ByteTable(t)) => Some(t.quantizer()),
                _ => None,
            };
            for (port, slot) in step.inputs.iter().enumerate() {
                let Some(slot) = *slot else { continue };
                let this = quantizes.filter(|_| port == 0);
                read_as[slot] = Some(match read_as[slot] {
                    None => this,
                    Some(earlier) => earlier.filter(|_| earlier == this),
                });
            }
        }
        for (_, slot) in &self.outputs {
            read_as[*slot] = Some(None);
        }
        for (step, info) in self.steps.iter_mut().zip(&self.infos) {
            let writes_bytes = match info.op {
                Op::Conv(_) => matches!(
                    step.lowered,
                    None | Some(
                        Lowered::ConvWeights(_)
                            | Lowered::Int8Conv(_)
                            | Lowered::Int8Depthwise(_)
                            | Lowered::FakeQuantize(_)
                    )
                ),
                Op::Concat { .. } => step.lowered.is_none(),
                _ => matches!(step.lowered, Some(Lowered::ByteTable(_))),
            };
            if let (true, &[slot]) = (writes_bytes, &step.outputs[..]) {
                step.bytes = read_as[slot].flatten();
            }
        }
    }
}
