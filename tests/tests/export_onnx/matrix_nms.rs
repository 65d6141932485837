//! matrix_nms as dense ONNX: tests (written by the matrix_nms helper).
