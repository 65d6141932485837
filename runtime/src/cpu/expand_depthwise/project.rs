//! An inverted residual block whole: the expansion, the depthwise convolution and the
//! pointwise projection that alone reads it, run band by band, each band projecting its
//! depthwise rows while they are in cache: a few rows at a time in channels-last blocks
//! ([`super::channels_last`]), or each band's rows over NCHW (a stem's block).
//!
//! The fused pair still wrote the depthwise output, the block's widest tensor (CenterFace's
//! 144 channels at 120x160: 11 MB), for the projection to read back at once. Here it never
//! leaves the cache. The projection is the plan's GEMM kernel over the same packed weight,
//! whose outputs are each the same chain of multiply-adds however the positions are cut, so
//! the results are the unfused block's, bit for bit.

use super::super::buffers;
use super::super::conv::{conv, dims4, epilogue, pack_weights, ConvWeights, Geometry, SharedOut};
use super::super::conv_gemm::ConvGemm;
use super::super::epilogue::Epilogue;
use super::super::isa::Isa;
use super::channels_last::Projection;
use super::{ExpandDepthwise, Planes};
use crate::{RuntimeError, Tensor};
use temblor_ir::{AutoPad, ConvAttrs, DType, Graph, NodeId, Op, ValueRef};

/// The depthwise convolution a projection step runs inside it, and the projection's weight
/// packed for the GEMM kernel.
#[derive(Debug)]
pub(crate) struct Projected {
    pub(super) depthwise: ConvAttrs,
    pub(super) weights: ConvWeights,
    /// The depthwise convolution's node name, for the plan's steps.
    pub(super) name: String,
}

/// What projection step `id` reads when the plan fuses it with the depthwise convolution
/// making its input and that one's expansion: the expansion's input, the projection's weight,
/// bias and residual (ports 0 to 3, as an unfused convolution reads them), the expansion's
/// weight and bias (4 and 5), and the depthwise weight and bias (6 and 7). `None` unless the
/// projection is a float 1x1 convolution, of at most as many outputs as inputs, with a
/// constant weight that the GEMM kernel packs, whose input only it reads and the graph does
/// not return, made by a depthwise convolution with explicit pads and no residual that fuses
/// with its expansion ([`super::lower`]).
pub(crate) fn lower(
    g: &Graph,
    id: NodeId,
    isa: Isa,
) -> Option<(ExpandDepthwise, Vec<Option<ValueRef>>)> {
    let Op::Conv(p) = &g.node(id).op else {
        return None;
    };
    let pointwise = p.kernel == [1, 1]
        && p.strides == [1, 1]
        && p.pads == [0; 4]
        && p.dilations == [1, 1]
        && p.group == 1;
    let mid = g.input(id, 0)?;
    let weight = g.constant(g.input(id, 1)?)?;
    let only_reader = g.consumers(mid) == [(id, 0)] && !g.outputs.iter().any(|o| o.value == mid);
    let float = g.value_type(mid).dtype == DType::F32
        && weight.dtype == DType::F32
        && !weight.is_shape_only();
    let Op::Conv(d) = &g.node(mid.node).op else {
        return None;
    };
    let explicit = d.auto_pad == AutoPad::NotSet && g.input(mid.node, 3).is_none();
    // A projection that widens (LCNet's 32 -> 64 after its first stride-2 depthwise layer)
    // writes more than the fusion saves, in shorter GEMMs: PicoDet layout's block took 3.36
    // ms fused against 2.92 as a pair and a convolution, at one thread.
    let narrows = matches!(weight.dims.as_slice(), &[o, e, 1, 1] if o <= e);
    if !(pointwise && only_reader && float && explicit && narrows) {
        return None;
    }
    let (mut fused, reads) = super::lower(g, mid.node, isa)?;
    let w = Tensor::from_weight(weight).ok()?;
    let weights = pack_weights(p, &w, isa, None).filter(|w| w.gemm().is_some())?;
    fused.project = Some(Projected {
        depthwise: d.clone(),
        weights,
        name: g.node(mid.node).name.clone(),
    });
    let port = |p: usize| g.input(id, p);
    let reads = vec![
        reads[0],
        port(1),
        port(2),
        port(3),
        reads[4],
        reads[5],
        reads[1],
        reads[2],
    ];
    Some((fused, reads))
}

