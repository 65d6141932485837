//! A convolution's weight packed once per plan for the kernel family that runs it, and how
//! that family is chosen.

#[cfg(target_arch = "x86_64")]
use super::super::conv_blocked::BlockedWeights;
use super::super::conv_gemm::{PackedWeights, MR};
#[cfg(target_arch = "x86_64")]
use super::super::conv_shallow::ShallowWeights;
#[cfg(target_arch = "x86_64")]
use super::super::conv_winograd::WinogradWeights;
use super::super::isa::Isa;
use super::Geometry;
use crate::Tensor;
use temblor_ir::ConvAttrs;

/// A convolution's constant weight packed once, when the plan is built, for the paths that
/// read it packed.
#[derive(Debug)]
pub(crate) struct ConvWeights {
    /// For the GEMM path (`conv::gemm_conv`).
    pub(super) gemm: Option<PackedWeights>,
    /// For the channel-block path (`conv_blocked`, AVX-512), which takes some of the
    /// convolutions it is packed for, by their planes; the GEMM form serves the others.
    #[cfg(target_arch = "x86_64")]
    pub(super) blocked: Option<BlockedWeights>,
    /// For the few-input-channel path (`conv_shallow`, AVX-512), which takes the ones it is
    /// packed for whose rows suit it.
    #[cfg(target_arch = "x86_64")]
    pub(super) shallow: Option<ShallowWeights>,
    /// For the Winograd path (`conv_winograd`, AVX-512), which takes the float (not int8)
    /// convolutions it is packed for whose planes suit it.
    #[cfg(target_arch = "x86_64")]
    pub(super) winograd: Option<WinogradWeights>,
}

/// The kernel family a float convolution runs on: `conv::gemm_conv` dispatches on it, and a plan
/// packs its weight for it alone where the input's dims are known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Path {
    Shallow,
    Winograd,
    Blocked,
    Gemm,
}

impl Path {
    /// The path of convolution `geo` on `isa`; `exact` is whether its input is its own rather
    /// than an int8 layer's simulated one, whose convolution must be the direct sum.
    pub(super) fn of(geo: &Geometry, isa: Isa, exact: bool) -> Path {
        #[cfg(target_arch = "x86_64")]
        {
            if super::super::conv_shallow::takes(geo, isa) {
                return Path::Shallow;
            }
            if exact && super::super::conv_winograd::takes(geo, isa) {
                return Path::Winograd;
            }
            if super::super::conv_blocked::takes(geo, isa) {
                return Path::Blocked;
            }
        }
        let _ = (geo, isa, exact);
        Path::Gemm
    }
}

/// The weight `w` of a convolution with attributes `a` packed for the paths that take it on
/// `isa`, or `None` where none does (depthwise and few-output convolutions, non-f32 weights, an
/// instruction set the GEMMs do not pack for). Given the dims of its input, only for the path
/// that runs it: a Winograd weight is 4x the filter, and with every form packed, open_nsfw's
/// peak memory went past onnxruntime's.
pub(crate) fn pack_weights(
    a: &ConvAttrs,
    w: &Tensor,
    isa: Isa,
    input: Option<[usize; 4]>,
) -> Option<ConvWeights> {
    let (&[o, cg, kh, kw], Some(wv)) = (&w.shape[..], w.as_f32()) else {
        return None;
    };
    let g = a.group;
    let gemm = cg > 1 && !(g == 1 && o < MR && kh * kw > 1);
    if !gemm || g == 0 || o % g != 0 {
        return None;
    }
    let path = input
        .and_then(|dims| Geometry::planned(a, dims, [o, cg, kh, kw]))
        .map(|geo| Path::of(&geo, isa, true));
    let packs = |p: Path| path.is_none_or(|q| q == p);
    let weights = ConvWeights {
        gemm: packs(Path::Gemm)
            .then(|| PackedWeights::new(wv, g, o / g, cg * kh * kw, isa))
            .flatten(),
        #[cfg(target_arch = "x86_64")]
        blocked: packs(Path::Blocked)
            .then(|| BlockedWeights::for_conv(wv, [o, cg, kh, kw], g, isa))
            .flatten(),
        #[cfg(target_arch = "x86_64")]
        shallow: packs(Path::Shallow)
            .then(|| ShallowWeights::for_conv(wv, [o, cg, kh, kw], g, isa))
            .flatten(),
        #[cfg(target_arch = "x86_64")]
        winograd: packs(Path::Winograd)
            .then(|| {
                let form = (a.strides, a.dilations);
                WinogradWeights::for_conv(wv, [o, cg, kh, kw], g, form, isa)
            })
            .flatten(),
    };
    weights.any().then_some(weights)
}

impl ConvWeights {
    /// The weight packed for the GEMM path, where it is.
    pub fn gemm(&self) -> Option<&PackedWeights> {
        self.gemm.as_ref()
    }

    fn any(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.blocked.is_some() || self.shallow.is_some() || self.winograd.is_some() {
            return true;
        }
        self.gemm.is_some()
    }
}
