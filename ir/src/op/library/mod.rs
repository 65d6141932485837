//! The ops_lib operators as IR ops ([`crate::Op::Lib`]): PaddleDetection's detection operators,
//! which keep Paddle's semantics, input order and attribute names. The frontend parses Paddle's
//! attributes into a [`LibOp`] once, at import, so passes match on types and shape rules and
//! kernels (in ops_lib, which the IR does not depend on) take the typed attributes.

mod detection;
mod paddle_attrs;

pub use detection::{
    DistributeFpnAttrs, GenerateProposalsAttrs, MatrixNmsAttrs, MulticlassNmsAttrs, YoloBoxAttrs,
};

use crate::AttrValue;
use paddle_attrs::Attrs;
use serde::{Deserialize, Serialize};

/// One ops_lib operator with its typed attributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibOp {
    YoloBox(YoloBoxAttrs),
    MulticlassNms(MulticlassNmsAttrs),
    MatrixNms(MatrixNmsAttrs),
    GenerateProposals(GenerateProposalsAttrs),
    DistributeFpnProposals(DistributeFpnAttrs),
    /// temblor's own: the batch index of each RoI from per-image RoI counts.
    RoisBatchIndex,
}

const YOLO_BOX: &str = "yolo_box";
const MULTICLASS_NMS3: &str = "multiclass_nms3";
const MATRIX_NMS: &str = "matrix_nms";
const GENERATE_PROPOSALS_V2: &str = "generate_proposals_v2";
const DISTRIBUTE_FPN_PROPOSALS: &str = "distribute_fpn_proposals";
const ROIS_BATCH_INDEX: &str = "rois_batch_index";

impl LibOp {
    /// The domain the views show ops_lib operators in, and the one packages written before they
    /// were typed (`Op::Custom`) name them by.
    pub const DOMAIN: &'static str = "temblor.ops_lib";

    /// Parses Paddle's op type and attributes; the error names the attribute that is missing or
    /// wrong.
    pub fn parse(name: &str, attrs: &[(String, AttrValue)]) -> Result<LibOp, String> {
        Ok(match name {
            YOLO_BOX => LibOp::YoloBox(YoloBoxAttrs::parse(&Attrs::new(YOLO_BOX, attrs))?),
            MULTICLASS_NMS3 => LibOp::MulticlassNms(MulticlassNmsAttrs::parse(&Attrs::new(
                MULTICLASS_NMS3,
                attrs,
            ))?),
            MATRIX_NMS => LibOp::MatrixNms(MatrixNmsAttrs::parse(&Attrs::new(MATRIX_NMS, attrs))?),
            GENERATE_PROPOSALS_V2 => LibOp::GenerateProposals(GenerateProposalsAttrs::parse(
                &Attrs::new(GENERATE_PROPOSALS_V2, attrs),
            )?),
            DISTRIBUTE_FPN_PROPOSALS => LibOp::DistributeFpnProposals(DistributeFpnAttrs::parse(
                &Attrs::new(DISTRIBUTE_FPN_PROPOSALS, attrs),
            )?),
            ROIS_BATCH_INDEX => LibOp::RoisBatchIndex,
            other => return Err(format!("`{other}` is not an ops_lib operator")),
        })
    }

    /// True when `name` is an ops_lib op type.
    pub fn known(name: &str) -> bool {
        [
            YOLO_BOX,
            MULTICLASS_NMS3,
            MATRIX_NMS,
            GENERATE_PROPOSALS_V2,
            DISTRIBUTE_FPN_PROPOSALS,
            ROIS_BATCH_INDEX,
        ]
        .contains(&name)
    }

    /// Paddle's op type.
    pub fn name(&self) -> &'static str {
        match self {
            LibOp::YoloBox(_) => YOLO_BOX,
            LibOp::MulticlassNms(_) => MULTICLASS_NMS3,
            LibOp::MatrixNms(_) => MATRIX_NMS,
            LibOp::GenerateProposals(_) => GENERATE_PROPOSALS_V2,
            LibOp::DistributeFpnProposals(_) => DISTRIBUTE_FPN_PROPOSALS,
            LibOp::RoisBatchIndex => ROIS_BATCH_INDEX,
        }
    }

    /// Paddle's input parameter names in connection order, each with whether it is optional.
    /// The optional ones come last.
    pub fn inputs(&self) -> &'static [(&'static str, bool)] {
        match self {
            LibOp::YoloBox(_) => &[("X", false), ("ImgSize", false), ("Anchors", true)],
            LibOp::MulticlassNms(_) => &[("BBoxes", false), ("Scores", false), ("RoisNum", true)],
            LibOp::MatrixNms(_) => &[("BBoxes", false), ("Scores", false)],
            LibOp::GenerateProposals(_) => &[
                ("Scores", false),
                ("BboxDeltas", false),
                ("ImShape", false),
                ("Anchors", false),
                ("Variances", false),
            ],
            LibOp::DistributeFpnProposals(_) => &[("FpnRois", false), ("RoisNum", true)],
            LibOp::RoisBatchIndex => &[("RoisNum", false)],
        }
    }

    /// Paddle's output parameter names, each with how many tensors it has.
    pub fn outputs(&self) -> Vec<(&'static str, usize)> {
        match self {
            LibOp::YoloBox(_) => vec![("Boxes", 1), ("Scores", 1)],
            LibOp::MulticlassNms(_) => vec![("Out", 1), ("Index", 1), ("NmsRoisNum", 1)],
            LibOp::MatrixNms(_) => vec![("Out", 1), ("Index", 1), ("RoisNum", 1)],
            LibOp::GenerateProposals(_) => {
                vec![("RpnRois", 1), ("RpnRoiProbs", 1), ("RpnRoisNum", 1)]
            }
            LibOp::DistributeFpnProposals(a) => vec![
                ("MultiFpnRois", a.num_levels()),
                ("MultiLevelRoIsNum", a.num_levels()),
                ("RestoreIndex", 1),
            ],
            LibOp::RoisBatchIndex => vec![("BatchIndex", 1)],
        }
    }

    /// Smallest and largest number of input ports: the required parameters, and all of them.
    pub fn arity(&self) -> (usize, usize) {
        let inputs = self.inputs();
        let required = inputs.iter().filter(|(_, optional)| !optional).count();
        (required, inputs.len())
    }

    /// The number of output tensors over all output parameters.
    pub fn output_count(&self) -> usize {
        self.outputs().iter().map(|(_, n)| n).sum()
    }

    /// The attributes under Paddle's names: those `source` (the node's source attributes) lists
    /// first, in its order, so a view's normalized block reads line by line against the model
    /// file's and a plugin node lists them as the model did; then the rest in declaration order.
    pub fn attributes(&self, source: &[(String, AttrValue)]) -> Vec<(String, AttrValue)> {
        let mut named = match self {
            LibOp::YoloBox(a) => a.named(),
            LibOp::MulticlassNms(a) => a.named(),
            LibOp::MatrixNms(a) => a.named(),
            LibOp::GenerateProposals(a) => a.named(),
            LibOp::DistributeFpnProposals(a) => a.named(),
            LibOp::RoisBatchIndex => Vec::new(),
        };
        named.sort_by_key(|(k, _)| {
            source
                .iter()
                .position(|(s, _)| s == k)
                .unwrap_or(usize::MAX)
        });
        named.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}
