//! `temblor eval`: COCO AP of a model's detections over a directory of images, against COCO
//! ground truth or against a reference model's detections (agreement).

use serde::Serialize;
use std::path::{Path, PathBuf};
use temblor_ir::{package, Error, Graph, Result};
use temblor_pipeline::{Options, VerifyMode};
use temblor_runtime::{check_device, prepare, Device, Plan, PrepareOptions};
use temblor_tools::eval::coco_json::{self, Category, DumpImage};
use temblor_tools::eval::{self, Detection, GtBox, Metrics};
use temblor_tools::preprocess_config::{self, Prepared, PreprocessConfig};
use temblor_tools::progress;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A package directory written by `compile`, or a model file (compiled in memory).
    pub model: PathBuf,
    /// A directory of JPEG and PNG images, all evaluated (sorted by name).
    #[arg(long)]
    pub images: PathBuf,
    /// The preprocessing config (temblor YAML or PaddleDetection's infer_cfg.yml); default: the
    /// one a package recorded, else an infer_cfg.yml beside the model.
    #[arg(long)]
    pub preprocess: Option<PathBuf>,
    /// Score against this model's detections (a package or a model file); it is preprocessed
    /// with the config it recorded or the infer_cfg.yml beside it, else with the model's config.
    #[arg(long, conflicts_with = "gt", required_unless_present = "gt")]
    pub reference: Option<PathBuf>,
    /// Score against COCO ground truth (images matched by file_name).
    #[arg(long)]
    pub gt: Option<PathBuf>,
    /// With --reference: its detections scoring at least this are the ground truth.
    #[arg(long, default_value_t = eval::DEFAULT_MIN_SCORE)]
    pub min_score: f32,
    /// Threads of the CPU runtime; 0 means one per available core.
    #[arg(long, default_value_t = 0, value_parser = super::parse_threads)]
    pub threads: usize,
    /// Where the model runs: the CPU, or the first NVIDIA GPU (`cuda`, through the CUDA driver).
    #[arg(long, value_enum, default_value_t = super::DeviceArg::Cpu)]
    pub device: super::DeviceArg,
    /// NAME:DIMS fixes an input's dimensions of a model file (e.g. image:1x3x320x320).
    #[arg(long = "input", value_name = "NAME:DIMS")]
    pub inputs: Vec<String>,
    /// Write the ground truth and detections scored as COCO JSON (for pycocotools).
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A model ready to run on images.
struct Subject {
    path: PathBuf,
    config_file: PathBuf,
    config: PreprocessConfig,
    graph: Graph,
    plan: Plan,
}

#[derive(Serialize)]
struct InputDoc {
    name: String,
    shape: Vec<usize>,
    /// Small inputs (im_shape, scale_factor) in full, so a run can be repeated.
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<Vec<f32>>,
}

#[derive(Serialize)]
struct ImageDoc {
    file: String,
    /// Height, width.
    original: (usize, usize),
    inputs: Vec<InputDoc>,
    detections: usize,
    ground_truth: usize,
}

#[derive(Serialize)]
struct ReferenceDoc {
    model: String,
    preprocess: String,
    /// Its detections scoring at least this are the ground truth.
    min_score: f32,
}

