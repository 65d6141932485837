//! generate_proposals_v2 and distribute_fpn_proposals as ONNX (written by the proposals helper).

use super::super::lower::Lower;
use super::Sub;
use temblor_ir::{DistributeFpnAttrs, GenerateProposalsAttrs};

pub(super) fn generate(
    _s: &mut Sub,
    _cx: &Lower,
    _a: &GenerateProposalsAttrs,
) -> Result<(), String> {
    Err("no decomposition is written for it yet (issue 19)".into())
}

pub(super) fn distribute(_s: &mut Sub, _cx: &Lower, _a: &DistributeFpnAttrs) -> Result<(), String> {
    Err("no decomposition is written for it yet (issue 19)".into())
}
