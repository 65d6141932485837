//! Convolutions of bf16 layers computed on bf16 values. A precision plan's bf16 layer reads and
//! writes bfloat16 values and holds a bfloat16 weight (see `temblor_precision::legalize`). Run
//! as written, it widens its input to f32, convolves in f32 and rounds its output. When the plan
//! is prepared, [`lower`] packs the weight in depth pairs ([`super::bf16_gemm`]) and the
//! convolution then reads the bf16 input itself: each tile lays out its bf16 columns (from the
//! stride's phases of the padded input in place, as the float path reads floats, or from im2col
//! tiles), multiplies them with `vdpbf16ps`, two products an instruction, and runs the f32
//! epilogue (bias, activation, residual) before the output is rounded to bf16. The products of
//! bf16 values are exact in f32, so the result is the simulation's up to the order in which the
//! f32 sums are rounded.
//!
//! Depthwise convolutions and those with fewer than [`MR`] outputs and a window keep the
//! simulation, as int8 ones do: a GEMM has too little to reuse in them.

use super::bf16_gemm::{pack_columns, Bf16Weights, MR};
use super::buffers;
use super::cast;
use super::conv::{epilogue, im2col, reads_phases, Geometry, SharedOut, Tap};
use super::conv_padded::Phases;
use super::conv_tasks::min_per_job;
use super::elements;
use super::int8_conv::tasks;
use super::isa::Isa;
use crate::{bf16, RuntimeError, Tensor, TensorData};
use rayon::prelude::*;
use std::cell::RefCell;
use temblor_ir::{DType, Graph, NodeId, Op};

impl Tap for bf16 {}

/// One thread's buffers: bf16 columns, their packed pairs, and f32 sums to scatter.
type Scratch = (Vec<bf16>, Vec<u32>, Vec<f32>);

thread_local! {
    /// Each thread's buffers, kept between tasks and layers, as the int8 convolution keeps its.
    static SCRATCH: RefCell<Scratch> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// A bf16 convolution, prepared: its weight packed in depth pairs.
#[derive(Debug)]
pub(crate) struct Bf16Conv {
    weights: Bf16Weights,
    shape: [usize; 4],
}

/// Conv `id` as a bf16 convolution, when it reads a computed bf16 value with a constant bf16
/// weight and has rows enough for a GEMM; `None` leaves it to the simulation.
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
    let few_outputs = a.group == 1 && o < MR && kh * kw > 1;
    if cg == 1 || few_outputs || a.group == 0 || o % a.group != 0 || k == 0 {
        return None;
    }
    let values: Vec<bf16> = w
        .data
        .chunks_exact(2)
        .map(|b| bf16::from_le_bytes([b[0], b[1]]))
        .collect();
    Some(Bf16Conv {
        weights: Bf16Weights::new(&values, o / a.group, k),
        shape,
    })
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
    let (cg, og) = (geo.c / geo.group, geo.o / geo.group);
    let kdim = conv.weights.k();
    let plane = geo.out_plane();
    let mut out = buffers::reuse(geo.n * geo.o * plane);
    if plane > 0 && og > 0 {
        let shared = SharedOut::new(&mut out);
        let phases = reads_phases(&geo, kdim).then(|| Phases::new(&geo));
        let mut padded = Vec::new();
        if let Some(phases) = &phases {
            padded = buffers::reuse_half::<bf16>(phases.len(&geo));
            phases.fill(&geo, isa, xv, &mut padded, bf16::ZERO);
        }
        let pointwise = geo.is_pointwise();
        let plane_rows: Vec<usize> = (0..cg).map(|c| c * geo.in_plane()).collect();
        let columns = phases.as_ref().map_or(plane, |p| p.span);
        tasks(&geo, kdim, columns)
            .into_par_iter()
            .with_min_len(min_per_job(og * geo.group * kdim * plane * geo.n))
            .for_each(|t| {
                SCRATCH.with_borrow_mut(|(col, packed, tile)| {
                    let (m, tw) = (t.rows.1 - t.rows.0, t.cols.1 - t.cols.0);
                    let first_oc = t.group * og + t.rows.0;
                    if let Some(phases) = &phases {
                        let b = &padded[phases.first(&geo, &t)..];
                        pack_columns(isa, b, &phases.taps, tw, packed);
                        tile.resize(m * tw, 0.0);
                        let mut rows: Vec<&mut [f32]> = tile.chunks_exact_mut(tw).collect();
                        conv.weights
                            .multiply(isa, (t.group, t.rows.0), packed, &mut rows);
                        phases.scatter(&geo, &t, tile, &shared, &epi);
                        return;
                    }
                    let first_in = (t.image * geo.c + t.group * cg) * geo.in_plane();
                    let xs = &xv[first_in..first_in + cg * geo.in_plane()];
                    let col_rows: Vec<usize>;
                    let (b, b_rows) = if pointwise {
                        (&xs[t.cols.0..], &plane_rows[..])
                    } else {
                        col.resize(kdim * tw, bf16::ZERO);
                        im2col(&geo, isa, cg, xs, t.cols, tw, col, bf16::ZERO);
                        col_rows = (0..kdim).map(|p| p * tw).collect();
                        (&col[..], &col_rows[..])
                    };
                    pack_columns(isa, b, b_rows, tw, packed);
                    let start = |r: usize| (t.image * geo.o + first_oc + r) * plane + t.cols.0;
                    // SAFETY: tasks cover disjoint (image, channel, position) cells, so no other
                    // reference to these segments of the output exists while they are written.
                    let mut rows: Vec<&mut [f32]> = (0..m)
                        .map(|r| unsafe { shared.segment(start(r), tw) })
                        .collect();
                    conv.weights
                        .multiply(isa, (t.group, t.rows.0), packed, &mut rows);
                    for (r, row) in rows.iter_mut().enumerate() {
                        epi.apply(first_oc + r, start(r), row);
                    }
                })
            });
        buffers::give_back(padded);
    }
    if let Some(TensorData::F32(v)) = wide_residual.map(|t| t.data) {
        buffers::give_back(v);
    }
    let wide = Tensor::f32(geo.out_shape(), out);
    let narrowed = cast::cast(&wide, DType::BF16)?;
    if let TensorData::F32(v) = wide.data {
        buffers::give_back(v);
    }
    Ok(narrowed)
}
