//! Lowering one node of a specialized graph (every shape known) to the GPU work that computes
//! it: kernel launches of the NVRTC modules, cuBLAS GEMMs, copies. A lowering sees its node's
//! operands through a [`Cx`] (shapes, dtypes, where each lives, and the values known before
//! the run: weights and shape computations) and names buffers, never addresses: the program
//! places them (`program.rs`) and the driver resolves them per run state (`driver.rs`), so all
//! of this is plain data, checked on machines without a GPU.
//!
//! A node with no lowering here runs on the host, through the CPU kernel of the same op, with
//! its operands copied across: every graph the CPU runs, the CUDA backend runs, and the report
//! names what ran where. One file per op family; [`lower`] is the one match over ops.

mod blas;
mod conv;
mod elementwise;
mod half;
mod library;
mod movement;
mod normalize;
pub(crate) mod params;
pub(crate) use library::ragged;
mod pool;
mod quant;
mod resize;

use crate::Tensor;
use temblor_ir::{DType, Op};

/// A buffer as a lowering names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Buf {
    /// An input (by port) of the node being lowered.
    Input(usize),
    /// An output (by port) of the node being lowered.
    Output(usize),
    /// Scratch memory of the node, by the index [`Cx::scratch`] returned: alive for this node's
    /// work only.
    Scratch(usize),
    /// A constant the lowering made (a repacked weight, a table), by the index
    /// [`Cx::derive`] returned: uploaded once per plan.
    Derived(usize),
}

/// A device pointer: `bytes` past the start of `buf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct At {
    pub buf: Buf,
    pub bytes: usize,
}

impl Buf {
    /// The buffer's start.
    pub fn at(self) -> At {
        At {
            buf: self,
            bytes: 0,
        }
    }

    /// `bytes` past the buffer's start.
    pub fn offset(self, bytes: usize) -> At {
        At { buf: self, bytes }
    }
}

/// One argument of a kernel, as the kernel's C signature takes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Ptr(At),
    /// A null pointer, for an optional operand the kernel skips.
    Null,
    I32(i32),
    I64(i64),
    F32(f32),
    /// A parameter struct by value: the bytes of its `#[repr(C)]` mirror (`params.rs`).
    Pod(Vec<u8>),
}

/// One kernel launch. `function` is the kernel's `extern "C"` name in the modules of
/// `sources.rs`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Launch {
    pub function: &'static str,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
    pub args: Vec<Arg>,
}

/// Threads per block of the grid-stride kernels.
pub(crate) const BLOCK: u32 = 256;

/// Blocks of a grid-stride launch over `n` elements: one thread each up to a grid that fills
/// any current GPU many times over (the kernels loop over the rest).
pub(crate) fn grid_stride(function: &'static str, n: usize, args: Vec<Arg>) -> Launch {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, 65_535);
    Launch {
        function,
        grid: [blocks as u32, 1, 1],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
        args,
    }
}

/// The element type of a [`Gemm`]'s `A` and `B`; `C` and the arithmetic are f32 either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum GemmInputs {
    F32,
    /// f16, whose products are exact in f32: what the CPU computes on widened halves, on the
    /// GPU's tensor cores.
    F16,
}

impl GemmInputs {
    pub fn size_bytes(self) -> usize {
        match self {
            GemmInputs::F32 => 4,
            GemmInputs::F16 => 2,
        }
    }
}

/// `C[i] = alpha * op(A[i]) · op(B[i]) + beta * C[i]` for `i < batch`, `C` f32, every matrix
/// row-major (the driver turns it into cuBLAS's column-major call). `op(A)` is `m x k`, `op(B)` is
/// `k x n`, `C` is `m x n`; a transposed operand is stored as its transpose (`k x m`, `n x k`).
/// Leading dimensions and strides are in elements.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub a: At,
    pub a_transposed: bool,
    pub lda: usize,
    pub stride_a: usize,
    pub b: At,
    pub b_transposed: bool,
    pub ldb: usize,
    pub stride_b: usize,
    pub c: At,
    pub ldc: usize,
    pub stride_c: usize,
    pub alpha: f32,
    pub beta: f32,
    pub inputs: GemmInputs,
}

