//! Convolutions of bf16 layers computed on bf16 values. A precision plan's bf16 layer reads and
//! writes bfloat16 values and holds a bfloat16 weight (see `temblor_precision::legalize`). Run
//! as written, it widens its input to f32, convolves in f32 and rounds its output. When the plan
//! is prepared, [`lower`] packs the weight in depth pairs ([`super::bf16_gemm`]) and the
//! convolution then reads the bf16 input itself: each tile (`tiled_conv.rs`) lays out its bf16
//! columns (from the stride's phases of the padded input in place, as the float path reads
//! floats, or from im2col tiles), multiplies them with `vdpbf16ps`, two products an
//! instruction, and runs the f32 epilogue (bias, activation, residual) before the output is
//! rounded to bf16. The products of bf16 values are exact in f32, so the result is the
//! simulation's up to the order in which the f32 sums are rounded.
//!
//! The stencil convolutions ([`Stencil`]: depthwise, and few outputs over a window) run on the
//! f32 stencils, as the float path does (a GEMM has too little to reuse in them), reading the
//! bf16 input as they pad each plane.

use super::bf16_gemm::{pack_columns, Bf16Weights};
use super::buffers;
use super::cast;
use super::conv::{epilogue, every_scalar, reads_phases, Geometry, Tap};
use super::conv_padded::Phases;
use super::depthwise::{AsIs, Stencil};
use super::elements;
use super::isa::Isa;
use super::tiled_conv::{self, Scratch, Source, TileGemm};
use crate::{bf16, RuntimeError, Tensor, TensorData};
use std::cell::RefCell;
use temblor_ir::{DType, Graph, NodeId, Op};

