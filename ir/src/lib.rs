//! temblor's intermediate representation.
//!
//! A [`Graph`] is a petgraph `StableDiGraph` of [`Node`]s. Every value in the graph is an output
//! port of a node ([`ValueRef`]): graph inputs are [`Op::Input`] nodes and weights are
//! [`Op::Constant`] nodes pointing into the [`WeightStore`], so a consumer never has to ask where
//! a value came from. Edges carry the producer's output port and the consumer's input port,
//! because petgraph keeps no edge order.
//!
//! This crate does no I/O and holds no kernels; [`validate`] checks the structural invariants
//! every stage must keep.

mod attr;
pub mod cost;
mod dtype;
mod error;
mod graph;
pub mod limits;
mod op;
pub mod package;
mod provenance;
mod shape;
mod status;
mod unsupported;
mod validate;
mod weights;

pub use attr::AttrValue;
pub use dtype::DType;
pub use error::{Error, Result};
pub use graph::{
    Edge, Graph, GraphOutput, Node, NodeId, Partition, Placement, Precision, RemoveNodeError,
    ValueRef,
};
pub use op::{
    shape_axes, Activation, Affine, AutoPad, BinaryOp, BodyId, ConvAttrs, ConvTransposeAttrs,
    DeformConvAttrs, DistributeFpnAttrs, GenerateProposalsAttrs, GridSampleMode, GridSamplePadding,
    LibOp, LoopAttrs, MatrixNmsAttrs, MulticlassNmsAttrs, Op, OpFamily, PadMode, PoolAttrs,
    ReduceOp, ResizeAspect, ResizeAttrs, ResizeAxis, ResizeCoordinate, ResizeMode, ResizeNearest,
    RoiAlignAttrs, Scalar, ScatterReduction, SplitSizes, UnaryOp, YoloBoxAttrs,
};
pub use provenance::{Framework, Origin, OriginId, Provenance};
pub use shape::{Dim, Layout, Shape, TensorInfo, TensorType};
pub use status::{MeasureStatus, PassStatus, VerifyStatus};
pub use unsupported::check_supported;
pub use validate::{validate, ValidationError};
pub use weights::{Weight, WeightId, WeightStore};
