//! What a model's outputs mean ([`Kind`]) and the settings that turn them into an answer
//! ([`Postprocess`]), told from the outputs' shapes when nobody says, and recorded in a package
//! as `postprocess.yml`.

use serde::{Deserialize, Serialize};
use std::path::Path;
use temblor_ir::{package, DType, Dim, Error, Result};

/// The postprocessing kinds, as `compile --postprocess KIND` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// PaddleDetection's `[N, 6]` rows (class, score, x1, y1, x2, y2) in the photo's pixels,
    /// with a row count and instance masks where the model has them.
    DetectionTable,
    /// Ultralytics YOLO heads `[1, 4 + classes (+ 32 mask coefficients), anchors]`, with mask
    /// prototypes `[1, 32, h, w]` for segmentation models.
    Yolo,
    /// DBNet text detection (PP-OCR det): a text probability map `[1, 1, H, W]`.
    TextDetection,
    /// CTC text recognition (PP-OCR rec): per time step class probabilities `[1, T, classes]`.
    TextRecognition,
    /// Image classification: class scores `[1, classes]`.
    Classification,
}

/// How to turn a kind's outputs into an answer; `postprocess.yml` in a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Postprocess {
    DetectionTable {
        /// Rows scoring below are left out (PaddleDetection's `draw_threshold`).
        #[serde(default = "half")]
        min_score: f32,
    },
    Yolo {
        /// Ultralytics' `conf` (0.25).
        #[serde(default = "quarter")]
        min_score: f32,
        /// Ultralytics' NMS `iou` (0.7).
        #[serde(default = "yolo_iou")]
        iou: f32,
        /// Ultralytics' `max_det` (300).
        #[serde(default = "yolo_max_detections")]
        max_detections: usize,
    },
    TextDetection(TextDetection),
    TextRecognition,
    Classification {
        #[serde(default = "five")]
        top_k: usize,
    },
}

/// PaddleOCR's `DBPostProcess` settings, its defaults in brackets, but for the score mode: scored
/// over its minimum-area box (PaddleOCR's default), a bent line of a photographed page holds too
/// much background and is dropped whole (one of page.png's seven); scored over the region
/// itself, PaddleOCR's mode for curved text, every line is found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextDetection {
    /// A pixel is text where the probability exceeds this [0.3].
    #[serde(default = "db_threshold")]
    pub threshold: f32,
    /// A region is kept where its mean probability reaches this [0.6].
    #[serde(default = "db_box_score")]
    pub box_score: f32,
    /// How far a region's shrunk polygon is grown back, relative to area / perimeter [1.5].
    #[serde(default = "db_unclip")]
    pub unclip_ratio: f32,
    /// Regions considered at most [1000].
    #[serde(default = "db_max_candidates")]
    pub max_candidates: usize,
    /// Over what a region's score is averaged [slow; PaddleOCR's own default is fast].
    #[serde(default)]
    pub score_mode: ScoreMode,
}

/// PaddleOCR's `det_db_score_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreMode {
    /// Over the region's minimum-area rectangle (PaddleOCR's default): quick, but a bent line's
    /// rectangle holds much background, which drops whole lines of a photographed page.
    Fast,
    /// Over the region itself, as PaddleOCR recommends for curved text.
    #[default]
    Slow,
}

impl Default for TextDetection {
    fn default() -> TextDetection {
        TextDetection {
            threshold: db_threshold(),
            box_score: db_box_score(),
            unclip_ratio: db_unclip(),
            max_candidates: db_max_candidates(),
            score_mode: ScoreMode::default(),
        }
    }
}

fn half() -> f32 {
    0.5
}
fn quarter() -> f32 {
    0.25
}
fn yolo_iou() -> f32 {
    0.7
}
fn yolo_max_detections() -> usize {
    300
}
fn five() -> usize {
    5
}
fn db_threshold() -> f32 {
    0.3
}
fn db_box_score() -> f32 {
    0.6
}
fn db_unclip() -> f32 {
    1.5
}
fn db_max_candidates() -> usize {
    1000
}

impl Kind {
    /// The kind with its reference implementation's default settings.
    pub fn defaults(self) -> Postprocess {
        match self {
            Kind::DetectionTable => Postprocess::DetectionTable { min_score: half() },
            Kind::Yolo => Postprocess::Yolo {
                min_score: quarter(),
                iou: yolo_iou(),
                max_detections: yolo_max_detections(),
            },
            Kind::TextDetection => Postprocess::TextDetection(TextDetection::default()),
            Kind::TextRecognition => Postprocess::TextRecognition,
            Kind::Classification => Postprocess::Classification { top_k: five() },
        }
    }