impl Tap for bf16 {
    /// Stride 2 takes 16 values from 32 per narrowing move (`vpmovdw`: the low half of each
    /// 32-bit lane), as the float and byte gathers do.
    fn every(src: &[bf16], step: usize, dst: &mut [bf16], isa: Isa) {
        #[cfg(target_arch = "x86_64")]
        if step == 2 && isa.vnni() {
            // SAFETY: an `Isa` with VNNI is only made on a machine with AVX-512BW.
            return unsafe { every_second_avx512(src, dst) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = isa;
        every_scalar(src, step, dst);
    }
}

/// `dst[i] = src[2·i]` for every `i` of `dst` (`src` holds at least `2·dst.len() - 1`
/// values), 16 outputs a vector, the last one masked, as the byte gather does.
///
/// # Safety
/// AVX-512BW must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn every_second_avx512(src: &[bf16], dst: &mut [bf16]) {
    use std::arch::x86_64::{
        _mm256_mask_storeu_epi16, _mm512_cvtepi32_epi16, _mm512_maskz_loadu_epi16,
    };
    assert!(dst.is_empty() || src.len() >= 2 * dst.len() - 1);
    for (b, out) in dst.chunks_mut(16).enumerate() {
        let inputs = 2 * out.len() - 1;
        let load = u32::MAX >> (32 - inputs);
        let store = (u32::MAX >> (32 - out.len())) as u16;
        // SAFETY: the masks cover `inputs` values of `src` from `32·b` and `out.len()` of
        // `out`, all in bounds by the assert.
        unsafe {
            let words = _mm512_maskz_loadu_epi16(load, src.as_ptr().add(32 * b).cast());
            _mm256_mask_storeu_epi16(out.as_mut_ptr().cast(), store, _mm512_cvtepi32_epi16(words));
        }
    }
}

thread_local! {
    /// Each thread's bf16 columns, their packed pairs, and f32 sums to scatter.
    static SCRATCH: Scratch<bf16, u32> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// A bf16 convolution, prepared.
#[derive(Debug)]
pub(crate) struct Bf16Conv {
    kernel: Kernel,
    shape: [usize; 4],
}

#[derive(Debug)]
enum Kernel {
    /// The GEMM, with the weight packed in depth pairs.
    Gemm(Bf16Weights),
    /// The f32 stencils (`depthwise.rs`), which widen the bf16 input plane by plane as they pad
    /// it, with the weight widened once.
    Stencil(Stencil, Vec<f32>),
}

/// Conv `id` as a bf16 convolution, when it reads a computed bf16 value with a constant bf16
/// weight; `None` leaves it to the simulation.
pub(crate) fn lower(g: &Graph, id: NodeId) -> Option<Bf16Conv> {
    let Op::Conv(a) = &g.node(id).op else {
        return None;
    };
    let x = g.input(id, 0)?;
    if g.value_type(x).dtype != DType::BF16 || g.constant(x).is_some() {
        return None;
    }
    let w = g.constant(g.input(id, 1)?)?;
    let shape: [usize; 4] = w.dims.as_slice().try_into().ok()?;
    if w.dtype != DType::BF16 || w.is_shape_only() {
        return None;
    }
    let [o, cg, kh, kw] = shape;
    let k = cg * kh * kw;
    if a.group == 0 || o % a.group != 0 || k == 0 {
        return None;
    }
    let values: Vec<bf16> = w
        .data
        .chunks_exact(2)
        .map(|b| bf16::from_le_bytes([b[0], b[1]]))
        .collect();
    let kernel = match Stencil::of(a.group, shape) {
        Some(s) => Kernel::Stencil(s, values.iter().map(|v| v.to_f32()).collect()),
        None => Kernel::Gemm(Bf16Weights::new(&values, o / a.group, k)),
    };
    Some(Bf16Conv { kernel, shape })
}

/// Runs `conv` on the bf16 input `x`; `a` has explicit pads, `bias` is f32 (the plan widens a
/// half layer's constants once) and `residual` bf16 or f32.
pub(crate) fn conv(
    a: &temblor_ir::ConvAttrs,
    conv: &Bf16Conv,
    x: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let geo = Geometry::new(a, x, conv.shape)?;
    let xv = elements::<bf16>(x, "input", DType::BF16)?;
    let wide_residual = match residual {
        Some(r) if r.dtype() == DType::BF16 => Some(cast::cast(r, DType::F32)?),
        _ => None,
    };
    let epi = epilogue(a, &geo, bias, wide_residual.as_ref().or(residual), isa)?;
    let plane = geo.out_plane();
    let mut out = match &conv.kernel {
        Kernel::Stencil(s, weight) => s.run(&geo, (xv, &AsIs), weight, &epi),
        Kernel::Gemm(_) => buffers::reuse(geo.n * geo.o * plane),
    };
    if let (Kernel::Gemm(weights), true) = (&conv.kernel, plane > 0 && geo.o > 0) {
        let phases = reads_phases(&geo, weights.k()).then(|| Phases::new(&geo));
        let mut padded = Vec::new();
        if let Some(phases) = &phases {
            padded = buffers::reuse_typed::<bf16>(phases.len(&geo));
            phases.fill(&geo, isa, xv, &mut padded, bf16::ZERO);
        }
        let source = Source {
            input: xv,
            phases: phases.as_ref().map(|p| (p, &padded[..])),
            zero: bf16::ZERO,
        };
        tiled_conv::run(weights, &geo, isa, source, &epi, &mut out, &SCRATCH);
        buffers::give_back(padded);
    }
    if let Some(TensorData::F32(v)) = wide_residual.map(|t| t.data) {
        buffers::give_back(v);
    }
    let wide = Tensor::f32(geo.out_shape(), out);
    let narrowed = cast::cast(&wide, DType::BF16)?;
    buffers::give_back_f32(wide);
    Ok(narrowed)
}

impl TileGemm for Bf16Weights {
    type Elem = bf16;
    type Packed = u32;
    const BYTES_PER_DEPTH: usize = size_of::<bf16>();

    fn depth(&self) -> usize {
        self.k()
    }

    fn pack(&self, isa: Isa, src: &[bf16], rows: &[usize], n: usize, dst: &mut Vec<u32>) {
        pack_columns(isa, src, rows, n, dst);
    }

    fn multiply(
        &self,
        isa: Isa,
        at: (usize, usize),
        _first_oc: usize,
        packed: &[u32],
        out: &mut [&mut [f32]],
    ) {
        Bf16Weights::multiply(self, isa, at, packed, out);
    }
}
