//! The compiler's stages after import, as the conformance suite runs them
//! ([`temblor_tools::conformance`]): STYLE.md's "one suite, every stage", so a rewrite or a
//! lowering that breaks an op shows up on the op's own small cases before any real model.

use temblor_ir::{Graph, Result};
use temblor_passes::{optimize_passes, Driver};
use temblor_precision::{AutoBase, Evidence, PlanMode};
use temblor_tools::conformance::{Stage, Tolerance};

/// fp16 stores each value with an 11-bit significand (relative step 2^-11, about 4.9e-4), and a
/// case rounds its inputs, each layer's output and its weights to it: a few such steps, amplified
/// by the op (an exponential multiplies the relative error by its argument), stay within 1e-2.
/// Values that cancel to near zero keep an absolute error of their inputs' scale, up to 1e-2 for
/// the suite's inputs, which are mostly of magnitude 1.
const FP16: Tolerance = Tolerance {
    rtol: 1e-2,
    atol: 1e-2,
};

/// The optimizer, required of every case that passes as imported; then fp16 legalization of
/// its result, reported only: fp16 changes results by design, and which ops keep the suite's
/// expectations in half precision is for the table to show.
pub fn conformance_stages() -> Vec<Stage> {
    vec![
        Stage {
            name: "optimized",
            lower: optimized,
            tolerance: Tolerance::SUITE,
            required: true,
        },
        Stage {
            name: "fp16",
            lower: fp16,
            tolerance: FP16,
            required: false,
        },
    ]
}

fn optimized(g: &Graph) -> Result<Option<Graph>> {
    let mut out = g.clone();
    Driver::new(optimize_passes()).run(&mut out)?;
    Ok(Some(out))
}

/// Every layer with an fp16 form in fp16, as `--precision fp16` chooses without calibration.
/// Legalization adds a cast or an f16 constant wherever an f32 value enters or leaves an fp16
/// layer, so a graph it leaves with as many nodes has no layer computing in fp16, and the stage
/// does not apply.
fn fp16(g: &Graph) -> Result<Option<Graph>> {
    let evidence = Evidence::default();
    let (plan, _) = temblor_precision::plan_for(
        PlanMode::Fp16,
        g,
        &evidence,
        None,
        None,
        AutoBase::default(),
    )?;
    let out = temblor_precision::apply(g, &plan)?;
    Ok((out.node_count() > g.node_count()).then_some(out))
}
