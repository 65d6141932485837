//! An activation of a quantized value, `f(DequantizeLinear(QuantizeLinear(y)))`, looked up in a
//! table of its 256 results. onnxruntime's quantizer leaves the activations it does not
//! quantize (HardSwish, Sigmoid, LeakyRelu...) between two quantizations: `Conv -> Q -> DQ ->
//! HardSwish -> Q -> DQ -> Conv`. Run as written, that is a dequantizing pass, the activation's
//! pass and a quantizing pass, each over the whole tensor, around every convolution. The
//! activation's input is one of 256 bytes, so the plan computes `f` for each once, with the
//! op's own kernel, and a run only looks up: bytes in when the producer stores them (every
//! reader quantizing alike, `CpuPlan::bytes_between_layers`), bytes out when every reader of the
//! result quantizes it alike, the same results as the passes, bit for bit.

use super::int8_conv::quantized_input;
use super::int8_gemm::Quantizer;
use super::isa::Isa;
use super::{buffers, f32s, quant};
use crate::{RuntimeError, Tensor, TensorData};
use rayon::prelude::*;
use temblor_ir::{BinaryOp, Graph, NodeId, Op, UnaryOp, ValueRef};

/// The 256 results of an activation of a quantized input.
#[derive(Debug)]
pub(crate) struct ByteTable {
    /// How the input is quantized.
    input: Quantizer,
    /// `f` of the value each byte stands for.
    values: [f32; 256],
}

/// Node `id` as a table, with the float value its input quantizes, when its output is an
/// elementwise function of one `DequantizeLinear(QuantizeLinear(y))` per tensor: an activation
/// of it, or a sum, product or quotient of such functions and scalars (SiLU, `x · sigmoid(x)`,
/// which onnxruntime's quantizer leaves as a Sigmoid and a Mul of the same dequantized value).
pub(crate) fn lower(g: &Graph, id: NodeId) -> Option<(ByteTable, ValueRef)> {
    let out = ValueRef::new(id, 0);
    if g.node(id).outputs.len() != 1 || matches!(g.node(id).op, Op::DequantizeLinear { .. }) {
        return None;
    }
    let (y, input, values) = of_byte(g, out, DEPTH)?;
    let same_shape = g.value_type(out).shape == g.value_type(y).shape;
    let values = values.as_f32()?.try_into().ok()?;
    same_shape.then_some((ByteTable { input, values }, y))
}

/// Ops between the quantized value and the table's node, at most.
const DEPTH: usize = 3;

/// `v` as a function of one quantized value `y`: `y`, how it is quantized, and `v` for each of
/// the 256 bytes, computed by the ops' own kernels.
fn of_byte(g: &Graph, v: ValueRef, depth: usize) -> Option<(ValueRef, Quantizer, Tensor)> {
    if let Some((y, q)) = quantized_input(g, v) {
        let bytes = Tensor::f32(vec![256], (0..=255u8).map(|b| q.value(b)).collect());
        return Some((y, q, bytes));
    }
    let op = &g.node(v.node).op;
    let inputs = g.inputs_of(v.node);
    let elementwise = match op {
        Op::Unary(u) => !matches!(u, UnaryOp::Not | UnaryOp::Identity),
        Op::LeakyRelu { .. } | Op::HardSigmoid { .. } | Op::Clip { .. } => true,
        Op::Binary(b) => matches!(
            b,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
        ),
        _ => false,
    };
    if depth == 0 || !elementwise || v.port != 0 || inputs.iter().any(Option::is_none) {
        return None;
    }
    let mut source: Option<(ValueRef, Quantizer)> = None;
    let mut operands = Vec::with_capacity(inputs.len());
    for u in inputs.into_iter().flatten() {
        if let Some(w) = g.constant(u) {
            // A scalar only: it applies to every element alike.
            let w = Tensor::from_weight(w).ok().filter(|w| w.len() == 1)?;
            operands.push(w);
            continue;
        }
        let (y, q, values) = of_byte(g, u, depth - 1)?;
        if source.is_some_and(|s| s != (y, q)) {
            return None;
        }
        source = Some((y, q));
        operands.push(values);
    }
    let (y, q) = source?;
    let refs: Vec<Option<&Tensor>> = operands.iter().map(Some).collect();
    let values = crate::run_op(op, &refs, 1).ok()?.into_iter().next()?;
    (values.shape == [256]).then_some((y, q, values))
}

