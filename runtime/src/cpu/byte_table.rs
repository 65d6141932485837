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
use temblor_ir::{Graph, NodeId, Op, UnaryOp, ValueRef};

/// The 256 results of an activation of a quantized input.
#[derive(Debug)]
pub(crate) struct ByteTable {
    /// How the input is quantized.
    input: Quantizer,
    /// `f` of the value each byte stands for.
    values: [f32; 256],
}

/// Node `id` as a table, with the float value its input quantizes, when it is an elementwise
/// activation of `DequantizeLinear(QuantizeLinear(y))` per tensor.
pub(crate) fn lower(g: &Graph, id: NodeId) -> Option<(ByteTable, ValueRef)> {
    let op = &g.node(id).op;
    let elementwise = match op {
        Op::Unary(u) => !matches!(u, UnaryOp::Not | UnaryOp::Identity),
        Op::LeakyRelu { .. } | Op::HardSigmoid { .. } | Op::Clip { .. } => true,
        _ => false,
    };
    let inputs = g.inputs_of(id);
    if !elementwise || inputs.iter().skip(1).any(Option::is_some) {
        return None;
    }
    let (y, input) = quantized_input(g, inputs.first().copied().flatten()?)?;
    let bytes = Tensor::f32(vec![256], (0..=255u8).map(|b| input.value(b)).collect());
    let results = crate::run_op(op, &[Some(&bytes)], 1).ok()?;
    let values = results.first()?.as_f32()?.try_into().ok()?;
    Some((ByteTable { input, values }, y))
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
