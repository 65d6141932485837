//! The preprocessing a package of a known kind gets when nothing recorded one: what the
//! reference implementation of that kind does (PaddleOCR, Ultralytics, torchvision's ImageNet).

use super::{ChannelOrder, InputNames, Interpolation, Layout, Pad, PreprocessConfig, Resize};
use temblor_ir::{DType, Graph};
use temblor_postprocess::Kind;

/// PaddleOCR's `DetResizeForTest` (`limit_type: max`): the longer side at most 960, each side
/// then rounded to a multiple of 32.
pub const TEXT_DETECTION_LIMIT: usize = 960;
pub const TEXT_DETECTION_MULTIPLE: usize = 32;
/// PaddleOCR's recognizers read lines 48 pixels high.
pub const TEXT_RECOGNITION_HEIGHT: usize = 48;
/// A text line's width at most this: past it a line is squeezed rather than the recognizer
/// given an unbounded tensor (PaddleOCR has no bound; 3200 is 66 times the height).
pub const TEXT_RECOGNITION_MAX_WIDTH: usize = 3200;
/// Ultralytics' letterbox grey, 114 of 255.
const YOLO_PAD: f32 = 114.0 / 255.0;
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The default preprocessing of a `kind` package whose graph is `graph`; none for PaddleDetection
/// tables (their exporter writes `infer_cfg.yml`, which a package records) and for a YOLO or
/// classification graph without a static image size.
pub fn for_kind(kind: Kind, graph: &Graph) -> Option<PreprocessConfig> {
    let plain = PreprocessConfig {
        resize: None,
        pad: None,
        scale: 1.0 / 255.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        channels: ChannelOrder::Rgb,
        layout: Layout::Nchw,
        inputs: InputNames::default(),
        labels: Vec::new(),
    };
    // PaddleOCR: BGR, (x / 255 - 0.5) / 0.5.
    let paddle_ocr = |resize: Resize| PreprocessConfig {
        resize: Some(resize),
        mean: [0.5; 3],
        std: [0.5; 3],
        channels: ChannelOrder::Bgr,
        ..plain.clone()
    };
    let free = Resize {
        size: None,
        keep_ratio: false,
        limit_side: None,
        height: None,
        multiple: None,
        interpolation: Interpolation::Linear,
    };
    match kind {
        Kind::DetectionTable => None,
        Kind::TextDetection => Some(paddle_ocr(Resize {
            limit_side: Some(TEXT_DETECTION_LIMIT),
            multiple: Some(TEXT_DETECTION_MULTIPLE),
            ..free
        })),
        Kind::TextRecognition => Some(paddle_ocr(Resize {
            height: Some(TEXT_RECOGNITION_HEIGHT),
            limit_side: Some(TEXT_RECOGNITION_MAX_WIDTH),
            ..free
        })),
        Kind::Yolo => {
            let (size, layout) = static_image_size(graph)
                .or_else(|| ultralytics_size(graph).map(|size| (size, Layout::Nchw)))?;
            Some(PreprocessConfig {
                resize: Some(Resize {
                    keep_ratio: true,
                    ..Resize::to(size, Interpolation::Linear)
                }),
                pad: Some(Pad {
                    size: Some(size),
                    stride: None,
                    value: [YOLO_PAD; 3],
                }),
                layout,
                ..plain
            })
        }
        Kind::Classification => {
            let (size, layout) = static_image_size(graph)?;
            Some(PreprocessConfig {
                resize: Some(Resize::to(size, Interpolation::Linear)),
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
                layout,
                ..plain
            })
        }
    }
}

/// The height, width and layout of the graph's only rank-4 float input with 3 channels, where
/// both sides are static.
/// The training size an Ultralytics export records (`imgsz: [320, 320]` in its metadata), for
/// exports with dynamic height and width.
fn ultralytics_size(graph: &Graph) -> Option<[usize; 2]> {
    let (_, value) = graph.metadata.iter().find(|(k, _)| k == "imgsz")?;
    let sizes: Vec<usize> = value
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|v| v.trim().parse().ok())
        .collect::<Option<_>>()?;
    match sizes[..] {
        [h, w] if h > 0 && w > 0 => Some([h, w]),
        [s] if s > 0 => Some([s, s]),
        _ => None,
    }
}

fn static_image_size(graph: &Graph) -> Option<([usize; 2], Layout)> {
    let mut images = graph
        .inputs
        .iter()
        .filter_map(|&id| graph.node(id).outputs.first())
        .filter(|i| matches!(i.ty.dtype, DType::F32 | DType::F16 | DType::BF16))
        .filter_map(|i| {
            let d: Vec<Option<usize>> = i.ty.shape.dims().iter().map(|d| d.known()).collect();
            match d[..] {
                [_, Some(3), Some(h), Some(w)] => Some(([h, w], Layout::Nchw)),
                [_, Some(h), Some(w), Some(3)] => Some(([h, w], Layout::Nhwc)),
                _ => None,
            }
        });
    let first = images.next()?;
    images.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_ir::{Dim, Graph, Node, Op, Shape, TensorInfo, TensorType};

    /// A graph of one float input `x` of `dims` (None: symbolic).
    fn graph(dims: &[Option<usize>]) -> Graph {
        let dims: Vec<Dim> = dims
            .iter()
            .map(|d| d.map_or(Dim::Symbol("n".into()), Dim::Known))
            .collect();
        let mut g = Graph::default();
        let info = TensorInfo {
            name: "x".into(),
            ty: TensorType::new(DType::F32, Shape(dims)),
        };
        let id = g.add_node(Node::new("x", Op::Input { index: 0 }, vec![info]));
        g.inputs.push(id);
        g
    }

    #[test]
    fn paddle_ocr_sizes() {
        let g = graph(&[None, Some(3), None, None]);
        let det = for_kind(Kind::TextDetection, &g).unwrap();
        // page.png: 191 x 384 -> 192 x 384, as the reference input.
        assert_eq!(det.resized(191, 384).0, (192, 384));
        assert_eq!(det.resized(1000, 2000).0, (480, 960));
        assert_eq!(det.resized(10, 20).0, (32, 32));
        assert_eq!(det.channels, ChannelOrder::Bgr);
        let rec = for_kind(Kind::TextRecognition, &g).unwrap();
        assert_eq!(rec.resized(23, 289).0, (48, 604));
        assert_eq!(rec.resized(10, 2000).0, (48, 3200));
        assert!(for_kind(Kind::DetectionTable, &g).is_none());
        assert!(for_kind(Kind::Yolo, &g).is_none(), "no static size");
        let mut g = g;
        g.metadata.push(("imgsz".into(), "[320, 320]".into()));
        let yolo = for_kind(Kind::Yolo, &g).expect("Ultralytics' recorded size");
        assert_eq!(yolo.pad.as_ref().unwrap().size, Some([320, 320]));
    }

    #[test]
    fn yolo_letterbox_and_classification_take_the_graph_size() {
        let g = graph(&[Some(1), Some(3), Some(640), Some(640)]);
        let yolo = for_kind(Kind::Yolo, &g).unwrap();
        assert_eq!(yolo.resized(480, 640).0, (480, 640));
        assert_eq!(yolo.pad.as_ref().unwrap().value, [114.0 / 255.0; 3]);
        let g = graph(&[Some(1), Some(224), Some(224), Some(3)]);
        let cls = for_kind(Kind::Classification, &g).unwrap();
        assert_eq!(cls.layout, Layout::Nhwc);
        assert_eq!(cls.resized(100, 300).0, (224, 224));
    }
}
