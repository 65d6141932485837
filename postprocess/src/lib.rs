//! From a model's output tensors to an answer a person can use: detected objects (boxes in the
//! original photo's pixels, class, label, score, instance masks), text regions and the text read
//! in them, or the top classes. Each [`Kind`] follows the reference implementation it mimics
//! (PaddleDetection, Ultralytics, PaddleOCR), and [`draw`] puts the answer on the photo.

pub mod crop;
pub mod ctc;
pub mod dbnet;
pub mod draw;
mod kind;
pub mod metadata;
pub mod paste;
mod results;
mod rle;
pub mod table;
mod top_k;
pub mod yolo;

pub use kind::{Kind, Postprocess, ScoreMode, TextDetection};
pub use results::{ClassScore, ImageResult, Mask, Object, TextLine};
pub use rle::Rle;

use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

/// Where the model's input pixels came from: the decoded photo's size and the resize that made
/// the input from it (padding is at the bottom and right, so it moves no coordinate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    /// The photo's height, width as decoded.
    pub original: (usize, usize),
    /// Input pixels per original pixel, (y, x).
    pub scale: (f32, f32),
}

impl Geometry {
    /// A point in the model input's pixels, in the photo's pixels, kept inside the photo.
    pub fn to_original(&self, x: f32, y: f32) -> [f32; 2] {
        let (h, w) = self.original;
        [
            (x / self.scale.1).clamp(0.0, w as f32),
            (y / self.scale.0).clamp(0.0, h as f32),
        ]
    }
}

/// What `postprocess` makes of one image's outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    pub objects: Vec<Object>,
    pub text: Vec<TextLine>,
    pub classes: Vec<ClassScore>,
}

/// The answer in one image's `outputs` (by graph output name, batch 1), `labels` naming classes
/// by id (for text recognition: the dictionary, by class id - 1, CTC's blank being class 0).
pub fn postprocess(
    how: &Postprocess,
    outputs: &[(String, Tensor)],
    geometry: &Geometry,
    labels: &[String],
) -> Result<Answer> {
    let mut answer = Answer::default();
    match how {
        Postprocess::DetectionTable { min_score } => {
            answer.objects = table::objects(outputs, *min_score, geometry)?;
        }
        Postprocess::Yolo {
            min_score,
            iou,
            max_detections,
        } => {
            answer.objects = yolo::objects(outputs, *min_score, *iou, *max_detections, geometry)?;
        }
        Postprocess::TextDetection(settings) => {
            answer.text = dbnet::text_regions(single(outputs)?, settings, geometry)?;
        }
        Postprocess::TextRecognition => {
            let (text, confidence) = ctc::decode(single(outputs)?, labels)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::bad_input("the recognizer returned no text line"))?;
            let (h, w) = geometry.original;
            answer.text.push(TextLine {
                polygon: vec![
                    [0.0, 0.0],
                    [w as f32, 0.0],
                    [w as f32, h as f32],
                    [0.0, h as f32],
                ],
                score: 1.0,
                text: Some(text),
                confidence: Some(confidence),
                angle: None,
            });
        }
        Postprocess::Classification { top_k } => {
            answer.classes = top_k::classes(single(outputs)?, *top_k)?;
        }
    }
    name(&mut answer, labels, how);
    Ok(answer)
}

/// The one output a single-output kind reads.
fn single(outputs: &[(String, Tensor)]) -> Result<&Tensor> {
    match outputs {
        [(_, t)] => Ok(t),
        _ => {
            let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
            Err(Error::usage(format!(
                "this postprocessing reads one output; the model has {}: {}",
                outputs.len(),
                names.join(", ")
            )))
        }
    }
}

/// Labels the answer's classes (a text recognizer's labels are its dictionary, not class names).
fn name(answer: &mut Answer, labels: &[String], how: &Postprocess) {
    if matches!(how, Postprocess::TextRecognition) {
        return;
    }
    let label = |class: i64| {
        usize::try_from(class)
            .ok()
            .and_then(|c| labels.get(c))
            .cloned()
    };
    for o in &mut answer.objects {
        o.label = label(o.class);
    }
    for c in &mut answer.classes {
        c.label = label(c.class);
    }
}

/// Float values of an output, whatever float type it holds.
pub(crate) fn floats(name: &str, t: &Tensor) -> Result<Vec<f32>> {
    use temblor_runtime::TensorData;
    match &t.data {
        TensorData::F32(v) => Ok(v.clone()),
        TensorData::F16(v) => Ok(v.iter().map(|x| x.to_f32()).collect()),
        TensorData::BF16(v) => Ok(v.iter().map(|x| x.to_f32()).collect()),
        TensorData::F64(v) => Ok(v.iter().map(|&x| x as f32).collect()),
        _ => Err(Error::usage(format!(
            "output '{name}' is {}, not a float tensor",
            t.dtype()
        ))),
    }
}