#[derive(Serialize)]
struct Report<'a> {
    model: String,
    preprocess: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<ReferenceDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gt: Option<String>,
    images: Vec<ImageDoc>,
    #[serde(flatten)]
    metrics: &'a Metrics,
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let device = args.device.device();
    check_device(&device).map_err(Error::from)?;
    let images = temblor_tools::preprocess_config::images_in(&args.images)?;
    let input_dims = args
        .inputs
        .iter()
        .map(|s| super::parse_input_dims(s))
        .collect::<Result<Vec<_>>>()?;
    let config_file = match &args.preprocess {
        Some(f) => f.clone(),
        None => PreprocessConfig::beside(&args.model).ok_or_else(|| {
            Error::usage(format!(
                "{}: no preprocessing config: give --preprocess FILE (no {} beside the model)",
                args.model.display(),
                temblor_tools::preprocess_config::PADDLE_INFER_CFG
            ))
        })?,
    };
    let subject = Subject::open(&args.model, &config_file, &input_dims, args.threads, device)?;
    let (candidate, prepared) = detect(&subject, &images, "eval")?;

    let mut reference_doc = None;
    let (gt, dets, image_ids, categories) = if let Some(reference) = &args.reference {
        let ref_config = PreprocessConfig::beside(reference).unwrap_or_else(|| config_file.clone());
        // The reference runs on the CPU runtime, whatever device the candidate runs on.
        let reference_subject =
            Subject::open(reference, &ref_config, &[], args.threads, Device::Cpu)?;
        let (ref_dets, _) = detect(&reference_subject, &images, "reference")?;
        let gt = eval::reference_truth(&ref_dets, args.min_score);
        reference_doc = Some(ReferenceDoc {
            model: reference.display().to_string(),
            preprocess: ref_config.display().to_string(),
            min_score: args.min_score,
        });
        let labels = if subject.config.labels.is_empty() {
            &reference_subject.config.labels
        } else {
            &subject.config.labels
        };
        let categories = label_categories(labels, &gt, &candidate);
        let ids = (1..=images.len() as i64).collect();
        (gt, candidate, ids, categories)
    } else {
        let gt_file = args
            .gt
            .as_ref()
            .ok_or_else(|| Error::usage("give --reference MODEL or --gt COCO.json"))?;
        let truth = coco_json::read_ground_truth(gt_file, &images)?;
        let dets = to_categories(candidate, &subject.config.labels, &truth.categories);
        (truth.boxes, dets, truth.image_ids, truth.categories)
    };
    if gt.iter().all(Vec::is_empty) {
        return Err(Error::usage(match &args.reference {
            Some(r) => format!(
                "{}: no detection scores at least --min-score {} on these images, so there is \
                 no ground truth to score against",
                r.display(),
                args.min_score
            ),
            None => "the ground truth holds no box for these images".to_string(),
        }));
    }
    let mut metrics = eval::evaluate(&gt, &dets);
    for c in &mut metrics.per_class {
        c.name = categories
            .iter()
            .find(|k| k.id == c.class)
            .map(|k| k.name.clone());
    }
    if let Some(dump) = &args.dump {
        let dump_images: Vec<DumpImage> = images
            .iter()
            .zip(&image_ids)
            .zip(&prepared)
            .map(|((file, &id), p)| DumpImage {
                id,
                file_name: file_name(file),
                size: p.original,
            })
            .collect();
        coco_json::write_dump(dump, &dump_images, &gt, &dets, categories)?;
    }
    let report = Report {
        model: args.model.display().to_string(),
        preprocess: config_file.display().to_string(),
        reference: reference_doc,
        gt: args.gt.as_ref().map(|g| g.display().to_string()),
        images: image_docs(&images, &prepared, &gt, &dets),
        metrics: &metrics,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::internal(format!("cannot serialize the results: {e}")))?;
        println!("{text}");
    } else {
        print_text(&report);
    }
    Ok(())
}

fn image_docs(
    images: &[PathBuf],
    prepared: &[Prepared],
    gt: &[Vec<GtBox>],
    dets: &[Vec<Detection>],
) -> Vec<ImageDoc> {
    images
        .iter()
        .zip(prepared)
        .zip(gt.iter().zip(dets))
        .map(|((file, p), (g, d))| ImageDoc {
            file: file.display().to_string(),
            original: p.original,
            inputs: p
                .inputs
                .iter()
                .map(|(name, t)| InputDoc {
                    name: name.clone(),
                    shape: t.shape.clone(),
                    values: (t.len() <= 4)
                        .then(|| t.as_f32().map(<[f32]>::to_vec))
                        .flatten(),
                })
                .collect(),
            detections: d.len(),
            ground_truth: g.len(),
        })
        .collect()
}

impl Subject {
    fn open(
        path: &Path,
        config_file: &Path,
        input_dims: &[(String, Vec<usize>)],
        threads: usize,
        device: Device,
    ) -> Result<Subject> {
        let mut config = PreprocessConfig::load(config_file)?;
        let graph = if package::is_package(path) {
            if !input_dims.is_empty() {
                return Err(Error::usage(format!(
                    "{}: a package's input shapes were fixed when it was compiled; --input \
                     applies to a model file",
                    path.display()
                )));
            }
            // Labels in a --preprocess file win; the package keeps its own in labels.txt.
            if config.labels.is_empty() {
                config.labels = preprocess_config::package_labels(path)?;
            }
            package::load(path)?
        } else {
            let options = Options {
                input_dims: input_dims.to_vec(),
                verify: VerifyMode::Off,
                default_batch: true,
                ..Options::default()
            };
            temblor_pipeline::compile(path, &options)?.compile
        };
        let options = PrepareOptions {
            threads,
            ..PrepareOptions::default()
        };
        let plan = prepare(&graph, &device, &options).map_err(Error::from)?;
        Ok(Subject {
            path: path.to_path_buf(),
            config_file: config_file.to_path_buf(),
            config,
            graph,
            plan,
        })
    }
}

