//! `temblor ocr`: a photo's text, as PaddleOCR's and RapidOCR's pipelines read it: DBNet finds the
//! lines, each is cut out and stood upright, optionally turned by the direction classifier, and
//! read by the CTC recognizer.

use std::path::{Path, PathBuf};
use temblor_ir::{package, Error, Graph, Result};
use temblor_ops_lib::preprocess::{load_image, Image};
use temblor_postprocess::{
    crop, ctc, dbnet, draw, Answer, Geometry, ImageResult, Kind, Postprocess, TextDetection,
    TextLine,
};
use temblor_runtime::{prepare, Device, Plan, PrepareOptions, Tensor};
use temblor_tools::preprocess_config::{defaults, package_labels, Pad, PreprocessConfig, Resize};

/// RapidOCR's `text_score`: lines read with a lower mean confidence are left out.
const MIN_CONFIDENCE: f32 = 0.5;
/// PaddleOCR's `cls_thresh`: a line is turned only when the classifier is this sure.
const MIN_FLIP_SCORE: f32 = 0.9;
/// PaddleOCR's direction classifier input: 48 x 192, narrower lines padded on the right.
const CLS_SIZE: [usize; 2] = [48, 192];
/// The dictionary PaddleOCR's Chinese and English recognizers were trained with.
const PPOCR_KEYS: &str = "ppocr_keys_v1.txt";

#[derive(clap::Args, Debug)]
pub struct OcrArgs {
    /// The photo (JPEG or PNG).
    pub image: PathBuf,
    /// The text detector (DBNet): a package directory or a model file (ONNX or Paddle).
    #[arg(long)]
    pub det: PathBuf,
    /// The text recognizer (CTC): a package directory or a model file.
    #[arg(long)]
    pub rec: PathBuf,
    /// The text direction classifier (0 / 180 degrees), optional.
    #[arg(long)]
    pub cls: Option<PathBuf>,
    /// The recognizer's dictionary, one character a line; by default the package's labels, else
    /// ppocr_keys_v1.txt beside the recognizer's model file.
    #[arg(long, value_name = "FILE")]
    pub dict: Option<PathBuf>,
    /// Threads of the CPU runtime; 0 means one per available core.
    #[arg(long, default_value_t = 0, value_parser = super::parse_threads)]
    pub threads: usize,
    /// Print the lines (polygon, score, text, confidence) as JSON instead of the text.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON to OUT_DIR/results.json.
    #[arg(short, long, value_name = "OUT_DIR")]
    pub out: Option<PathBuf>,
}

pub fn ocr(args: &OcrArgs) -> Result<()> {
    // The photo first: a bad one fails before any model is compiled.
    let photo = load_image(&args.image).map_err(|e| Error::bad_input(e.to_string()))?;
    let dictionary = dictionary(args)?;
    let det = Stage::load(&args.det, Kind::TextDetection, args.threads)?;
    let rec = Stage::load(&args.rec, Kind::TextRecognition, args.threads)?;
    let cls = match &args.cls {
        Some(path) => Some(Stage::load_cls(path, args.threads)?),
        None => None,
    };
    let settings = match Postprocess::from_package(&args.det)? {
        Some(Postprocess::TextDetection(s)) if package::is_package(&args.det) => s,
        _ => TextDetection::default(),
    };

    let (map, geometry) = det.run(&photo, &args.image)?;
    let regions = dbnet::text_regions(&map, &settings, &geometry)?;
    let mut lines: Vec<TextLine> = Vec::with_capacity(regions.len());
    for mut region in regions {
        let mut line = crop::rotate_crop(&photo, &region.polygon)?;
        if let Some(cls) = &cls {
            let upside_down = cls.upside_down(&line, &args.image)?;
            if upside_down {
                line = crop::rotate_180(&line);
            }
            region.angle = Some(if upside_down { 180 } else { 0 });
        }
        let (probs, _) = rec.run(&line, &args.image)?;
        let Some((text, confidence)) = ctc::decode(&probs, &dictionary)?.into_iter().next() else {
            continue;
        };
        if confidence < MIN_CONFIDENCE {
            continue;
        }
        region.text = Some(text);
        region.confidence = Some(confidence);
        lines.push(region);
    }

    let answer = Answer {
        text: lines,
        ..Answer::default()
    };
    let result = ImageResult::new(
        args.image.display().to_string(),
        (photo.height, photo.width),
        answer.clone(),
    );
    let json = serde_json::to_string_pretty(&result)
        .map_err(|e| Error::internal(format!("cannot serialize the results: {e}")))?;
    if let Some(dir) = &args.out {
        write_out(dir, photo, &answer, &args.image, &json)?;
    }
    if args.json {
        println!("{json}");
    } else {
        for line in &result.text {
            println!("{}", line.text.as_deref().unwrap_or_default());
        }
    }
    Ok(())
}

/// OUT_DIR/results.json and OUT_DIR/<stem>.png, the photo with the lines outlined; each written
/// under a temporary name first, so a failure leaves no partial file.
fn write_out(
    dir: &Path,
    mut photo: Image,
    answer: &Answer,
    source: &Path,
    json: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::usage(format!("{}: {e}", dir.display())))?;
    draw::draw(&mut photo, answer);
    let stem = source
        .file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    draw::save_png(&photo, &dir.join(format!("{stem}.png")))?;
    let path = dir.join("results.json");
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, format!("{json}\n"))
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| Error::usage(format!("{}: {e}", path.display())))
}

