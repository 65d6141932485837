//! The CUDA C++ sources of the backend's kernels: the runtime's (`runtime/cuda`) and ops_lib's
//! (`ops_lib/cuda`), built into the binary so that a plan compiles them with NVRTC where it
//! runs, for the GPU it finds, with no toolkit installed. Each `.cu` file is one module; the
//! headers are given to every compilation by name, as `#include` finds them.

/// One source file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Source {
    /// The file name, as `#include` names a header.
    pub name: &'static str,
    pub text: &'static str,
}

/// The headers, for every module.
pub(crate) const HEADERS: &[Source] = &[
    Source {
        name: "activation.cuh",
        text: include_str!("../../cuda/activation.cuh"),
    },
    Source {
        name: "binary.cuh",
        text: include_str!("../../cuda/binary.cuh"),
    },
    Source {
        name: "conv.cuh",
        text: include_str!("../../cuda/conv.cuh"),
    },
    Source {
        name: "convert.cuh",
        text: include_str!("../../cuda/convert.cuh"),
    },
    Source {
        name: "layer_norm.cuh",
        text: include_str!("../../cuda/layer_norm.cuh"),
    },
    Source {
        name: "math.cuh",
        text: include_str!("../../cuda/math.cuh"),
    },
    Source {
        name: "movement.cuh",
        text: include_str!("../../cuda/movement.cuh"),
    },
    Source {
        name: "pool.cuh",
        text: include_str!("../../cuda/pool.cuh"),
    },
    Source {
        name: "quant.cuh",
        text: include_str!("../../cuda/quant.cuh"),
    },
    Source {
        name: "reduce.cuh",
        text: include_str!("../../cuda/reduce.cuh"),
    },
    Source {
        name: "resize.cuh",
        text: include_str!("../../cuda/resize.cuh"),
    },
    Source {
        name: "softmax.cuh",
        text: include_str!("../../cuda/softmax.cuh"),
    },
    Source {
        name: "boxes.cuh",
        text: include_str!("../../../ops_lib/cuda/boxes.cuh"),
    },
    Source {
        name: "deform_sample.cuh",
        text: include_str!("../../../ops_lib/cuda/deform_sample.cuh"),
    },
    Source {
        name: "distribute_fpn.cuh",
        text: include_str!("../../../ops_lib/cuda/distribute_fpn.cuh"),
    },
    Source {
        name: "generate_proposals.cuh",
        text: include_str!("../../../ops_lib/cuda/generate_proposals.cuh"),
    },
    Source {
        name: "grid_sample.cuh",
        text: include_str!("../../../ops_lib/cuda/grid_sample.cuh"),
    },
    Source {
        name: "matrix_nms.cuh",
        text: include_str!("../../../ops_lib/cuda/matrix_nms.cuh"),
    },
    Source {
        name: "nms.cuh",
        text: include_str!("../../../ops_lib/cuda/nms.cuh"),
    },
    Source {
        name: "preprocess.cuh",
        text: include_str!("../../../ops_lib/cuda/preprocess.cuh"),
    },
    Source {
        name: "roi_align.cuh",
        text: include_str!("../../../ops_lib/cuda/roi_align.cuh"),
    },
    Source {
        name: "yolo_box.cuh",
        text: include_str!("../../../ops_lib/cuda/yolo_box.cuh"),
    },
];

/// The modules: one NVRTC program each.
pub(crate) const MODULES: &[Source] = &[
    Source {
        name: "activation.cu",
        text: include_str!("../../cuda/activation.cu"),
    },
    Source {
        name: "binary.cu",
        text: include_str!("../../cuda/binary.cu"),
    },
    Source {
        name: "conv.cu",
        text: include_str!("../../cuda/conv.cu"),
    },
    Source {
        name: "convert.cu",
        text: include_str!("../../cuda/convert.cu"),
    },
    Source {
        name: "layer_norm.cu",
        text: include_str!("../../cuda/layer_norm.cu"),
    },
    Source {
        name: "movement.cu",
        text: include_str!("../../cuda/movement.cu"),
    },
    Source {
        name: "pool.cu",
        text: include_str!("../../cuda/pool.cu"),
    },
    Source {
        name: "quant.cu",
        text: include_str!("../../cuda/quant.cu"),
    },
    Source {
        name: "reduce.cu",
        text: include_str!("../../cuda/reduce.cu"),
    },
    Source {
        name: "resize.cu",
        text: include_str!("../../cuda/resize.cu"),
    },
    Source {
        name: "softmax.cu",
        text: include_str!("../../cuda/softmax.cu"),
    },
    Source {
        name: "deform_sample.cu",
        text: include_str!("../../../ops_lib/cuda/deform_sample.cu"),
    },
    Source {
        name: "distribute_fpn.cu",
        text: include_str!("../../../ops_lib/cuda/distribute_fpn.cu"),
    },
    Source {
        name: "generate_proposals.cu",
        text: include_str!("../../../ops_lib/cuda/generate_proposals.cu"),
    },
    Source {
        name: "grid_sample.cu",
        text: include_str!("../../../ops_lib/cuda/grid_sample.cu"),
    },
    Source {
        name: "matrix_nms.cu",
        text: include_str!("../../../ops_lib/cuda/matrix_nms.cu"),
    },
    Source {
        name: "nms.cu",
        text: include_str!("../../../ops_lib/cuda/nms.cu"),
    },
    Source {
        name: "preprocess.cu",
        text: include_str!("../../../ops_lib/cuda/preprocess.cu"),
    },
    Source {
        name: "roi_align.cu",
        text: include_str!("../../../ops_lib/cuda/roi_align.cu"),
    },
    Source {
        name: "yolo_box.cu",
        text: include_str!("../../../ops_lib/cuda/yolo_box.cu"),
    },
];
