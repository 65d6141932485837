//! A fully connected layer of a transformer, `MatMul(x, W) + b`, then optionally GELU, a
//! per-column scale (DINOv2's layer scale) and a residual, run as one plan step: the
//! epilogue is applied to each task's block of the product while it is in cache, instead of
//! by up to four more passes over the whole output (ViT-S: 72 bias Adds, 12 GELUs and 24
//! layer-scale Muls, each a pass over 0.4 to 1.6 MB). Each element takes the very operations
//! the unfused layers do, in their order, so the bits are theirs.

use super::activation::{gelu_erf, gelu_tanh};
use super::isa::Isa;
use super::matmul_packed::{with_packed_right, PackedRight};
use super::real::Real;
use crate::{RuntimeError, Tensor, TensorData};
use temblor_ir::{BinaryOp, DType, Graph, NodeId, Op, ValueRef};

/// What the step applies after the product, in this order.
#[derive(Debug)]
pub(crate) struct FullyConnected {
    right: PackedRight,
    bias: Vec<f32>,
    /// GELU, `tanh` for its approximation.
    gelu: Option<bool>,
    scale: Option<Vec<f32>>,
    residual: bool,
    /// The layers the step runs besides its own node, first to last.
    fused: Vec<String>,
}

impl FullyConnected {
    pub fn fused(&self) -> Vec<String> {
        self.fused.clone()
    }
}

/// The chain that ends at a node, found without packing anything.
struct Chain {
    matmul: NodeId,
    bias: ValueRef,
    gelu: Option<bool>,
    scale: Option<ValueRef>,
    residual: Option<ValueRef>,
    nodes: Vec<NodeId>,
}

/// The plan step node `id` becomes when it ends a fully connected chain, and what it reads:
/// the MatMul's left operand, then the residual if there is one. `None` where `id` is not
/// the end of such a chain, or the chain goes on past it (the step is made at its last
/// node, so the weight is packed once).
pub(crate) fn lower(
    g: &Graph,
    id: NodeId,
    isa: Isa,
) -> Option<(FullyConnected, Vec<Option<ValueRef>>)> {
    let found = chain(g, id)?;
    if let Some(next) = sole_reader(g, ValueRef::new(id, 0)) {
        if chain(g, next).is_some_and(|c| c.matmul == found.matmul) {
            return None;
        }
    }
    let chain = found;
    let weight = Tensor::from_weight(g.constant(g.input(chain.matmul, 1)?)?).ok()?;
    let right = PackedRight::new(&weight, isa)?;
    let n = right.dims().1;
    let bias = per_column(g, chain.bias, n)?;
    let scale = match chain.scale {
        Some(s) => Some(per_column(g, s, n)?),
        None => None,
    };
    let fused = chain.nodes[..chain.nodes.len() - 1]
        .iter()
        .map(|&n| g.node(n).name.clone())
        .collect();
    let reads = vec![g.input(chain.matmul, 0), chain.residual];
    let fc = FullyConnected {
        right,
        bias,
        gelu: chain.gelu,
        scale,
        residual: chain.residual.is_some(),
        fused,
    };
    Some((fc, reads))
}

/// Whether MatMul `id` begins a chain that [`lower`] makes one step of at its last node: the
/// MatMul's own step then never runs, and the plan packs its weight only for that step.
pub(crate) fn absorbs(g: &Graph, id: NodeId, isa: Isa) -> bool {
    let (mut at, mut end) = (id, None);
    while let Some(next) = sole_reader(g, ValueRef::new(at, 0)) {
        match chain(g, next) {
            Some(c) if c.matmul == id => (at, end) = (next, Some(c)),
            _ => break,
        }
    }
    let dims = |c: Chain| match g.constant(g.input(c.matmul, 1)?)?.dims[..] {
        [k, n] => Some((k, n)),
        _ => None,
    };
    end.and_then(dims)
        .is_some_and(|(k, n)| PackedRight::applies(k, n, isa))
}

