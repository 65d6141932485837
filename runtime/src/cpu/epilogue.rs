//! The fused epilogue of a convolution, `affine(act(acc + bias + residual))`, applied to one output
//! row while it is still in cache, and the scalar activations it uses. These must be the very
//! functions the standalone f32 activation kernels (`activation.rs`) compute, so that fusing an
//! activation into a conv never changes a result; `tests/conv_epilogue.rs` checks that bit for bit.

use super::conv::SharedOut;
use super::int8_gemm::Quantizer;
use super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::isa::Level;
use super::math::{exp_f32, tanh_f32};
use super::quant;
use temblor_ir::{Activation, Affine};

#[inline(always)]
pub(crate) fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// Clamps to [0, 1], NaN passing through.
#[inline(always)]
fn clamp01(x: f32) -> f32 {
    x.clamp(0.0, 1.0)
}

/// Branch-free so that the loop vectorizes: `exp(-x)` may saturate for large |x|, where the
/// result is 0 or 1 to f32 precision anyway.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// `x * max(0, min(1, x/6 + 1/2))`, the ONNX HardSwish, with `x/6` as the spec writes it,
/// `alpha * x` for `alpha = 1/6` (a multiply where a division would cost several times more).
/// The clamp is two selects that drop a NaN, one `vmaxps` and one `vminps`: the clamped value
/// is NaN only where `x` is, and the product is then `x`'s NaN either way. Letting the NaN
/// through took a compare and a blend more a vector, in the epilogue of nearly every PicoDet
/// layer.
#[inline(always)]
pub(crate) fn hard_swish(x: f32) -> f32 {
    let v = x * (1.0 / 6.0) + 0.5;
    let v = if v > 0.0 { v } else { 0.0 };
    x * if v < 1.0 { v } else { 1.0 }
}

#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `ln(1 + e^x)` as `max(x, 0) + ln(1 + e^-|x|)`, which neither overflows nor loses small
/// values.
#[inline(always)]
fn softplus(x: f32) -> f32 {
    let positive = if x > 0.0 { x } else { 0.0 };
    positive + (-x.abs()).exp().ln_1p()
}

#[inline(always)]
pub(crate) fn mish(x: f32) -> f32 {
    x * tanh_f32(softplus(x))
}

#[inline(always)]
pub(crate) fn leaky_relu(x: f32, alpha: f32) -> f32 {
    if x < 0.0 {
        alpha * x
    } else {
        x
    }
}

#[inline(always)]
pub(crate) fn hard_sigmoid(x: f32, alpha: f32, beta: f32) -> f32 {
    clamp01(alpha * x + beta)
}

/// `min(max(x, min), max)`, NaN passing through; the IR's `f32::MIN` and `f32::MAX` stand for
/// absent bounds, so infinities pass them. With `min > max` every element becomes `max`, as
/// ONNX specifies.
#[inline(always)]
pub(crate) fn clip(x: f32, min: f32, max: f32) -> f32 {
    let x = if min != f32::MIN && x < min { min } else { x };
    if max != f32::MAX && x > max {
        max
    } else {
        x
    }
}

/// `row[i] = affine(act(row[i] + bias + residual[i]))` with each term only when given, in one
/// pass. The matches are outside the loops so each loop is a plain map the compiler can
/// vectorize; the sums are in the order the unfused ops add them, so the bits are theirs.
#[inline(always)]
pub(crate) fn finish(
    row: &mut [f32],
    bias: Option<f32>,
    residual: Option<&[f32]>,
    act: Option<Activation>,
    affine: Option<Affine>,
) {
    #[inline(always)]
    fn each(row: &mut [f32], bias: Option<f32>, residual: Option<&[f32]>, f: impl Fn(f32) -> f32) {
        // Plain loops, not `for_each`: its closure was compiled apart from the AVX2 caller,
        // for baseline x86-64, and SiLU's exp ran 4 lanes wide (13% of YOLOv8n).
        match (bias, residual) {
            (Some(b), Some(r)) => {
                for (e, &r) in row.iter_mut().zip(r) {
                    *e = f(*e + b + r);
                }
            }
            (Some(b), None) => {
                for e in row.iter_mut() {
                    *e = f(*e + b);
                }
            }
            (None, Some(r)) => {
                for (e, &r) in row.iter_mut().zip(r) {
                    *e = f(*e + r);
                }
            }
            (None, None) => {
                for e in row.iter_mut() {
                    *e = f(*e);
                }
            }
        }
    }
    #[inline(always)]
    fn then(
        row: &mut [f32],
        bias: Option<f32>,
        residual: Option<&[f32]>,
        affine: Option<Affine>,
        f: impl Fn(f32) -> f32,
    ) {
        match affine {
            Some(a) => each(row, bias, residual, |x| a.apply(f(x))),
            None => each(row, bias, residual, f),
        }
    }
    let (b, r, t) = (bias, residual, affine);
    match act {
        None => each(row, b, r, |x| x),
        Some(Activation::Relu) => then(row, b, r, t, relu),
        Some(Activation::Sigmoid) => then(row, b, r, t, sigmoid),
        Some(Activation::HardSwish) => then(row, b, r, t, hard_swish),
        Some(Activation::Silu) => then(row, b, r, t, silu),
        Some(Activation::Mish) => then(row, b, r, t, mish),
        Some(Activation::LeakyRelu { alpha }) => then(row, b, r, t, |x| leaky_relu(x, alpha)),
        Some(Activation::HardSigmoid { alpha, beta }) => {
            then(row, b, r, t, |x| hard_sigmoid(x, alpha, beta))
        }
        Some(Activation::Clip { min, max }) => then(row, b, r, t, |x| clip(x, min, max)),
    }
}

