//! `run --image`: from photos to an answer. Each photo is preprocessed as the package recorded
//! (or as the model's kind wants by default), run, and postprocessed; `results.json` holds every
//! photo's answer in its own pixels and `<stem>.png` the photo with the answer drawn.

use super::run::RunArgs;
use serde::Serialize;
use std::path::Path;
use temblor_ir::{package, Error, Graph, Result};
use temblor_ops_lib::preprocess::load_image;
use temblor_pipeline::{Options, VerifyMode};
use temblor_postprocess::{draw, postprocess, Geometry, ImageResult, Kind, Postprocess};
use temblor_runtime::{prepare, Device, PrepareOptions};
use temblor_tools::preprocess_config::{self, PreprocessConfig};

/// `results.json`.
#[derive(Serialize)]
struct Results<'a> {
    model: String,
    postprocess: &'a Postprocess,
    preprocess: String,
    images: Vec<ImageResult>,
}

/// What a model needs around it to answer: how its images are made and its outputs read.
pub struct Reader {
    pub graph: Graph,
    pub preprocess: PreprocessConfig,
    /// Where the preprocessing came from, for the record.
    pub preprocess_source: String,
    pub postprocess: Postprocess,
    pub labels: Vec<String>,
}

impl Reader {
    /// The graph of `model` (a package, or a model file compiled in memory) and, in order of
    /// precedence, the preprocessing, postprocessing and labels given, recorded in the package
    /// or beside the model, or the kind's defaults.
    pub fn open(
        model: &Path,
        preprocess: Option<&Path>,
        kind: Option<Kind>,
        labels: Option<&Path>,
    ) -> Result<Reader> {
        let graph = if package::is_package(model) {
            package::load(model)?
        } else {
            let options = Options {
                verify: VerifyMode::Off,
                default_batch: true,
                ..Options::default()
            };
            temblor_pipeline::compile(model, &options)?.compile
        };
        Reader::around(graph, model, preprocess, kind, labels)
    }

    /// [`Reader::open`] of a graph already loaded from `model` (a Python session's), so that it
    /// is not read twice.
    pub fn around(
        graph: Graph,
        model: &Path,
        preprocess: Option<&Path>,
        kind: Option<Kind>,
        labels: Option<&Path>,
    ) -> Result<Reader> {
        let is_package = package::is_package(model);
        let postprocess = match kind {
            Some(k) => k.defaults(),
            None => match is_package
                .then(|| Postprocess::from_package(model))
                .transpose()?
                .flatten()
            {
                Some(p) => p,
                None => inferred_kind(&graph, model)?.defaults(),
            },
        };
        let (preprocess, preprocess_source) = match preprocess
            .map(Path::to_path_buf)
            .or_else(|| PreprocessConfig::beside(model))
        {
            Some(file) => (PreprocessConfig::load(&file)?, file.display().to_string()),
            None => (
                preprocess_config::defaults::for_kind(postprocess.kind(), &graph).ok_or_else(
                    || {
                        Error::usage(format!(
                            "{}: no preprocessing recorded and none is standard for {:?} \
                                 outputs; give --preprocess FILE",
                            model.display(),
                            postprocess.kind()
                        ))
                    },
                )?,
                format!("the default for {:?} models", postprocess.kind()),
            ),
        };
        let labels = match labels {
            Some(file) => preprocess_config::read_labels(file)?,
            None if is_package && !preprocess_config::package_labels(model)?.is_empty() => {
                preprocess_config::package_labels(model)?
            }
            None if !preprocess.labels.is_empty() => preprocess.labels.clone(),
            None => temblor_postprocess::metadata::labels(&graph.metadata).unwrap_or_default(),
        };
        Ok(Reader {
            graph,
            preprocess,
            preprocess_source,
            postprocess,
            labels,
        })
    }
}

/// The kind the graph's outputs have the shape of, or a usage error listing them.
pub fn inferred_kind(graph: &Graph, model: &Path) -> Result<Kind> {
    let outputs: Vec<_> = graph
        .outputs
        .iter()
        .map(|o| {
            let ty = graph.value_type(o.value);
            (o.name.as_str(), ty.dtype, ty.shape.dims())
        })
        .collect();
    Kind::infer(&outputs).ok_or_else(|| {
        let shapes: Vec<String> = outputs
            .iter()
            .map(|(n, t, d)| {
                let d: Vec<String> = d.iter().map(ToString::to_string).collect();
                format!("{n} {t} [{}]", d.join(", "))
            })
            .collect();
        Error::usage(format!(
            "{}: cannot tell what the outputs mean ({}); give --postprocess KIND",
            model.display(),
            shapes.join("; ")
        ))
    })
}

pub fn run_images(args: &RunArgs) -> Result<()> {
    let reader = Reader::open(
        &args.model,
        args.preprocess.as_deref(),
        args.postprocess,
        args.labels.as_deref(),
    )?;
    let mut how = reader.postprocess.clone();
    if let Some(s) = args.min_score {
        how.set_min_score(s);
    }
    let options = PrepareOptions {
        threads: args.threads,
        ..PrepareOptions::default()
    };
    let plan = prepare(&reader.graph, &Device::Cpu, &options).map_err(Error::from)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::internal(format!("{}: {e}", args.out.display())))?;
    let mut images = Vec::with_capacity(args.images.len());
    for path in &args.images {
        let prepared = reader.preprocess.inputs(path, &reader.graph)?;
        let outputs = plan.run_once(&prepared.inputs).map_err(Error::from)?;
        let geometry = Geometry {
            original: prepared.original,
            scale: prepared.scale,
        };
        let answer = postprocess(&how, &outputs, &geometry, &reader.labels)?;
        let mut photo = load_image(path).map_err(|e| Error::bad_input(e.to_string()))?;
        draw::draw(&mut photo, &answer);
        let picture = args.out.join(format!("{}.png", stem(path)));
        draw::save_png(&photo, &picture)?;
        let result = ImageResult::new(path.display().to_string(), prepared.original, answer);
        print_summary(&result, &picture);
        images.push(result);
    }
    let results = Results {
        model: args.model.display().to_string(),
        postprocess: &how,
        preprocess: reader.preprocess_source.clone(),
        images,
    };
    let path = args.out.join("results.json");
    let text = serde_json::to_string_pretty(&results)
        .map_err(|e| Error::internal(format!("cannot serialize the results: {e}")))?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text + "\n")
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
    println!("results: {}", path.display());
    Ok(())
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned())
}

fn print_summary(result: &ImageResult, picture: &Path) {
    println!("{} -> {}", result.image, picture.display());
    let name = |label: &Option<String>, class: i64| {
        label.clone().unwrap_or_else(|| format!("class {class}"))
    };
    for o in &result.objects {
        let [x1, y1, x2, y2] = o.bbox;
        println!(
            "  {} {:.3} [{x1:.1}, {y1:.1}, {x2:.1}, {y2:.1}]{}",
            name(&o.label, o.class),
            o.score,
            if o.mask.is_some() { " +mask" } else { "" }
        );
    }
    for t in &result.text {
        match &t.text {
            Some(text) => println!("  \"{text}\" {:.3}", t.confidence.unwrap_or(0.0)),
            None => println!("  text region {:.3} {:?}", t.score, t.polygon),
        }
    }
    for c in &result.classes {
        println!("  {} {:.3}", name(&c.label, c.class), c.score);
    }
}