/// Projection `a` (with its weight `w` and epilogue) of the depthwise convolution `p` holds,
/// of the expansion of `x`.
pub(super) fn run(
    fused: &ExpandDepthwise,
    p: &Projected,
    (a, [x, w], (bias, residual)): (&ConvAttrs, [&Tensor; 2], (Option<&Tensor>, Option<&Tensor>)),
    [ew, eb, dw, db]: [Option<&Tensor>; 4],
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let dw = dw
        .ok_or_else(|| RuntimeError::internal("a fused projection without its depthwise weight"))?;
    let inputs = Inputs {
        attrs: a,
        weight: w,
        packed: &p.weights,
        bias,
        residual,
    };
    super::pair(
        fused,
        &p.depthwise,
        [x, dw],
        (db, None),
        [ew, eb],
        isa,
        Some(&inputs),
    )
}

/// The projection's side of a fused step: its attributes, weight (and the weight packed),
/// and epilogue inputs.
pub(super) struct Inputs<'a> {
    attrs: &'a ConvAttrs,
    weight: &'a Tensor,
    packed: &'a ConvWeights,
    bias: Option<&'a Tensor>,
    residual: Option<&'a Tensor>,
}

/// [`Inputs`] checked against the depthwise output they project.
pub(super) struct Prepared<'a> {
    gemm: ConvGemm<'a>,
    pub outputs: usize,
    epi: Epilogue<'a>,
}

impl<'a> Inputs<'a> {
    /// The projection's output channels.
    pub fn outputs(&self) -> Result<usize, RuntimeError> {
        Ok(dims4(self.weight, "projection weight")?[0])
    }

    fn conv(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        isa: Isa,
    ) -> Result<Tensor, RuntimeError> {
        let lowered = (Some(self.packed), None);
        conv(
            self.attrs,
            [x, self.weight],
            self.bias,
            residual,
            isa,
            lowered,
        )
    }

    /// The projection of the whole depthwise output `dw`, which goes back to the pool.
    pub fn whole(&self, dw: Tensor, isa: Isa) -> Result<Tensor, RuntimeError> {
        let out = self.conv(&dw, self.residual, isa);
        buffers::give_back_f32(dw);
        out
    }

    /// The projection of `part`, depthwise output rows `y0..y1` of image `image`, which goes
    /// back to the pool: the same rows of the projection's output.
    pub fn band(
        &self,
        part: Tensor,
        image: usize,
        (y0, y1): (usize, usize),
        isa: Isa,
    ) -> Result<Tensor, RuntimeError> {
        let residual = self
            .residual
            .map(|r| Planes::of(r).map(|r| r.rows(image, (y0, y1))))
            .transpose()?;
        let out = self.conv(&part, residual.as_ref(), isa);
        buffers::give_back_f32(part);
        if let Some(r) = residual {
            buffers::give_back_f32(r);
        }
        out
    }

    /// The projection of depthwise output `dw` (its geometry's output).
    pub fn prepare(&self, dw: &Geometry, isa: Isa) -> Result<Prepared<'a>, RuntimeError> {
        let [o, e, _, _] = dims4(self.weight, "projection weight")?;
        let geo = Geometry::of_dims(self.attrs, [dw.n, dw.o, dw.oh, dw.ow], [o, e, 1, 1])?;
        if (geo.oh, geo.ow, e) != (dw.oh, dw.ow, dw.o) {
            return Err(RuntimeError::bad_input(format!(
                "a 1x1 projection of {e} channels reads {} channels of {}x{}",
                dw.o, dw.oh, dw.ow
            )));
        }
        let wv = super::super::f32s(self.weight, "projection weight")?;
        Ok(Prepared {
            gemm: ConvGemm::with_packed(wv, o, e, isa, self.packed.gemm(), 0),
            outputs: o,
            epi: epilogue(self.attrs, &geo, self.bias, self.residual, isa)?,
        })
    }
}

impl Prepared<'_> {
    /// The projection writing into `out`.
    pub fn projection<'b>(&'b self, out: &'b SharedOut<'b, f32>) -> Projection<'b> {
        Projection {
            gemm: &self.gemm,
            outputs: self.outputs,
            epi: &self.epi,
            out,
        }
    }
}