/// One piece of GPU work, in stream order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Work {
    Launch(Launch),
    Gemm(Gemm),
    Copy { from: At, to: At, bytes: usize },
    Zero { to: At, bytes: usize },
}

/// What a node becomes on the GPU.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Lowering {
    /// This work, in order, writes every output.
    Work(Vec<Work>),
    /// The node's only output is its input `port`'s bytes as they are (Reshape, Flatten,
    /// Squeeze, Unsqueeze): the output shares the input's memory.
    Alias { input: usize },
}

/// Why a node runs on the host instead: named in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unsupported(pub String);

impl Unsupported {
    pub fn new(why: impl Into<String>) -> Unsupported {
        Unsupported(why.into())
    }
}

/// A node's input or output as the lowering sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand<'a> {
    pub dtype: DType,
    pub shape: &'a [usize],
    /// The value itself when it is known before any run: a weight, or a value computed only
    /// from weights and shapes (a Reshape's target, a Resize's scales). A known input is also
    /// on the device, uploaded once, so a lowering may read it either way.
    pub known: Option<&'a Tensor>,
}

impl Operand<'_> {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> usize {
        self.elements() * self.dtype.size_bytes()
    }
}

/// What a lowering sees of its node, and what it may ask for.
pub(crate) struct Cx<'a> {
    inputs: Vec<Option<Operand<'a>>>,
    outputs: Vec<Operand<'a>>,
    pub(crate) scratch: Vec<usize>,
    pub(crate) derived: Vec<Tensor>,
}

impl<'a> Cx<'a> {
    pub fn new(inputs: Vec<Option<Operand<'a>>>, outputs: Vec<Operand<'a>>) -> Cx<'a> {
        Cx {
            inputs,
            outputs,
            scratch: Vec::new(),
            derived: Vec::new(),
        }
    }

    /// Input `port`; a node missing a required input is not lowered.
    pub fn input(&self, port: usize) -> Result<Operand<'a>, Unsupported> {
        self.inputs
            .get(port)
            .copied()
            .flatten()
            .ok_or_else(|| Unsupported::new(format!("input {port} is missing")))
    }

    /// Input `port` when given.
    pub fn optional(&self, port: usize) -> Option<Operand<'a>> {
        self.inputs.get(port).copied().flatten()
    }

    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    pub fn output(&self, port: usize) -> Operand<'a> {
        self.outputs[port]
    }

    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// Input `port`'s value, which must be known before the run (a Slice's starts, a Pad's
    /// pads): read as i64s, whatever integer type it has.
    pub fn known_ints(&self, port: usize) -> Result<Vec<i64>, Unsupported> {
        let known = self.input(port)?.known.ok_or_else(|| {
            Unsupported::new(format!(
                "input {port} is computed in the run, not known before"
            ))
        })?;
        known
            .to_i64s()
            .ok_or_else(|| Unsupported::new(format!("input {port} is not integers")))
    }

    /// `bytes` of scratch memory for this node's work.
    pub fn scratch(&mut self, bytes: usize) -> Buf {
        self.scratch.push(bytes);
        Buf::Scratch(self.scratch.len() - 1)
    }

    /// A constant the node's work reads, uploaded once per plan.
    pub fn derive(&mut self, value: Tensor) -> Buf {
        self.derived.push(value);
        Buf::Derived(self.derived.len() - 1)
    }

    /// Every input and output is f32: what most kernels here take.
    pub fn all_f32(&self) -> Result<(), Unsupported> {
        let ins = self.inputs.iter().flatten();
        match ins.chain(&self.outputs).find(|o| o.dtype != DType::F32) {
            Some(o) => Err(Unsupported::new(format!("{:?} operands", o.dtype))),
            None => Ok(()),
        }
    }
}