/// The chain ending at `id`, when every value in it is f32 and of the product's shape, read
/// only by the next layer and not a graph output, and the weight, bias and scale are f32
/// constants that broadcast along the product's columns.
fn chain(g: &Graph, id: NodeId) -> Option<Chain> {
    let chain = chain_from(g, id)?;
    let inner_only = chain.nodes[..chain.nodes.len() - 1].iter().all(|&n| {
        let v = ValueRef::new(n, 0);
        sole_reader(g, v).is_some() && !g.outputs.iter().any(|o| o.value == v)
    });
    // Every layer's output is f32 and of the product's shape: a bias of higher rank than the
    // product would broadcast the sum to a shape the step does not make.
    let product = &g.value_type(ValueRef::new(chain.matmul, 0)).shape;
    let f32s = chain.nodes.iter().all(|&n| {
        let t = g.value_type(ValueRef::new(n, 0));
        t.dtype == DType::F32 && t.shape == *product
    });
    let weight = g.constant(g.input(chain.matmul, 1)?)?;
    let n = match weight.dims[..] {
        [_, n] if weight.dtype == DType::F32 => n,
        _ => return None,
    };
    let columns = |v: ValueRef| {
        g.constant(v)
            .is_some_and(|c| c.dtype == DType::F32 && broadcasts_along_columns(&c.dims, n))
    };
    let constants = columns(chain.bias) && chain.scale.is_none_or(columns);
    (inner_only && f32s && constants).then_some(chain)
}

/// The chain ending at `id` by its ops alone: MatMul, the bias Add, then GELU, the scale Mul
/// and the residual Add, each optional, in that order.
fn chain_from(g: &Graph, id: NodeId) -> Option<Chain> {
    if let Some(c) = body(g, id, None) {
        return Some(c);
    }
    if g.node(id).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let (a, b) = (g.input(id, 0)?, g.input(id, 1)?);
    let computed = |v: ValueRef| g.constant(v).is_none();
    if !(computed(a) && computed(b) && g.value_type(a).shape == g.value_type(b).shape) {
        return None;
    }
    // The residual is whichever operand is not the rest of the chain.
    let mut c = body(g, a.node, Some(b)).or_else(|| body(g, b.node, Some(a)))?;
    c.nodes.push(id);
    Some(c)
}

/// The chain up to and including node `at`: an optional scale Mul, before it an optional GELU,
/// before that the bias Add of a MatMul.
fn body(g: &Graph, mut at: NodeId, residual: Option<ValueRef>) -> Option<Chain> {
    let mut tail = Vec::new();
    let mut scale = None;
    if g.node(at).op == Op::Binary(BinaryOp::Mul) {
        let (x, s) = (g.input(at, 0)?, g.input(at, 1)?);
        g.constant(s)?;
        scale = Some(s);
        tail.push(at);
        at = x.node;
    }
    let mut gelu = None;
    if let Op::Gelu { tanh } = g.node(at).op {
        gelu = Some(tanh);
        tail.push(at);
        at = g.input(at, 0)?.node;
    }
    let (matmul, bias) = bias_add(g, at)?;
    let mut nodes = vec![matmul, at];
    nodes.extend(tail.into_iter().rev());
    Some(Chain {
        matmul,
        bias,
        gelu,
        scale,
        residual,
        nodes,
    })
}

/// `MatMul(x, W) + b` at node `add`, `W` a constant: the MatMul and the bias.
fn bias_add(g: &Graph, add: NodeId) -> Option<(NodeId, ValueRef)> {
    if g.node(add).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let (product, bias) = (g.input(add, 0)?, g.input(add, 1)?);
    let matmul = product.node;
    let is_matmul = g.node(matmul).op == Op::MatMul && g.constant(g.input(matmul, 1)?).is_some();
    (is_matmul && g.constant(bias).is_some()).then_some((matmul, bias))
}

