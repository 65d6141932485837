//! A CastLike becomes a Cast to the dtype shape inference found for its target, and stops
//! reading the target: the fusions, remove_no_ops and fp16 legalization know Cast, and a
//! target whose only reader was the CastLike can then go.

use crate::rewrite::{Replacement, Rewrite};
use crate::{Pass, PassError, Rewriter};
use temblor_ir::Op;

pub struct ResolveCastLike;

impl Pass for ResolveCastLike {
    fn name(&self) -> &'static str {
        "resolve_cast_like"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        rw.each(
            |op| matches!(op, Op::CastLike),
            |g, id| {
                let x = g.input(id, 0)?;
                let to = g.value_type(g.input(id, 1)?).dtype;
                Some(Rewrite::new(vec![id], id, move |_| Replacement::Reuse {
                    node: id,
                    op: Op::Cast { to },
                    inputs: vec![Some(x)],
                }))
            },
        );
        Ok(())
    }
}
