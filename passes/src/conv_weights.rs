//! Where a convolution's output channels lie in its weight, for the folds that scale them
//! (BatchNorm, per-channel affine layers).

use temblor_ir::{Graph, Layout, NodeId, Op};

/// Where the output channels lie in a convolution's weight.
#[derive(Clone, Copy)]
pub(crate) enum Rows {
    /// `[O, C/g, kH, kW]` (Conv, DeformConv): channel `o` owns the `o`th row.
    Leading,
    /// `[C, O/g, kH, kW]` (ConvTranspose): input channel `c` belongs to group `c / (C/g)`, and
    /// index `j` of axis 1 is output channel `group * O/g + j`.
    Grouped { group: usize },
}

impl Rows {
    /// The number of output channels of a weight of `dims`, when the dims fit.
    pub(crate) fn channels(self, dims: &[usize]) -> Option<usize> {
        match (self, dims) {
            (Rows::Leading, &[o, _, ..]) => Some(o),
            (Rows::Grouped { group }, &[c, og, ..]) if group > 0 && c % group == 0 => {
                Some(og * group)
            }
            _ => None,
        }
    }

    pub(crate) fn layout(self) -> Layout {
        match self {
            Rows::Leading => Layout::OIHW,
            Rows::Grouped { .. } => Layout::IOHW,
        }
    }

    /// The output channel that the weight element at flat `index` contributes to.
    pub(crate) fn channel_of(self, dims: &[usize], index: usize) -> usize {
        let taps: usize = dims[2..].iter().product();
        match self {
            Rows::Leading => index / (dims[1] * taps),
            Rows::Grouped { group } => {
                let (c, og) = (dims[0], dims[1]);
                let (input, j) = (index / (og * taps), index / taps % og);
                input / (c / group) * og + j
            }
        }
    }
}

/// How a per-output-channel scale and shift fold into layer `id`: its weight rows and its bias
/// port. A Conv or ConvTranspose with a fused activation, or a Conv with a residual, does not, as
/// the scale would have to pass through them.
pub(crate) fn form(g: &Graph, id: NodeId) -> Option<(Rows, usize)> {
    match &g.node(id).op {
        Op::Conv(a) if a.activation.is_none() && g.input(id, 3).is_none() => {
            Some((Rows::Leading, 2))
        }
        Op::DeformConv(_) => Some((Rows::Leading, 3)),
        Op::ConvTranspose(a) if a.activation.is_none() => {
            Some((Rows::Grouped { group: a.group }, 2))
        }
        _ => None,
    }
}
