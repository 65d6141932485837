//! PaddleDetection's output form, also what paddle2onnx makes of it (the ONNX NMS twin): rows
//! `[N, 6]` of (class, score, x1, y1, x2, y2) already in the photo's pixels (the graph divides
//! by `scale_factor`), an integer count of the real rows, and for Mask R-CNN the pasted binary
//! masks `[N, H, W]` at the photo's size. Rows with a negative class are padding.

use crate::paste::paste;
use crate::{floats, Geometry, Mask, Object};
use temblor_ir::{Error, Result};
use temblor_runtime::{Tensor, TensorData};

/// One real row of the table: its position (which is also its mask's), class, score and box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub index: usize,
    pub class: i64,
    pub score: f32,
    pub bbox: [f32; 4],
}

/// The table's real rows in the table's order: the first `count` rows, less the padding.
pub fn rows(outputs: &[(String, Tensor)]) -> Result<Vec<Row>> {
    let (name, table) = table(outputs)?;
    let values = floats(name, table)?;
    let count = outputs
        .iter()
        .find_map(|(_, t)| count(t))
        .unwrap_or(table.shape[0]);
    Ok(values
        .chunks_exact(6)
        .take(count)
        .enumerate()
        .filter(|(_, r)| r[0] >= 0.0)
        .map(|(index, r)| Row {
            index,
            class: r[0].round() as i64,
            score: r[1],
            bbox: [r[2], r[3], r[4], r[5]],
        })
        .collect())
}

pub(crate) fn objects(
    outputs: &[(String, Tensor)],
    min_score: f32,
    geometry: &Geometry,
) -> Result<Vec<Object>> {
    let n = table(outputs)?.1.shape[0];
    // Pasted masks [N, H, W], or each box's own [N, 1, M, M] (`compile --raw-masks`).
    let masks = outputs.iter().find(|(_, t)| {
        (t.shape.len() == 3 || (t.shape.len() == 4 && t.shape[1] == 1))
            && t.shape[0] == n
            && t.shape[0] > 0
    });
    let raw = match masks {
        Some((name, m)) if m.shape.len() == 4 => Some((floats(name, m)?, (m.shape[2], m.shape[3]))),
        _ => None,
    };
    let mut objects = Vec::new();
    for row in rows(outputs)?.into_iter().filter(|r| r.score >= min_score) {
        let i = row.index;
        let mask = match (&raw, masks) {
            (Some((probs, (m, n))), _) => {
                let plane = &probs[i * m * n..(i + 1) * m * n];
                Some(paste(plane, (*m, *n), row.bbox, geometry.original))
            }
            (None, Some((_, m))) => Some(pasted_mask(m, i, geometry)?),
            (None, None) => None,
        };
        objects.push(Object {
            class: row.class,
            label: None,
            score: row.score,
            bbox: row.bbox,
            mask,
        });
    }
    // The table is in NMS's order, by class; people read the best first.
    objects.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(objects)
}

/// The one float output of rows `[N, 6]`.
fn table(outputs: &[(String, Tensor)]) -> Result<(&str, &Tensor)> {
    let tables: Vec<&(String, Tensor)> = outputs
        .iter()
        .filter(|(_, t)| t.shape.len() == 2 && t.shape[1] == 6 && is_float(t))
        .collect();
    let [(name, table)] = tables.as_slice() else {
        let shapes: Vec<String> = outputs
            .iter()
            .map(|(n, t)| format!("{n} {} {:?}", t.dtype(), t.shape))
            .collect();
        return Err(Error::usage(format!(
            "expected one float output of detection rows [N, 6] (class, score, x1, y1, x2, y2); \
             the model's outputs are: {}",
            shapes.join(", ")
        )));
    };
    Ok((name, table))
}

fn is_float(t: &Tensor) -> bool {
    t.dtype().is_float()
}

/// The number of real rows, from a one-element integer output.
fn count(t: &Tensor) -> Option<usize> {
    if t.len() != 1 {
        return None;
    }
    match &t.data {
        TensorData::I32(v) => usize::try_from(v[0]).ok(),
        TensorData::I64(v) => usize::try_from(v[0]).ok(),
        _ => None,
    }
}

/// Row `i`'s mask of the pasted `[N, H, W]` masks, cut to the rectangle its pixels lie in.
fn pasted_mask(masks: &Tensor, i: usize, geometry: &Geometry) -> Result<Mask> {
    let (h, w) = (masks.shape[1], masks.shape[2]);
    if (h, w) != geometry.original {
        return Err(Error::bad_input(format!(
            "the masks are {h}x{w}, the photo {}x{}: expected masks pasted at the photo's size",
            geometry.original.0, geometry.original.1
        )));
    }
    let plane = i * h * w..(i + 1) * h * w;
    let inside: Vec<bool> = match &masks.data {
        TensorData::I32(v) => v[plane].iter().map(|&b| b != 0).collect(),
        TensorData::I64(v) => v[plane].iter().map(|&b| b != 0).collect(),
        TensorData::U8(v) => v[plane].iter().map(|&b| b != 0).collect(),
        TensorData::Bool(v) => v[plane].to_vec(),
        TensorData::F32(v) => v[plane].iter().map(|&b| b > 0.5).collect(),
        _ => {
            return Err(Error::usage(format!(
                "masks of type {} are not read",
                masks.dtype()
            )))
        }
    };
    Ok(Mask::tight(geometry.original, &inside))
}
