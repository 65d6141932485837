use std::path::PathBuf;
use temblor_ir::{Op, Result};
use temblor_pipeline::report;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A model file or a package directory.
    pub model: PathBuf,
}

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let g = if temblor_ir::package::is_package(&args.model) {
        temblor_ir::package::load(&args.model)?
    } else {
        temblor_pipeline::import(&args.model, &[])?
    };
    println!("model: {}", args.model.display());
    for (name, value) in &g.facts {
        println!("{name}: {value}");
    }
    println!("inputs:");
    for v in report::inputs(&g) {
        println!("  {}: {} [{}]", v.name, v.dtype, v.shape);
    }
    println!("outputs:");
    for v in report::outputs(&g) {
        println!("  {}: {} [{}]", v.name, v.dtype, v.shape);
    }
    println!("layers: {}", g.layer_count());
    for (op, n) in g.op_counts() {
        println!("  {op}: {n}");
    }
    let params: usize = g
        .node_ids()
        .filter_map(|id| match g.node(id).op {
            Op::Constant { weight } => g.weights.get(weight).map(|w| w.element_count()),
            _ => None,
        })
        .sum();
    println!("parameters: {params}");
    Ok(())
}