/// The GPU work of one node, or why it has none. A node reading f16 or bf16 values is lowered
/// as the CPU computes it: widened to f32 around its f32 lowering (`half.rs`), unless it only
/// moves values, which its own lowering does whatever the element type, or is an f16 product
/// the tensor cores compute as the CPU does ([`on_tensor_cores`]).
pub(crate) fn lower(op: &Op, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    if half::widens(op, cx) {
        let (scratch, derived) = (cx.scratch.len(), cx.derived.len());
        if let Ok(lowering) = on_tensor_cores(op, cx) {
            return Ok(lowering);
        }
        cx.scratch.truncate(scratch);
        cx.derived.truncate(derived);
        return half::widened(cx, |inner| direct(op, inner));
    }
    direct(op, cx)
}

/// An f16 Conv or MatMul as f16 x f16 GEMMs summing in f32, whose products are exact as the
/// CPU's on widened values are: only the summation order differs from the CPU, as in f32. bf16
/// has no such lowering and stays widened.
fn on_tensor_cores(op: &Op, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    match op {
        Op::Conv(a) => conv::conv_half(a, cx),
        Op::MatMul => blas::matmul_half(cx),
        other => Err(Unsupported::new(format!(
            "no f16 lowering of {}",
            other.name()
        ))),
    }
}

/// The one match over ops: each op's lowering, on the operands as they are.
fn direct(op: &Op, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    match op {
        Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze => {
            Ok(Lowering::Alias { input: 0 })
        }
        Op::Conv(a) => conv::conv(a, cx),
        Op::ConvTranspose(a) => conv::conv_transpose(a, cx),
        Op::MatMul => blas::matmul(cx),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => blas::gemm(*alpha, *beta, *trans_a, *trans_b, cx),
        Op::Unary(u) => elementwise::unary(*u, cx),
        Op::LeakyRelu { alpha } => elementwise::leaky_relu(*alpha, cx),
        Op::HardSigmoid { alpha, beta } => elementwise::hard_sigmoid(*alpha, *beta, cx),
        Op::Clip { min, max } => elementwise::clip(*min, *max, cx),
        Op::Gelu { tanh } => elementwise::gelu(*tanh, cx),
        Op::Binary(b) => elementwise::binary(*b, cx),
        Op::Cast { to } => elementwise::cast(*to, cx),
        Op::Concat { axis } => movement::concat(*axis, cx),
        Op::Split { axis, .. } => movement::split(*axis, cx),
        Op::Transpose { perm } => movement::transpose(perm, cx),
        Op::Slice => movement::slice(cx),
        Op::Expand => movement::expand(cx),
        Op::Gather { axis } => movement::gather(*axis, cx),
        Op::Pad { mode } => movement::pad(*mode, cx),
        Op::Resize(a) => resize::resize(a, cx),
        Op::MaxPool(a) => pool::max_pool(a, cx),
        Op::AveragePool(a) => pool::average_pool(a, cx),
        Op::GlobalAveragePool => pool::global_average_pool(cx),
        Op::GlobalMaxPool => pool::global_max_pool(cx),
        Op::Reduce {
            op,
            keepdims,
            noop_with_empty_axes,
        } => normalize::reduce(*op, *keepdims, *noop_with_empty_axes, cx),
        Op::Softmax { axis, log, flatten } => normalize::softmax(*axis, *log, *flatten, cx),
        Op::LayerNorm { axis, epsilon } => normalize::layer_norm(*axis, *epsilon, cx),
        Op::BatchNorm { epsilon } => normalize::batch_norm(*epsilon, cx),
        Op::QuantizeLinear { axis, saturate } => quant::quantize(*axis, *saturate, cx),
        Op::DequantizeLinear { axis } => quant::dequantize(*axis, cx),
        Op::Lib(_)
        | Op::RoiAlign(_)
        | Op::DeformConv(_)
        | Op::DeformSample(_)
        | Op::GridSample { .. } => library::lower(op, cx),
        other => Err(Unsupported::new(format!(
            "no CUDA kernel for {} yet",
            other.name()
        ))),
    }
}
