//! Image preprocessing on the GPU (issue 23): a decoded 8-bit RGB image is uploaded as bytes and
//! resized, normalized, padded and laid out as `[1, 3, H, W]` f32 by one kernel
//! (`ops_lib/cuda/preprocess.cuh`), whose values are the CPU path's (`ops_lib::preprocess`:
//! `resize_bilinear`, then `to_chw`) bit for bit. The device buffers are kept and grown across
//! calls, so a stream of photos of one size allocates once.

use super::driver::Gpu;
use super::emulate::Emulator;
use super::executor::{Call, DevicePtr, Executor, KernelCall};
use super::lower::grid_stride;
use super::lower::params::{self, layout, Layout, Pod};
use crate::{RuntimeError, Tensor, TensorData};
use std::sync::{Mutex, PoisonError};

/// `PreprocessParams` of preprocess.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct PreprocessParams {
    src_w: i32,
    src_h: i32,
    dst_w: i32,
    dst_h: i32,
    out_w: i32,
    out_h: i32,
    mean: [f32; 3],
    std: [f32; 3],
    bgr: i32,
    pad_value: f32,
}

// SAFETY: repr(C), 4-byte fields and arrays of them only, so no padding.
unsafe impl Pod for PreprocessParams {}

pub(crate) const LAYOUTS: &[Layout] = &[layout!(
    PreprocessParams,
    "PreprocessParams",
    [src_w, src_h, dst_w, dst_h, out_w, out_h, mean, std, bgr, pad_value]
)];

/// What the image becomes: resized to `resize`, placed at the top left of a `canvas` filled
/// with `pad_value`, and normalized as `(pixel / 255 - mean) / std`.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessSpec {
    /// Height and width of the resized image.
    pub resize: [usize; 2],
    /// Height and width of the output, at least `resize` on each axis.
    pub canvas: [usize; 2],
    /// In output channel order.
    pub mean: [f32; 3],
    /// In output channel order.
    pub std: [f32; 3],
    /// Emit channels as B, G, R instead of R, G, B.
    pub bgr: bool,
    /// The value of the canvas outside the image, already normalized (mmdetection pads with 0
    /// after normalizing).
    pub pad_value: f32,
}

/// Preprocesses images on one device, reusing its buffers from call to call.
#[derive(Debug)]
pub struct GpuPreprocessor {
    executor: Box<dyn Executor>,
    name: String,
    buffers: Mutex<Buffers>,
}

/// Device buffers and their sizes in bytes, grown on demand.
#[derive(Debug, Default)]
struct Buffers {
    rgb: Option<(DevicePtr, usize)>,
    out: Option<(DevicePtr, usize)>,
}

impl GpuPreprocessor {
    /// The GPU `ordinal`, its kernels compiled for it (NVRTC, once, seconds).
    pub fn new(ordinal: usize) -> Result<GpuPreprocessor, RuntimeError> {
        let gpu = Gpu::new(ordinal)?;
        let name = gpu.name.clone();
        Ok(GpuPreprocessor::on(Box::new(gpu), name))
    }

    /// The host emulator of a device, which runs the same kernel source compiled for the CPU:
    /// for tests on machines without a GPU.
    #[doc(hidden)]
    pub fn emulated() -> Result<GpuPreprocessor, RuntimeError> {
        Ok(GpuPreprocessor::on(
            Box::new(Emulator::new()?),
            "emulated CUDA device".into(),
        ))
    }

    fn on(executor: Box<dyn Executor>, name: String) -> GpuPreprocessor {
        GpuPreprocessor {
            executor,
            name,
            buffers: Mutex::new(Buffers::default()),
        }
    }

    /// The device, for reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `rgb`, `width x height` pixels of 3 bytes, row-major, as the `[1, 3, canvas]` f32
    /// tensor of `spec`.
    pub fn run(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        spec: &PreprocessSpec,
    ) -> Result<Tensor, RuntimeError> {
        let p = kernel_params(rgb.len(), width, height, spec)?;
        let [out_h, out_w] = spec.canvas;
        let elements = 3 * out_h * out_w;
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        let src = self.buffer(&mut buffers.rgb, rgb.len())?;
        let out = self.buffer(&mut buffers.out, elements * 4)?;
        self.executor.upload(src, rgb)?;
        let launch = grid_stride("ops_lib_preprocess", elements, Vec::new());
        let call = KernelCall {
            function: launch.function,
            grid: launch.grid,
            block: launch.block,
            shared_bytes: launch.shared_bytes,
            params: vec![
                src.to_le_bytes().to_vec(),
                params::bytes(&p),
                out.to_le_bytes().to_vec(),
            ],
        };
        // Key 0: launched as is, not captured, since the sizes may change from call to call.
        self.executor.run(0, &[Call::Kernel(call)])?;
        // Straight into the tensor's values: at 1333x800 a decoding copy would cost as much as
        // the transfer.
        let mut data = vec![0f32; elements];
        // SAFETY: the byte view covers exactly `data`, u8 needs no alignment and every byte
        // pattern is an f32; the GPU's f32s are little-endian, as every host CUDA runs on.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), elements * 4) };
        self.executor.download(out, bytes)?;
        Ok(Tensor {
            shape: vec![1, 3, out_h, out_w],
            data: TensorData::F32(data),
        })
    }

    /// The buffer in `slot`, replaced by a larger one when it holds fewer than `bytes`.
    fn buffer(
        &self,
        slot: &mut Option<(DevicePtr, usize)>,
        bytes: usize,
    ) -> Result<DevicePtr, RuntimeError> {
        match *slot {
            Some((ptr, size)) if size >= bytes => Ok(ptr),
            held => {
                if let Some((ptr, _)) = held {
                    *slot = None;
                    self.executor.free(ptr);
                }
                let ptr = self.executor.alloc(bytes.max(1))?;
                *slot = Some((ptr, bytes));
                Ok(ptr)
            }
        }
    }
}

