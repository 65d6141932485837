use serde::{Deserialize, Serialize};

/// A source attribute kept verbatim from the framework that wrote the model, so the parse view
/// can show the graph as its author knows it. Canonical semantics never read these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrValue {
    Int(i64),
    Float(f32),
    String(String),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Strings(Vec<String>),
    /// A tensor-valued attribute, shown by dtype and shape only.
    Tensor {
        dtype: String,
        dims: Vec<i64>,
    },
}
