use crate::DType;
use serde::{Deserialize, Serialize};

/// One dimension: a known extent, or a named symbol (a dynamic batch, or an input dimension the
/// user did not fix). Symbols propagate unchanged through ops that keep the dimension; a
/// dimension that shape inference cannot express is [`Dim::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dim {
    Known(usize),
    Symbol(String),
    Unknown,
}

impl Dim {
    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            _ => None,
        }
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A tensor shape. An unknown rank is not representable: every frontend must give one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn from_known(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Known(d)).collect())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// All extents, when every dimension is known.
    pub fn known(&self) -> Option<Vec<usize>> {
        self.0.iter().map(Dim::known).collect()
    }

    pub fn dims(&self) -> &[Dim] {
        &self.0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("x")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// How the dimensions of a tensor are to be read. Only a tag: kernels and passes use it to
/// check their assumptions and the views show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layout {
    #[default]
    Any,
    NCHW,
    /// Convolution weights: output channels, input channels per group, kernel height, width.
    OIHW,
    /// Transposed convolution weights: input channels, output channels per group, kernel.
    IOHW,
    /// A per-channel vector (bias, batch-norm parameters).
    C,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Any => "any",
            Layout::NCHW => "NCHW",
            Layout::OIHW => "OIHW",
            Layout::IOHW => "IOHW",
            Layout::C => "C",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
    pub layout: Layout,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Shape) -> TensorType {
        TensorType {
            dtype,
            shape,
            layout: Layout::Any,
        }
    }
}

/// A named output value of a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub name: String,
    pub ty: TensorType,
}
