//! COCO's JSON: ground truth read from an annotation file (images by `file_name`, boxes as
//! x, y, w, h), and the dump `eval --dump` writes: the ground truth and detections it scored, in
//! the form pycocotools loads (`COCO()` on the file, `loadRes` on its `detections`).

use super::{Detection, GtBox};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use temblor_ir::{Error, Result};

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    #[serde(default)]
    categories: Vec<Category>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: i64,
    file_name: String,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: i64,
    category_id: i64,
    bbox: [f64; 4],
    area: Option<f64>,
    #[serde(default)]
    iscrowd: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub id: i64,
    pub name: String,
}

/// The ground truth of the evaluated images, in their order.
pub struct GroundTruth {
    pub image_ids: Vec<i64>,
    pub boxes: Vec<Vec<GtBox>>,
    pub categories: Vec<Category>,
}

/// Reads `path` and picks the annotations of `images` (matched by file name).
pub fn read_ground_truth(path: &Path, images: &[PathBuf]) -> Result<GroundTruth> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "{}: cannot read the ground truth: {e}",
            path.display()
        ))
    })?;
    let file: CocoFile = serde_json::from_str(&text).map_err(|e| {
        Error::usage(format!(
            "{}: not COCO ground truth (images, annotations, categories): {e}",
            path.display()
        ))
    })?;
    let ids: HashMap<&str, i64> = file
        .images
        .iter()
        .map(|i| (i.file_name.as_str(), i.id))
        .collect();
    let image_ids = images
        .iter()
        .map(|image| {
            let name = image
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            ids.get(name).copied().ok_or_else(|| {
                Error::usage(format!(
                    "{}: no image with file_name '{name}'",
                    path.display()
                ))
            })
        })
        .collect::<Result<Vec<i64>>>()?;
    let slot: HashMap<i64, usize> = image_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let mut boxes = vec![Vec::new(); images.len()];
    for a in &file.annotations {
        if let Some(&i) = slot.get(&a.image_id) {
            boxes[i].push(GtBox {
                class: a.category_id,
                bbox: a.bbox,
                area: a.area.unwrap_or(a.bbox[2] * a.bbox[3]),
                crowd: a.iscrowd != 0,
            });
        }
    }
    Ok(GroundTruth {
        image_ids,
        boxes,
        categories: file.categories,
    })
}

/// An evaluated image as the dump names it.
pub struct DumpImage {
    pub id: i64,
    pub file_name: String,
    /// Height, width.
    pub size: (usize, usize),
}

#[derive(Serialize)]
struct Dump {
    images: Vec<ImageDoc>,
    annotations: Vec<AnnotationDoc>,
    categories: Vec<Category>,
    detections: Vec<DetectionDoc>,
}

#[derive(Serialize)]
struct ImageDoc {
    id: i64,
    file_name: String,
    height: usize,
    width: usize,
}

#[derive(Serialize)]
struct AnnotationDoc {
    id: usize,
    image_id: i64,
    category_id: i64,
    bbox: [f64; 4],
    area: f64,
    iscrowd: u8,
}

#[derive(Serialize)]
struct DetectionDoc {
    image_id: i64,
    category_id: i64,
    bbox: [f64; 4],
    score: f64,
}

/// Writes the ground truth and detections of `images` (same order) as one COCO JSON object;
/// detections keep their order, which decides ties in score exactly as pycocotools breaks them.
pub fn write_dump(
    path: &Path,
    images: &[DumpImage],
    gt: &[Vec<GtBox>],
    dets: &[Vec<Detection>],
    categories: Vec<Category>,
) -> Result<()> {
    let annotations = images
        .iter()
        .zip(gt)
        .flat_map(|(image, boxes)| boxes.iter().map(move |g| (image.id, g)))
        .enumerate()
        .map(|(i, (image_id, g))| AnnotationDoc {
            id: i + 1,
            image_id,
            category_id: g.class,
            bbox: g.bbox,
            area: g.area,
            iscrowd: g.crowd as u8,
        })
        .collect();
    let detections = images
        .iter()
        .zip(dets)
        .flat_map(|(image, dets)| {
            dets.iter().map(move |d| DetectionDoc {
                image_id: image.id,
                category_id: d.class,
                bbox: d.xywh(),
                score: d.score as f64,
            })
        })
        .collect();
    let dump = Dump {
        images: images
            .iter()
            .map(|i| ImageDoc {
                id: i.id,
                file_name: i.file_name.clone(),
                height: i.size.0,
                width: i.size.1,
            })
            .collect(),
        annotations,
        categories,
        detections,
    };
    let text = serde_json::to_string(&dump)
        .map_err(|e| Error::internal(format!("cannot serialize the dump: {e}")))?;
    std::fs::write(path, text)
        .map_err(|e| Error::usage(format!("{}: cannot write the dump: {e}", path.display())))
}