/// Whether a constant of shape `dims` broadcasts along the last axis of an output `n` wide:
/// one value, or `n` values along that axis alone.
fn broadcasts_along_columns(dims: &[usize], n: usize) -> bool {
    let (last, lead) = dims.split_last().map_or((1, &[][..]), |(l, d)| (*l, d));
    lead.iter().all(|&d| d == 1) && (last == 1 || last == n)
}

/// The f32 values of constant `v`, one per column of an output `n` wide.
fn per_column(g: &Graph, v: ValueRef, n: usize) -> Option<Vec<f32>> {
    let t = Tensor::from_weight(g.constant(v)?).ok()?;
    match t.as_f32()? {
        [one] => Some(vec![*one; n]),
        values if values.len() == n => Some(values.to_vec()),
        _ => None,
    }
}

/// The node that reads `v` if it is one node, at one port, and `v` is no graph output.
fn sole_reader(g: &Graph, v: ValueRef) -> Option<NodeId> {
    match g.consumers(v)[..] {
        [(n, _)] if !g.outputs.iter().any(|o| o.value == v) => Some(n),
        _ => None,
    }
}

/// The step: the product of `x` and the packed weight, the epilogue applied task by task.
pub(crate) fn run(
    fc: &FullyConnected,
    x: &Tensor,
    residual: Option<&Tensor>,
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let (k, n) = fc.right.dims();
    let xv = x
        .as_f32()
        .ok_or_else(|| RuntimeError::bad_input("a fully connected layer's input must be f32"))?;
    if x.shape.last() != Some(&k) {
        return Err(RuntimeError::bad_input(format!(
            "MatMul inner dimensions differ: {:?} x {:?}",
            x.shape,
            [k, n]
        )));
    }
    let mut shape = x.shape[..x.shape.len() - 1].to_vec();
    shape.push(n);
    let residual = match (fc.residual, residual) {
        (false, _) => None,
        (true, Some(r)) if r.shape == shape => Some(r.as_f32().ok_or_else(|| {
            RuntimeError::bad_input("a fully connected layer's residual must be f32")
        })?),
        (true, r) => {
            return Err(RuntimeError::bad_input(format!(
                "the residual of a fully connected layer has shape {:?}, expected {shape:?}",
                r.map(|r| &r.shape)
            )))
        }
    };
    let rows = xv.len() / k;
    let mut out = f32::written(rows * n);
    let epilogue = |row: usize, first: usize, y: &mut [f32]| {
        let cols = first..first + y.len();
        let r = residual.map(|r| &r[row * n..][cols.clone()]);
        isa.widest(
            #[inline(always)]
            || apply(fc, cols, y, r),
        )
    };
    with_packed_right(rows, xv, &fc.right, &mut out, Some(&epilogue), isa);
    Ok(Tensor {
        shape,
        data: TensorData::F32(out),
    })
}

/// The epilogue of one row's columns `cols`, in the unfused layers' order: a pass each over
/// `y`, which is in L1.
#[inline(always)]
fn apply(fc: &FullyConnected, cols: std::ops::Range<usize>, y: &mut [f32], r: Option<&[f32]>) {
    let bias = &fc.bias[cols.clone()];
    match fc.gelu {
        None => y.iter_mut().zip(bias).for_each(|(e, &b)| *e += b),
        Some(false) => y
            .iter_mut()
            .zip(bias)
            .for_each(|(e, &b)| *e = gelu_erf(*e + b)),
        Some(true) => y
            .iter_mut()
            .zip(bias)
            .for_each(|(e, &b)| *e = gelu_tanh(*e + b)),
    }
    if let Some(s) = &fc.scale {
        y.iter_mut().zip(&s[cols]).for_each(|(e, &s)| *e *= s);
    }
    if let Some(r) = r {
        y.iter_mut().zip(r).for_each(|(e, &r)| *e += r);
    }
}
