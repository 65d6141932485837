//! The fused epilogue of a convolution, `act(acc + bias + residual)`, applied to one output row
//! while it is still in cache, and the scalar activations it uses. The standalone activation
//! kernels must compute the very same functions (they are bit-identical by construction when
//! they call these), so fusing an activation into a conv never changes a result.

use temblor_ir::Activation;

pub(crate) fn relu(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Split by sign so that `exp` never overflows to infinity for large |x|.
pub(crate) fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `x * max(0, min(1, x/6 + 1/2))`, the ONNX HardSwish (HardSigmoid with alpha 1/6, beta 1/2).
pub(crate) fn hard_swish(x: f32) -> f32 {
    x * (x / 6.0 + 0.5).clamp(0.0, 1.0)
}

pub(crate) fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `x * tanh(softplus(x))`; `ln_1p(exp(x))` is exact for small `exp(x)`, and for large `x` it
/// goes to infinity, where `tanh` gives 1, as it should.
pub(crate) fn mish(x: f32) -> f32 {
    x * x.exp().ln_1p().tanh()
}

pub(crate) fn leaky_relu(x: f32, alpha: f32) -> f32 {
    if x < 0.0 {
        alpha * x
    } else {
        x
    }
}

pub(crate) fn hard_sigmoid(x: f32, alpha: f32, beta: f32) -> f32 {
    (alpha * x + beta).clamp(0.0, 1.0)
}

/// `f32::clamp` panics when `min > max`; ONNX then gives `max` everywhere, as this does.
pub(crate) fn clip(x: f32, min: f32, max: f32) -> f32 {
    x.max(min).min(max)
}

/// Applies `act` to every element of `v`. The match is outside the loops so each loop is a
/// plain map the compiler can vectorize.
pub(crate) fn activate(act: Activation, v: &mut [f32]) {
    fn each(v: &mut [f32], f: impl Fn(f32) -> f32) {
        v.iter_mut().for_each(|e| *e = f(*e));
    }
    match act {
        Activation::Relu => each(v, relu),
        Activation::Sigmoid => each(v, sigmoid),
        Activation::HardSwish => each(v, hard_swish),
        Activation::Silu => each(v, silu),
        Activation::Mish => each(v, mish),
        Activation::LeakyRelu { alpha } => each(v, |x| leaky_relu(x, alpha)),
        Activation::HardSigmoid { alpha, beta } => each(v, |x| hard_sigmoid(x, alpha, beta)),
        Activation::Clip { min, max } => each(v, |x| clip(x, min, max)),
    }
}

/// What a convolution does to its accumulated output before storing it.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a> {
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    /// The whole residual tensor, laid out like the output.
    pub residual: Option<&'a [f32]>,
    pub activation: Option<Activation>,
}

impl Epilogue<'_> {
    /// Finishes `row`, the outputs of channel `channel` (of the whole tensor's channels)
    /// starting at flat element `offset` of the output.
    pub fn apply(&self, channel: usize, offset: usize, row: &mut [f32]) {
        if let Some(b) = self.bias {
            let b = b[channel];
            row.iter_mut().for_each(|e| *e += b);
        }
        if let Some(r) = self.residual {
            let len = row.len();
            row.iter_mut()
                .zip(&r[offset..offset + len])
                .for_each(|(e, &r)| *e += r);
        }
        if let Some(act) = self.activation {
            activate(act, row);
        }
    }
}