impl ByteTable {
    /// How the table's input is quantized.
    pub fn quantizer(&self) -> Quantizer {
        self.input
    }

    /// The activation of `x` (floats, or bytes its producer quantized as [`Self::quantizer`]
    /// says), in f32 or, with `bytes`, quantized so.
    pub fn run(
        &self,
        x: &Tensor,
        isa: Isa,
        bytes: Option<Quantizer>,
    ) -> Result<Tensor, RuntimeError> {
        let owned = match &x.data {
            TensorData::U8(_) => None,
            _ => {
                let xv = f32s(x, "input")?;
                let mut b = buffers::reuse_typed::<u8>(xv.len());
                quant::quantize_to_bytes(isa, self.input, xv, &mut b);
                Some(b)
            }
        };
        let input: &[u8] = match (&owned, &x.data) {
            (Some(b), _) | (None, TensorData::U8(b)) => b,
            (None, _) => return Err(RuntimeError::internal("an activation's input is lost")),
        };
        let data = match bytes {
            Some(q) => {
                let mut table = [0u8; 256];
                quant::bytes_of_row(isa, q, &self.values, &mut table);
                let mut out = buffers::reuse_typed::<u8>(input.len());
                out.par_chunks_mut(CHUNK)
                    .zip(input.par_chunks(CHUNK))
                    .for_each(|(out, input)| look_up_bytes(isa, &table, input, out));
                TensorData::U8(out)
            }
            None => {
                let values = &self.values;
                let mut out = buffers::reuse(input.len());
                quant::map(isa, input, &mut out, move |b| values[usize::from(b)]);
                TensorData::F32(out)
            }
        };
        if let Some(b) = owned {
            buffers::give_back(b);
        }
        Ok(Tensor {
            shape: x.shape.clone(),
            data,
        })
    }
}

/// Elements a parallel job looks up: a whole PicoDet tensor is at most a few of them.
const CHUNK: usize = 1 << 16;

/// `out[i] = table[input[i]]`.
fn look_up_bytes(isa: Isa, table: &[u8; 256], input: &[u8], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if isa.vnni() && std::arch::is_x86_feature_detected!("avx512vbmi") {
        // SAFETY: VNNI comes with AVX-512F and BW here (`Isa`), and VBMI was just detected.
        return unsafe { vbmi::look_up(table, input, out) };
    }
    for (o, &b) in out.iter_mut().zip(input) {
        *o = table[usize::from(b)];
    }
}

#[cfg(target_arch = "x86_64")]
mod vbmi {
    use std::arch::x86_64::*;

    /// [`super::look_up_bytes`] 64 bytes at a time: each half of the table is two registers
    /// that one `vpermi2b` indexes by the low 7 bits, and the top bit picks the half.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW and VBMI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub unsafe fn look_up(table: &[u8; 256], input: &[u8], out: &mut [u8]) {
        let n = input.len().min(out.len());
        // SAFETY: the table's four loads are its 256 bytes; the masks keep every other load
        // and store within the first `n` elements of `input` and `out`.
        unsafe {
            let t = table.as_ptr();
            let quarter = |q: usize| _mm512_loadu_si512(t.add(64 * q).cast());
            let (a, b, c, d) = (quarter(0), quarter(1), quarter(2), quarter(3));
            let mut i = 0;
            while i < n {
                let lanes = if n - i >= 64 {
                    u64::MAX
                } else {
                    (1u64 << (n - i)) - 1
                };
                let x = _mm512_maskz_loadu_epi8(lanes, input.as_ptr().add(i).cast());
                let low = _mm512_permutex2var_epi8(a, x, b);
                let high = _mm512_permutex2var_epi8(c, x, d);
                let y = _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), low, high);
                _mm512_mask_storeu_epi8(out.as_mut_ptr().add(i).cast(), lanes, y);
                i += 64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction set looks every byte up, over lengths with and without a partial
    /// vector.
    #[test]
    fn every_instruction_set_looks_up_every_byte() {
        let table: [u8; 256] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        for len in [0, 1, 63, 64, 65, 300] {
            let input: Vec<u8> = (0..len).map(|i| (i * 151 % 256) as u8).collect();
            let want: Vec<u8> = input.iter().map(|&b| table[usize::from(b)]).collect();
            for isa in Isa::available() {
                let mut out = vec![0; len];
                look_up_bytes(isa, &table, &input, &mut out);
                assert_eq!(out, want, "{isa:?}, {len} bytes");
            }
        }
    }
}
