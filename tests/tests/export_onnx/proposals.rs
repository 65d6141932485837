//! generate_proposals_v2 and distribute_fpn_proposals as ONNX: tests (written by the proposals helper).