impl Drop for GpuPreprocessor {
    fn drop(&mut self) {
        let buffers = self
            .buffers
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for (ptr, _) in [buffers.rgb.take(), buffers.out.take()]
            .into_iter()
            .flatten()
        {
            self.executor.free(ptr);
        }
    }
}

/// The kernel's parameters, after the checks that keep its `int` indexing in range and its
/// reads inside the image.
fn kernel_params(
    bytes: usize,
    width: usize,
    height: usize,
    spec: &PreprocessSpec,
) -> Result<PreprocessParams, RuntimeError> {
    let bad = |m: String| Err(RuntimeError::bad_input(m));
    let [dst_h, dst_w] = spec.resize;
    let [out_h, out_w] = spec.canvas;
    if width == 0 || height == 0 || dst_w == 0 || dst_h == 0 {
        return bad(format!(
            "cannot preprocess a {width}x{height} image to {dst_w}x{dst_h}: every size must be \
             at least 1"
        ));
    }
    if width.checked_mul(height).and_then(|n| n.checked_mul(3)) != Some(bytes) {
        return bad(format!(
            "a {width}x{height} RGB image has {} bytes, not {bytes}",
            width.saturating_mul(height).saturating_mul(3)
        ));
    }
    if out_h < dst_h || out_w < dst_w {
        return bad(format!(
            "the canvas {out_w}x{out_h} is smaller than the resized image {dst_w}x{dst_h}"
        ));
    }
    // The kernel indexes the image's bytes and each output plane with 32-bit ints.
    let fits = |n: Option<usize>| n.is_some_and(|n| n <= i32::MAX as usize);
    if !fits(Some(bytes)) || !fits(out_h.checked_mul(out_w)) {
        return bad(format!(
            "a {width}x{height} image on a {out_w}x{out_h} canvas is too large for the \
             preprocessing kernel's 32-bit indexing"
        ));
    }
    // Every size is at most the bytes or the plane checked above, so the casts are exact.
    Ok(PreprocessParams {
        src_w: width as i32,
        src_h: height as i32,
        dst_w: dst_w as i32,
        dst_h: dst_h as i32,
        out_w: out_w as i32,
        out_h: out_h as i32,
        mean: spec.mean,
        std: spec.std,
        bgr: i32::from(spec.bgr),
        pad_value: spec.pad_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(resize: [usize; 2], canvas: [usize; 2]) -> PreprocessSpec {
        PreprocessSpec {
            resize,
            canvas,
            mean: [0.5; 3],
            std: [0.25; 3],
            bgr: false,
            pad_value: 0.0,
        }
    }

    #[test]
    fn params_are_the_c_struct_fields_in_order() {
        let p = kernel_params(4 * 2 * 3, 4, 2, &spec([3, 5], [8, 6])).unwrap();
        let ints: Vec<i32> = params::bytes(&p)
            .chunks_exact(4)
            .take(6)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(ints, [4, 2, 5, 3, 6, 8]);
        assert_eq!(std::mem::size_of::<PreprocessParams>(), 4 * 14);
        // Listed, so that the layout test compares it with the C struct.
        assert!(params::layouts()
            .iter()
            .any(|l| l.c_name == "PreprocessParams"));
    }

    #[test]
    fn refuses_what_the_kernel_would_read_or_index_wrongly() {
        let err =
            |bytes, w, h, s: PreprocessSpec| kernel_params(bytes, w, h, &s).unwrap_err().message;
        assert!(err(23, 4, 2, spec([2, 2], [2, 2])).contains("has 24 bytes, not 23"));
        assert!(err(24, 4, 2, spec([4, 4], [4, 3])).contains("smaller than the resized"));
        assert!(err(0, 0, 2, spec([2, 2], [2, 2])).contains("at least 1"));
        assert!(err(24, 4, 2, spec([1, 1], [1 << 16, 1 << 16])).contains("32-bit"));
    }

    #[test]
    fn pads_and_normalizes_on_the_emulator() {
        // A 2x1 image kept at its size on a 2x3 canvas: the pixels normalized, the rest padded.
        let gpu = GpuPreprocessor::emulated().unwrap();
        let mut s = spec([1, 2], [2, 3]);
        s.pad_value = -7.0;
        let t = gpu.run(&[255, 0, 51, 0, 255, 102], 2, 1, &s).unwrap();
        assert_eq!(t.shape, [1, 3, 2, 3]);
        let v = |x: f32| (x / 255.0 - 0.5) / 0.25;
        let want = [
            v(255.0),
            v(0.0),
            -7.0,
            -7.0,
            -7.0,
            -7.0,
            v(0.0),
            v(255.0),
            -7.0,
            -7.0,
            -7.0,
            -7.0,
            v(51.0),
            v(102.0),
            -7.0,
            -7.0,
            -7.0,
            -7.0,
        ];
        assert_eq!(t.as_f32().unwrap(), want);
        // A smaller image after a larger one reuses the buffers and overwrites every output.
        s.bgr = true;
        s.canvas = [1, 2];
        let t = gpu.run(&[255, 0, 51, 0, 255, 102], 2, 1, &s).unwrap();
        assert_eq!(
            t.as_f32().unwrap(),
            [v(51.0), v(102.0), v(0.0), v(255.0), v(255.0), v(0.0)]
        );
    }
}
