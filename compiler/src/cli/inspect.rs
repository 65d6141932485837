use std::path::PathBuf;
use temblor_ir::{Error, Graph, Op, Result};
use temblor_pipeline::report;
use temblor_visualize::{render, View};

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A model file or a package directory.
    pub model: PathBuf,
    /// Also write the model's parse view (a prototxt Netron opens) to FILE. Unlike `compile`,
    /// this works for a model with ops temblor cannot map, so such a model can still be seen.
    #[arg(long, value_name = "FILE")]
    pub parse_view: Option<PathBuf>,
}

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let package = temblor_ir::package::is_package(&args.model);
    if package && args.parse_view.is_some() {
        return Err(Error::usage(format!(
            "--parse-view: {} is a package, which holds its parse.prototxt already",
            args.model.display()
        )));
    }
    let g = if package {
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
    print_bodies(&g, 1);
    let params = parameters(&g);
    println!("parameters: {params}");
    if let Err(e) = temblor_ir::check_supported(&g) {
        println!("not compilable: {e}");
    }
    if let Some(path) = &args.parse_view {
        // Written under a temporary name first, so an interrupted write leaves no partial view.
        let partial = path.with_extension("prototxt.partial");
        let io = |e: std::io::Error| Error::usage(format!("{}: {e}", path.display()));
        std::fs::write(&partial, render(&g, View::Parse)).map_err(io)?;
        std::fs::rename(&partial, path).map_err(io)?;
        println!("parse view: {}", path.display());
    }
    Ok(())
}

/// The layers of each loop and branch body, nested bodies indented under theirs.
fn print_bodies(g: &Graph, depth: usize) {
    let pad = "  ".repeat(depth);
    for body in &g.bodies {
        let counts: Vec<String> = body
            .op_counts()
            .into_iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        println!(
            "{pad}body {}: {} layers ({})",
            body.name,
            body.layer_count(),
            counts.join(", ")
        );
        print_bodies(body, depth + 1);
    }
}

/// The elements of every constant, in the model's graph and in its bodies.
fn parameters(g: &Graph) -> usize {
    let own: usize = g
        .node_ids()
        .filter_map(|id| match g.node(id).op {
            Op::Constant { weight } => g.weights.get(weight).map(|w| w.element_count()),
            _ => None,
        })
        .sum();
    own + g.bodies.iter().map(parameters).sum::<usize>()
}
