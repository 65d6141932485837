//! Attribute structs and enums of the canonical ops.

use crate::DType;
use serde::{Deserialize, Serialize};

/// ONNX `auto_pad` SAME, where the pads depend on the input's extent (a stride above 1): the
/// output extent is `ceil(input / stride)` and the padding that needs is split evenly, the odd
/// one at the end (upper) or the start (lower). Shape inference replaces it by explicit pads
/// once the extent is known; the CPU kernels compute the pads at run time otherwise. VALID, and
/// SAME at stride 1, never depend on the extent: the frontends write those as explicit pads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoPad {
    /// The pads are explicit.
    #[default]
    NotSet,
    SameUpper,
    SameLower,
}

impl AutoPad {
    /// Begin and end pads of an axis of extent `input` under SAME; `None` for explicit pads.
    pub fn same(
        self,
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
    ) -> Option<(usize, usize)> {
        let upper = match self {
            AutoPad::NotSet => return None,
            AutoPad::SameUpper => true,
            AutoPad::SameLower => false,
        };
        let eff = kernel
            .saturating_sub(1)
            .saturating_mul(dilation)
            .saturating_add(1);
        let out = input.div_ceil(stride.max(1));
        let total = (out.max(1) - 1)
            .saturating_mul(stride)
            .saturating_add(eff)
            .saturating_sub(input);
        let small = total / 2;
        Some(if upper {
            (small, total - small)
        } else {
            (total - small, small)
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvAttrs {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// top, left, bottom, right (ONNX order: begins then ends).
    pub pads: [usize; 4],
    /// When not `NotSet`, `pads` is computed from the input's extent (see [`AutoPad`]).
    #[serde(default)]
    pub auto_pad: AutoPad,
    pub group: usize,
    /// A fused epilogue: applied to `conv(x) + bias (+ residual)` before the result is stored.
    pub activation: Option<Activation>,
    /// Applied after the activation; only a conv with one has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affine: Option<Affine>,
}

/// `y * scale + shift` with scalar constants, after a conv's activation: the Mul and Add that
/// PP-LCNetV3's learnable affine blocks put after each activation, where they cannot fold into
/// the weights. `scale = 1` and `shift = -0` leave every f32 (`-0` included) as it is, so a
/// lone Mul or Add fuses with the other at that identity and the bits stay the unfused layers'.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    pub scale: f32,
    pub shift: f32,
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        scale: 1.0,
        shift: -0.0,
    };

    #[inline(always)]
    pub fn apply(self, y: f32) -> f32 {
        y * self.scale + self.shift
    }
}

/// Activations a convolution can apply in its epilogue. Each is the same function as the
/// standalone op of that name.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Sigmoid,
    HardSwish,
    /// `x * sigmoid(x)`.
    Silu,
    Mish,
    LeakyRelu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    Clip {
        min: f32,
        max: f32,
    },
}

impl Activation {
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::HardSwish => "hard_swish",
            Activation::Silu => "silu",
            Activation::Mish => "mish",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::HardSigmoid { .. } => "hard_sigmoid",
            Activation::Clip { .. } => "clip",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvTransposeAttrs {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// top, left, bottom, right.
    pub pads: [usize; 4],
    pub output_padding: [usize; 2],
    pub group: usize,
    /// A fused epilogue: applied to `conv_transpose(x) + bias` before the result is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    Nearest,
    Linear,
    /// Keys' cubic convolution with coefficient [`ResizeAttrs::cubic_coeff_a`].
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeCoordinate {
    HalfPixel,
    /// Half pixels, centred on the input: the output's excess or shortfall is split evenly.
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    /// Samples the region of interest (the roi operand, normalized to `[0, 1]`); positions
    /// outside the input read [`ResizeAttrs::extrapolation_value`].
    TfCropAndResize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeNearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// How `sizes` is taken when the aspect ratio of the resized axes would change (opset 18).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeAspect {
    /// Each axis to its given size.
    #[default]
    Stretch,
    /// One scale for every resized axis, the largest that fits inside the sizes.
    NotLarger,
    /// One scale for every resized axis, the smallest that covers the sizes.
    NotSmaller,
}

fn cubic_coeff_default() -> f32 {
    -0.75
}

/// Resize (ONNX 11 to 19). Operands, as in ONNX: x, optional roi, optional scales (f32),
/// optional sizes (int64); exactly one of scales and sizes is non-empty. They stay operands so
/// that a model computing them (`Shape -> Gather -> Concat`, what PyTorch writes for
/// `interpolate(size=...)`) compiles: shape inference reads them when they are constants, and
/// the kernel reads them at run time. With `axes`, roi, scales and sizes give only those axes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResizeAttrs {
    pub mode: ResizeMode,
    pub coordinate: ResizeCoordinate,
    pub nearest: ResizeNearest,
    #[serde(default = "cubic_coeff_default")]
    pub cubic_coeff_a: f32,
    /// Cubic: taps outside the input get weight 0 and the rest are renormalized.
    #[serde(default)]
    pub exclude_outside: bool,
    #[serde(default)]
    pub extrapolation_value: f32,
    /// Linear and cubic when downscaling: the filter is stretched by `1 / scale`, so that every
    /// input pixel contributes (a low-pass filter, as PIL and TensorFlow resize).
    #[serde(default)]
    pub antialias: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axes: Option<Vec<i64>>,
    #[serde(default)]
    pub aspect: ResizeAspect,
}

impl ResizeAttrs {
    /// The plain attributes of `mode` and `coordinate`: ONNX's defaults for the rest.
    pub fn new(mode: ResizeMode, coordinate: ResizeCoordinate, nearest: ResizeNearest) -> Self {
        ResizeAttrs {
            mode,
            coordinate,
            nearest,
            cubic_coeff_a: cubic_coeff_default(),
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: None,
            aspect: ResizeAspect::Stretch,
        }
    }
}

/// Pooling window over the trailing spatial axes (any count: 1-D, 2-D, 3-D).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolAttrs {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Begins then ends, one per spatial axis each (ONNX order).
    pub pads: Vec<usize>,
    /// When not `NotSet`, `pads` is computed from the input's extent (see [`AutoPad`]).
    #[serde(default)]
    pub auto_pad: AutoPad,
    pub ceil_mode: bool,
    /// AveragePool: padded cells count in the divisor.
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReduceOp {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScatterReduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridSampleMode {
    Linear,
    Nearest,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridSamplePadding {
    Zeros,
    Border,
    Reflection,
}

/// Deformable convolution (ONNX DeformConv 19, Paddle deformable_conv v2), and its sampling
/// alone ([`super::Op::DeformSample`]), which has no weight and ignores `group`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeformConvAttrs {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// top, left, bottom, right.
    pub pads: [usize; 4],
    pub group: usize,
    pub offset_group: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoiAlignAttrs {
    /// Max pooling of the samples in a bin instead of their mean.
    pub max: bool,
    pub output_height: usize,
    pub output_width: usize,
    /// Samples per bin side; 0 means adaptive (`ceil(roi_size / output_size)`).
    pub sampling_ratio: usize,
    pub spatial_scale: f32,
    /// ONNX 16's `half_pixel` (Paddle's `aligned`): shift the box by half a pixel.
    pub half_pixel: bool,
}

/// A scalar fill value with its dtype (ConstantOfShape).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scalar {
    pub dtype: DType,
    pub value: f64,
}

impl ConvAttrs {
    /// These attributes with SAME pads made explicit for an input of spatial extent `hw`.
    pub fn resolved(&self, hw: [usize; 2]) -> ConvAttrs {
        let mut a = self.clone();
        for (i, &n) in hw.iter().enumerate() {
            if let Some((b, e)) =
                self.auto_pad
                    .same(n, self.kernel[i], self.strides[i], self.dilations[i])
            {
                (a.pads[i], a.pads[i + 2]) = (b, e);
            }
        }
        a.auto_pad = AutoPad::NotSet;
        a
    }
}

impl PoolAttrs {
    /// These attributes with SAME pads made explicit for an input of spatial extents `spatial`
    /// (one per window axis).
    pub fn resolved(&self, spatial: &[usize]) -> PoolAttrs {
        let mut a = self.clone();
        let k = self.kernel.len();
        for (i, &n) in spatial.iter().enumerate().take(k) {
            if let Some((b, e)) =
                self.auto_pad
                    .same(n, self.kernel[i], self.strides[i], self.dilations[i])
            {
                (a.pads[i], a.pads[k + i]) = (b, e);
            }
        }
        a.auto_pad = AutoPad::NotSet;
        a
    }
}

/// A body of a control-flow op: an index into [`crate::Graph::bodies`] of the graph holding the
/// op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BodyId(pub usize);

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoopAttrs {
    pub body: BodyId,
    /// How many loop-carried values the loop has; the inputs after them are captured values,
    /// the body outputs after them scan outputs.
    pub carried: usize,
}
