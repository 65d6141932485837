//! The typed attributes of PaddleDetection's detection operators, read from Paddle's attribute
//! lists with Paddle's defaults for attributes that older programs lack, and listed back under
//! Paddle's names for the views and the TensorRT plugin nodes. Their kernels and shape rules
//! are in ops_lib.

use super::paddle_attrs::Attrs;
use crate::AttrValue;
use serde::{Deserialize, Serialize};

/// One attribute under Paddle's name, as the views and plugin nodes list it.
pub(super) type Named = (&'static str, AttrValue);

fn flag(b: bool) -> AttrValue {
    AttrValue::Int(b as i64)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct YoloBoxAttrs {
    /// Anchor (width, height) pairs in input-image pixels; `None` when they come as input 2
    /// (`Anchors`), which the `explicit_anchors` pass makes them.
    pub anchors: Option<Vec<i64>>,
    pub class_num: usize,
    pub conf_thresh: f32,
    pub downsample_ratio: i64,
    pub clip_bbox: bool,
    pub scale_x_y: f32,
    /// The head has A extra leading IoU channels and confidence blends objectness with them.
    pub iou_aware: bool,
    pub iou_aware_factor: f32,
}

impl YoloBoxAttrs {
    pub(super) fn parse(a: &Attrs) -> Result<YoloBoxAttrs, String> {
        let anchors = match a.has("anchors") {
            true => Some(a.ints("anchors")?),
            false => None,
        };
        if anchors
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.len() % 2 != 0)
        {
            return Err(a.invalid("anchors", "must hold a non-empty list of (w, h) pairs"));
        }
        let class_num = a.int("class_num")?;
        let class_num = usize::try_from(class_num)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| a.invalid("class_num", "must be positive"))?;
        let downsample_ratio = a.int("downsample_ratio")?;
        if downsample_ratio <= 0 {
            return Err(a.invalid("downsample_ratio", "must be positive"));
        }
        Ok(YoloBoxAttrs {
            anchors,
            class_num,
            conf_thresh: a.float("conf_thresh")?,
            downsample_ratio,
            clip_bbox: a.bool_or("clip_bbox", true)?,
            scale_x_y: a.float_or("scale_x_y", 1.0)?,
            iou_aware: a.bool_or("iou_aware", false)?,
            iou_aware_factor: a.float_or("iou_aware_factor", 0.5)?,
        })
    }

    pub(super) fn named(&self) -> Vec<Named> {
        let mut v = Vec::new();
        if let Some(anchors) = &self.anchors {
            v.push(("anchors", AttrValue::Ints(anchors.clone())));
        }
        v.extend([
            ("class_num", AttrValue::Int(self.class_num as i64)),
            ("conf_thresh", AttrValue::Float(self.conf_thresh)),
            ("downsample_ratio", AttrValue::Int(self.downsample_ratio)),
            ("clip_bbox", flag(self.clip_bbox)),
            ("scale_x_y", AttrValue::Float(self.scale_x_y)),
            ("iou_aware", flag(self.iou_aware)),
            ("iou_aware_factor", AttrValue::Float(self.iou_aware_factor)),
        ]);
        v
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MulticlassNmsAttrs {
    /// A class skipped entirely; -1 for none.
    pub background_label: i64,
    pub score_threshold: f32,
    /// Candidates per class before NMS; -1 for all.
    pub nms_top_k: i64,
    pub nms_threshold: f32,
    pub nms_eta: f32,
    /// Detections per image after NMS; -1 for all.
    pub keep_top_k: i64,
    pub normalized: bool,
}

impl MulticlassNmsAttrs {
    pub(super) fn parse(a: &Attrs) -> Result<MulticlassNmsAttrs, String> {
        Ok(MulticlassNmsAttrs {
            background_label: a.int_or("background_label", 0)?,
            score_threshold: a.float("score_threshold")?,
            nms_top_k: a.int("nms_top_k")?,
            nms_threshold: a.float_or("nms_threshold", 0.3)?,
            nms_eta: a.float_or("nms_eta", 1.0)?,
            keep_top_k: a.int("keep_top_k")?,
            normalized: a.bool_or("normalized", true)?,
        })
    }

    pub(super) fn named(&self) -> Vec<Named> {
        vec![
            ("background_label", AttrValue::Int(self.background_label)),
            ("score_threshold", AttrValue::Float(self.score_threshold)),
            ("nms_top_k", AttrValue::Int(self.nms_top_k)),
            ("nms_threshold", AttrValue::Float(self.nms_threshold)),
            ("nms_eta", AttrValue::Float(self.nms_eta)),
            ("keep_top_k", AttrValue::Int(self.keep_top_k)),
            ("normalized", flag(self.normalized)),
        ]
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatrixNmsAttrs {
    pub background_label: i64,
    /// Candidates must score above this before decay.
    pub score_threshold: f32,
    /// Detections must score above this after decay.
    pub post_threshold: f32,
    pub nms_top_k: i64,
    pub keep_top_k: i64,
    pub normalized: bool,
    pub use_gaussian: bool,
    pub gaussian_sigma: f32,
}

impl MatrixNmsAttrs {
    pub(super) fn parse(a: &Attrs) -> Result<MatrixNmsAttrs, String> {
        Ok(MatrixNmsAttrs {
            background_label: a.int_or("background_label", 0)?,
            score_threshold: a.float("score_threshold")?,
            post_threshold: a.float("post_threshold")?,
            nms_top_k: a.int("nms_top_k")?,
            keep_top_k: a.int("keep_top_k")?,
            normalized: a.bool_or("normalized", true)?,
            use_gaussian: a.bool_or("use_gaussian", false)?,
            gaussian_sigma: a.float_or("gaussian_sigma", 2.0)?,
        })
    }

    pub(super) fn named(&self) -> Vec<Named> {
        vec![
            ("background_label", AttrValue::Int(self.background_label)),
            ("score_threshold", AttrValue::Float(self.score_threshold)),
            ("post_threshold", AttrValue::Float(self.post_threshold)),
            ("nms_top_k", AttrValue::Int(self.nms_top_k)),
            ("keep_top_k", AttrValue::Int(self.keep_top_k)),
            ("normalized", flag(self.normalized)),
            ("use_gaussian", flag(self.use_gaussian)),
            ("gaussian_sigma", AttrValue::Float(self.gaussian_sigma)),
        ]
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateProposalsAttrs {
    /// Anchors kept before NMS per image; 0 or less for all.
    pub pre_nms_top_n: i64,
    /// Proposals kept after NMS per image; 0 or less for all.
    pub post_nms_top_n: i64,
    /// 0 or less skips NMS.
    pub nms_thresh: f32,
    pub min_size: f32,
    pub eta: f32,
    /// Pixel boxes whose width counts both end pixels (`x2 - x1 + 1`).
    pub pixel_offset: bool,
}

impl GenerateProposalsAttrs {
    pub(super) fn parse(a: &Attrs) -> Result<GenerateProposalsAttrs, String> {
        Ok(GenerateProposalsAttrs {
            pre_nms_top_n: a.int("pre_nms_topN")?,
            post_nms_top_n: a.int("post_nms_topN")?,
            nms_thresh: a.float("nms_thresh")?,
            min_size: a.float("min_size")?,
            eta: a.float_or("eta", 1.0)?,
            pixel_offset: a.bool_or("pixel_offset", true)?,
        })
    }

    pub(super) fn named(&self) -> Vec<Named> {
        vec![
            ("pre_nms_topN", AttrValue::Int(self.pre_nms_top_n)),
            ("post_nms_topN", AttrValue::Int(self.post_nms_top_n)),
            ("nms_thresh", AttrValue::Float(self.nms_thresh)),
            ("min_size", AttrValue::Float(self.min_size)),
            ("eta", AttrValue::Float(self.eta)),
            ("pixel_offset", flag(self.pixel_offset)),
        ]
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistributeFpnAttrs {
    pub min_level: i32,
    pub max_level: i32,
    pub refer_level: i32,
    pub refer_scale: i32,
    /// Pixel boxes whose width counts both end pixels (`x2 - x1 + 1`).
    pub pixel_offset: bool,
}

impl DistributeFpnAttrs {
    pub(super) fn parse(a: &Attrs) -> Result<DistributeFpnAttrs, String> {
        let level = |name: &str| {
            let v = a.int(name)?;
            i32::try_from(v).map_err(|_| a.invalid(name, "does not fit int32"))
        };
        let attrs = DistributeFpnAttrs {
            min_level: level("min_level")?,
            max_level: level("max_level")?,
            refer_level: level("refer_level")?,
            refer_scale: level("refer_scale")?,
            pixel_offset: a.bool_or("pixel_offset", true)?,
        };
        if attrs.max_level < attrs.min_level {
            return Err(a.invalid("max_level", "must not be below min_level"));
        }
        if attrs.refer_scale <= 0 {
            return Err(a.invalid("refer_scale", "must be positive"));
        }
        Ok(attrs)
    }

    /// Number of FPN levels, the count of both variadic outputs.
    pub fn num_levels(&self) -> usize {
        (self.max_level - self.min_level + 1) as usize
    }

    pub(super) fn named(&self) -> Vec<Named> {
        vec![
            ("min_level", AttrValue::Int(self.min_level as i64)),
            ("max_level", AttrValue::Int(self.max_level as i64)),
            ("refer_level", AttrValue::Int(self.refer_level as i64)),
            ("refer_scale", AttrValue::Int(self.refer_scale as i64)),
            ("pixel_offset", flag(self.pixel_offset)),
        ]
    }
}