    /// The kind a model's outputs (name, type, dims) have the shape of, if one: a float output
    /// of rows `[N, 6]`; one `[1, C, A]` output with more anchors than channels (and optionally
    /// `[1, 32, h, w]` prototypes); a single `[N, T, C]`; a single `[N, C]`. A single
    /// `[N, 1, H, W]` map is not told: DBNet's text probability has the shape of every saliency
    /// and matting model's output (U^2-Net, the zoo's ViT), so `--postprocess text-detection`
    /// says it.
    pub fn infer(outputs: &[(&str, DType, &[Dim])]) -> Option<Kind> {
        let float = |t: DType| t.is_float();
        let known = |d: &Dim| d.known();
        let integer = |t: DType| matches!(t, DType::I32 | DType::I64);
        // PaddleDetection's rows, or rows whose width shape inference lost (a Concat of
        // run-time parts in R-CNN heads) beside the integer row count they come with.
        let counted = outputs.iter().any(|(_, t, d)| integer(*t) && d.len() == 1);
        if outputs.iter().any(|(_, t, d)| {
            float(*t)
                && d.len() == 2
                && (known(&d[1]) == Some(6) || (counted && known(&d[1]).is_none()))
        }) {
            return Some(Kind::DetectionTable);
        }
        let floats: Vec<&[Dim]> = outputs
            .iter()
            .filter(|(_, t, _)| float(*t))
            .map(|(_, _, d)| *d)
            .collect();
        let yolo_head = |d: &[Dim]| {
            d.len() == 3
                && match (known(&d[1]), known(&d[2])) {
                    (Some(c), Some(a)) => c > 4 && a > c,
                    (Some(c), None) => c > 4,
                    _ => false,
                }
        };
        match floats.as_slice() {
            [d] if yolo_head(d) && d.len() == 3 && known(&d[2]).is_some() => Some(Kind::Yolo),
            [d, p] if yolo_head(d) && p.len() == 4 => Some(Kind::Yolo),
            [d] if yolo_head(d) => Some(Kind::Yolo),
            [d] if d.len() == 3 => Some(Kind::TextRecognition),
            [d] if d.len() == 2 => Some(Kind::Classification),
            _ => None,
        }
    }
}

impl Postprocess {
    pub fn kind(&self) -> Kind {
        match self {
            Postprocess::DetectionTable { .. } => Kind::DetectionTable,
            Postprocess::Yolo { .. } => Kind::Yolo,
            Postprocess::TextDetection(_) => Kind::TextDetection,
            Postprocess::TextRecognition => Kind::TextRecognition,
            Postprocess::Classification { .. } => Kind::Classification,
        }
    }

    /// Keeps only what scores at least `score`, where the kind has such a threshold.
    pub fn set_min_score(&mut self, score: f32) {
        match self {
            Postprocess::DetectionTable { min_score } | Postprocess::Yolo { min_score, .. } => {
                *min_score = score;
            }
            Postprocess::TextDetection(settings) => settings.box_score = score,
            Postprocess::TextRecognition | Postprocess::Classification { .. } => {}
        }
    }

    /// Writes the settings into the package directory `dir`.
    pub fn write_to_package(&self, dir: &Path) -> Result<()> {
        let yaml = serde_saphyr::to_string(self)
            .map_err(|e| Error::internal(format!("cannot serialize the postprocessing: {e}")))?;
        let text = format!(
            "# What this package's outputs mean and how `temblor run --image` reads them.\n{yaml}"
        );
        let path = dir.join(package::POSTPROCESS);
        std::fs::write(&path, text).map_err(|e| Error::internal(format!("{}: {e}", path.display())))
    }

    /// The settings a package recorded; none when it recorded none.
    pub fn from_package(dir: &Path) -> Result<Option<Postprocess>> {
        let path = dir.join(package::POSTPROCESS);
        if !path.is_file() {
            return Ok(None);
        }
        let bad = |e: String| Error::bad_input(format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        serde_saphyr::from_str(&text)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(d: &[Option<usize>]) -> Vec<Dim> {
        d.iter()
            .map(|d| match d {
                Some(n) => Dim::Known(*n),
                None => Dim::Symbol("n".into()),
            })
            .collect()
    }

    #[test]
    fn kinds_are_told_from_the_real_models_output_shapes() {
        let cases: [(&[&[Option<usize>]], Kind); 6] = [
            (&[&[None, Some(6)], &[None]], Kind::DetectionTable),
            (
                &[&[None, None], &[Some(1)], &[None, None, None]],
                Kind::DetectionTable,
            ),
            (&[&[Some(1), Some(22), Some(2100)]], Kind::Yolo),
            (
                &[
                    &[Some(1), Some(37), Some(8400)],
                    &[Some(1), Some(32), Some(160), Some(160)],
                ],
                Kind::Yolo,
            ),
            (&[&[None, None, Some(6625)]], Kind::TextRecognition),
            (&[&[None, Some(2)]], Kind::Classification),
        ];
        for (shapes, kind) in cases {
            let d: Vec<Vec<Dim>> = shapes.iter().map(|s| dims(s)).collect();
            let outputs: Vec<(&str, DType, &[Dim])> = d
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    (
                        "out",
                        if i > 0 && d.len() != 4 {
                            DType::I32
                        } else {
                            DType::F32
                        },
                        d.as_slice(),
                    )
                })
                .collect();
            assert_eq!(Kind::infer(&outputs), Some(kind), "{shapes:?}");
        }
    }

    #[test]
    fn settings_read_back_equal() {
        let dir = std::env::temp_dir().join(format!("temblor-pp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for kind in [
            Kind::DetectionTable,
            Kind::Yolo,
            Kind::TextDetection,
            Kind::TextRecognition,
            Kind::Classification,
        ] {
            let how = kind.defaults();
            how.write_to_package(&dir).unwrap();
            assert_eq!(Postprocess::from_package(&dir).unwrap(), Some(how));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
