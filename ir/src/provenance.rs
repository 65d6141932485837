use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Onnx,
    Paddle,
    /// Built in code (tests, passes that synthesize a node with no source counterpart).
    Temblor,
}

impl Framework {
    pub fn name(self) -> &'static str {
        match self {
            Framework::Onnx => "onnx",
            Framework::Paddle => "paddle",
            Framework::Temblor => "temblor",
        }
    }
}

/// Index into the graph's origin table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OriginId(pub u32);

/// One node of the source model, as the framework wrote it. Errors and views point here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub framework: Framework,
    pub node_name: String,
    pub op_type: String,
    /// The model file the node was read from.
    pub file: String,
}

/// Where a node came from: the source nodes whose computation it carries, and the pass that
/// made it (`None` for nodes as imported).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub origins: Vec<OriginId>,
    pub made_by: Option<String>,
}

impl Provenance {
    pub fn imported(origin: OriginId) -> Provenance {
        Provenance {
            origins: vec![origin],
            made_by: None,
        }
    }

    /// The provenance of a node that a pass built from several others: the union of their
    /// origins, in order, without repeats.
    pub fn merged<'a>(pass: &str, parts: impl IntoIterator<Item = &'a Provenance>) -> Provenance {
        let mut origins = Vec::new();
        for p in parts {
            for o in &p.origins {
                if !origins.contains(o) {
                    origins.push(*o);
                }
            }
        }
        Provenance {
            origins,
            made_by: Some(pass.to_string()),
        }
    }
}