/// What a convolution does to its accumulated output before storing it.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a> {
    /// The plan's instruction set: the epilogue's loops, and the depthwise stencils it
    /// finishes, are compiled for it.
    pub isa: Isa,
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    /// The whole residual tensor, laid out like the output.
    pub residual: Option<&'a [f32]>,
    pub activation: Option<Activation>,
    /// After the activation; only with one (the IR fuses it only there).
    pub affine: Option<Affine>,
    /// Where the finished output is also stored quantized, when the layers that read it are
    /// int8 ones that would quantize it first ([`super::plan`]'s `bytes_between_layers`).
    pub bytes: Option<Bytes<'a>>,
}

/// A convolution's output quantized by `quantizer` into `out`, laid out like the f32 output.
#[derive(Clone, Copy)]
pub(crate) struct Bytes<'a> {
    pub quantizer: Quantizer,
    pub out: &'a SharedOut<'a, u8>,
}

impl Epilogue<'_> {
    /// Whether the output is stored as bytes only ([`super::conv::output`] then gives back the
    /// f32 one): the kernels that can then finish their sums in scratch of their own, and never
    /// write the f32 output, which for an int8 layer is four times the bytes it keeps.
    pub fn bytes_only(&self) -> bool {
        self.bytes.is_some()
    }

    /// Finishes `row`, the outputs of channel `channel` (of the whole tensor's channels)
    /// starting at flat element `offset` of the output.
    pub fn apply(&self, channel: usize, offset: usize, row: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        match self.isa.level() {
            // SAFETY: an `Isa` of a level is only made on a machine that has its instructions.
            Level::Avx512 => return unsafe { self.apply_avx512(channel, offset, row) },
            // SAFETY: as above.
            Level::Avx2Fma => return unsafe { self.apply_avx2(channel, offset, row) },
            Level::Scalar => {}
        }
        self.apply_any(channel, offset, row)
    }

    /// [`Epilogue::apply`] compiled for AVX2: the build targets baseline x86-64, whose 4-lane
    /// vectors made the epilogue a visible share of a convolution. Without fused multiply-add
    /// contraction (Rust never contracts), the wider loops compute the very same bits, and the
    /// explicit `mul_add`s of [`super::math`] become FMA instructions.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn apply_avx2(&self, channel: usize, offset: usize, row: &mut [f32]) {
        self.apply_any(channel, offset, row)
    }

    /// [`Epilogue::apply`] 16 lanes wide: SiLU's exp and division in 8 lanes were a fifth of
    /// YOLOv8n's time on an AVX-512 machine. The same bits again, for the same reason.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(&self, channel: usize, offset: usize, row: &mut [f32]) {
        self.apply_any(channel, offset, row)
    }

    #[inline(always)]
    fn apply_any(&self, channel: usize, offset: usize, row: &mut [f32]) {
        let residual = self.residual.map(|r| &r[offset..offset + row.len()]);
        finish(
            row,
            self.bias.map(|b| b[channel]),
            residual,
            self.activation,
            self.affine,
        );
        if let Some(bytes) = self.bytes {
            // SAFETY: the convolutions finish each output element once, from one task, so
            // this row's bytes are no other call's.
            let out = unsafe { bytes.out.segment(offset, row.len()) };
            quant::bytes_of_row(self.isa, bytes.quantizer, row, out);
        }
    }
}