/// Runs `subject` on every image: its detections in original pixels, and the inputs it got.
fn detect(
    subject: &Subject,
    images: &[PathBuf],
    what: &str,
) -> Result<(Vec<Vec<Detection>>, Vec<Prepared>)> {
    let bar = progress::bar(images.len(), what);
    let mut all = Vec::with_capacity(images.len());
    let mut prepared = Vec::with_capacity(images.len());
    let mut state = subject.plan.new_state();
    for image in images {
        let p = subject.config.inputs(image, &subject.graph).map_err(|e| {
            Error::usage(format!(
                "{} with {}: {e}",
                subject.path.display(),
                subject.config_file.display()
            ))
        })?;
        let outputs = subject
            .plan
            .run(&mut state, &p.inputs)
            .map_err(Error::from)?;
        let mut dets = eval::detections_from_outputs(&outputs)
            .map_err(|e| Error::usage(format!("{}: {e}", subject.path.display())))?;
        // A model given no scale_factor reports boxes in its input's pixels.
        let has_scale = p
            .inputs
            .iter()
            .any(|(n, _)| *n == subject.config.inputs.scale_factor);
        if !has_scale {
            let (sy, sx) = p.scale;
            for d in &mut dets {
                d.bbox = [
                    d.bbox[0] / sx,
                    d.bbox[1] / sy,
                    d.bbox[2] / sx,
                    d.bbox[3] / sy,
                ];
            }
        }
        all.push(dets);
        prepared.push(p);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((all, prepared))
}

/// The classes seen, named by the model's label list where it has one.
fn label_categories(
    labels: &[String],
    gt: &[Vec<GtBox>],
    dets: &[Vec<Detection>],
) -> Vec<Category> {
    let classes: std::collections::BTreeSet<i64> = gt
        .iter()
        .flatten()
        .map(|g| g.class)
        .chain(dets.iter().flatten().map(|d| d.class))
        .collect();
    classes
        .into_iter()
        .map(|id| Category {
            id,
            name: usize::try_from(id)
                .ok()
                .and_then(|i| labels.get(i))
                .cloned()
                .unwrap_or_else(|| id.to_string()),
        })
        .collect()
}

/// The model's class ids as the ground truth's category ids: by name when the model has a label
/// list (COCO's ids skip numbers, the models' do not); as they are otherwise. A class whose
/// name is no category cannot match anything and is dropped.
fn to_categories(
    dets: Vec<Vec<Detection>>,
    labels: &[String],
    categories: &[Category],
) -> Vec<Vec<Detection>> {
    if labels.is_empty() {
        return dets;
    }
    let id_of = |class: i64| -> Option<i64> {
        let name = labels.get(usize::try_from(class).ok()?)?;
        categories.iter().find(|c| &c.name == name).map(|c| c.id)
    };
    dets.into_iter()
        .map(|dets| {
            dets.into_iter()
                .filter_map(|d| {
                    Some(Detection {
                        class: id_of(d.class)?,
                        ..d
                    })
                })
                .collect()
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn print_text(report: &Report) {
    println!("model: {} (preprocess {})", report.model, report.preprocess);
    if let Some(r) = &report.reference {
        println!(
            "reference: {} (preprocess {}); its detections with score >= {} are the ground truth",
            r.model, r.preprocess, r.min_score
        );
    }
    if let Some(gt) = &report.gt {
        println!("ground truth: {gt}");
    }
    println!("images ({}):", report.images.len());
    for i in &report.images {
        let inputs: Vec<String> = i
            .inputs
            .iter()
            .map(|x| match &x.values {
                Some(v) => format!("{} {:?} = {v:?}", x.name, x.shape),
                None => format!("{} {:?}", x.name, x.shape),
            })
            .collect();
        println!(
            "  {} {}x{}: {}; {} detections, {} ground truth",
            i.file,
            i.original.0,
            i.original.1,
            inputs.join(", "),
            i.detections,
            i.ground_truth
        );
    }
    let m = report.metrics;
    println!("AP {:.4}  AP50 {:.4}  AP75 {:.4}", m.ap, m.ap50, m.ap75);
    println!("| class | AP | AP50 | AP75 | ground truth | detections |");
    println!("|---|---:|---:|---:|---:|---:|");
    for c in &m.per_class {
        let name = c.name.clone().unwrap_or_else(|| c.class.to_string());
        println!(
            "| {name} | {:.4} | {:.4} | {:.4} | {} | {} |",
            c.ap, c.ap50, c.ap75, c.ground_truth, c.detections
        );
    }
}