/// One model of the pipeline, prepared on the CPU, with the preprocessing its images get.
struct Stage {
    graph: Graph,
    plan: Plan,
    config: PreprocessConfig,
    path: PathBuf,
}

impl Stage {
    /// `path` compiled (or loaded), its preprocessing the package's recorded one, else the
    /// default of `kind`.
    fn load(path: &Path, kind: Kind, threads: usize) -> Result<Stage> {
        let graph = super::run::load_graph(path)?;
        let config = match recorded_preprocessing(path)? {
            Some(c) => c,
            None => default_for(kind, &graph)?,
        };
        Stage::with(path, graph, config, threads)
    }

    /// The direction classifier: PaddleOCR's `cls_image_shape` 3 x 48 x 192, BGR, 0.5 / 0.5.
    fn load_cls(path: &Path, threads: usize) -> Result<Stage> {
        let graph = super::run::load_graph(path)?;
        let config = match recorded_preprocessing(path)? {
            Some(c) => c,
            None => {
                // The recognizer's preprocessing, the width bounded and padded to 192.
                let mut c = default_for(Kind::TextRecognition, &graph)?;
                c.resize = c.resize.map(|r| Resize {
                    height: Some(CLS_SIZE[0]),
                    limit_side: Some(CLS_SIZE[1]),
                    ..r
                });
                c.pad = Some(Pad {
                    size: Some(CLS_SIZE),
                    stride: None,
                    value: [0.0; 3],
                });
                c
            }
        };
        Stage::with(path, graph, config, threads)
    }

    fn with(path: &Path, graph: Graph, config: PreprocessConfig, threads: usize) -> Result<Stage> {
        let options = PrepareOptions {
            threads,
            ..PrepareOptions::default()
        };
        let plan = prepare(&graph, &Device::Cpu, &options).map_err(Error::from)?;
        Ok(Stage {
            graph,
            plan,
            config,
            path: path.to_path_buf(),
        })
    }

    /// The model's one output for `image` (from the photo `source`), and where its pixels came
    /// from.
    fn run(&self, image: &Image, source: &Path) -> Result<(Tensor, Geometry)> {
        let prepared = self.config.image_inputs(image, source, &self.graph)?;
        let outputs = self.plan.run_once(&prepared.inputs).map_err(Error::from)?;
        let mut outputs = outputs.into_iter();
        let (Some((_, t)), None) = (outputs.next(), outputs.next()) else {
            return Err(Error::usage(format!(
                "{}: a text model has one output",
                self.path.display()
            )));
        };
        let geometry = Geometry {
            original: prepared.original,
            scale: prepared.scale,
        };
        Ok((t, geometry))
    }

    /// Whether the classifier reads the line as upside down (label 1, "180") surely enough.
    fn upside_down(&self, line: &Image, source: &Path) -> Result<bool> {
        let (scores, _) = self.run(line, source)?;
        let values = match scores.as_f32() {
            Some(v) if scores.shape.last() == Some(&2) => v,
            _ => {
                return Err(Error::usage(format!(
                    "{}: a direction classifier outputs [1, 2] float scores (0, 180 degrees); \
                     this one {:?}",
                    self.path.display(),
                    scores.shape
                )))
            }
        };
        Ok(values[1] > values[0] && values[1] >= MIN_FLIP_SCORE)
    }
}

fn default_for(kind: Kind, graph: &Graph) -> Result<PreprocessConfig> {
    defaults::for_kind(kind, graph)
        .ok_or_else(|| Error::internal(format!("{kind:?} has no default preprocessing")))
}

/// The preprocessing a package recorded; none for a model file.
fn recorded_preprocessing(path: &Path) -> Result<Option<PreprocessConfig>> {
    let recorded = path.join(package::PREPROCESS);
    if package::is_package(path) && recorded.is_file() {
        return PreprocessConfig::load(&recorded).map(Some);
    }
    Ok(None)
}

/// The recognizer's characters: `--dict`, else the package's labels, else ppocr_keys_v1.txt
/// beside the model file.
fn dictionary(args: &OcrArgs) -> Result<Vec<String>> {
    if let Some(file) = &args.dict {
        return read_dictionary(file);
    }
    if package::is_package(&args.rec) {
        let labels = package_labels(&args.rec)?;
        if !labels.is_empty() {
            return Ok(labels);
        }
    }
    let beside = args.rec.parent().map(|d| d.join(PPOCR_KEYS));
    match beside {
        Some(file) if file.is_file() && !args.rec.is_dir() => read_dictionary(&file),
        _ => Err(Error::usage(format!(
            "{}: no dictionary for the recognizer (no package labels, no {PPOCR_KEYS} beside \
             it); give --dict FILE",
            args.rec.display()
        ))),
    }
}

/// One character (or string) a line, as PaddleOCR reads it: only the line end removed, so a
/// line holding a space is the space.
fn read_dictionary(file: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::usage(format!(
            "{}: cannot read the dictionary: {e}",
            file.display()
        ))
    })?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    if lines.is_empty() {
        return Err(Error::usage(format!(
            "{}: the dictionary is empty",
            file.display()
        )));
    }
    Ok(lines)
}
