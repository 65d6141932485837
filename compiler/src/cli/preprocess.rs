use super::DeviceArg;
use std::path::PathBuf;
use std::time::Instant;
use temblor_ir::{Error, Result};
use temblor_ops_lib::preprocess::{load_image, resize_bilinear, to_chw, Image, Normalize};
use temblor_runtime::{GpuPreprocessor, PreprocessSpec, Tensor, TensorData};
use temblor_tools::npy;

#[derive(clap::Args, Debug)]
pub struct PreprocessArgs {
    /// A JPEG or PNG image.
    pub image: PathBuf,
    /// The .npy file to write, shaped [1, 3, H, W], float32.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Resize to HxW (e.g. 640x480); default: keep the image's size.
    #[arg(long, value_name = "HxW")]
    pub size: Option<String>,
    /// Per-channel mean of pixel/255, in output channel order.
    #[arg(long, value_delimiter = ',', default_values_t = [0.485, 0.456, 0.406])]
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of pixel/255, in output channel order.
    #[arg(long, value_delimiter = ',', default_values_t = [0.229, 0.224, 0.225])]
    pub std: Vec<f32>,
    /// Emit channels in B, G, R order.
    #[arg(long)]
    pub bgr: bool,
    /// Pad to HxW: the (resized) image at the top left, the rest --pad-value.
    #[arg(long, value_name = "HxW")]
    pub pad: Option<String>,
    /// The value of the padding, after normalization (mmdetection pads with 0).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub pad_value: f32,
    /// Where the resize and normalization run: the CPU, or the first NVIDIA GPU.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Preprocess N more times and print to stderr the median milliseconds of the step (on
    /// cuda: upload, kernel and download, beside the CPU path's).
    #[arg(long, value_name = "N")]
    pub repeat: Option<usize>,
}

pub fn preprocess(args: &PreprocessArgs) -> Result<()> {
    let three = |v: &[f32], what: &str| -> Result<[f32; 3]> {
        v.try_into()
            .map_err(|_| Error::usage(format!("--{what} takes three values, e.g. 0.5,0.5,0.5")))
    };
    let norm = Normalize {
        mean: three(&args.mean, "mean")?,
        std: three(&args.std, "std")?,
        bgr: args.bgr,
    };
    if norm.std.contains(&0.0) {
        return Err(Error::usage("--std must not contain 0"));
    }
    if args.repeat == Some(0) {
        return Err(Error::usage("--repeat takes a count of at least 1"));
    }
    let hw = |flag: &str, text: &str| -> Result<[usize; 2]> {
        super::parse_dims(text)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| Error::usage(format!("--{flag} '{text}': expected HxW, e.g. 640x480")))
    };
    let img = load_image(&args.image).map_err(|e| Error::bad_input(e.to_string()))?;
    let resize = match &args.size {
        Some(size) => hw("size", size)?,
        None => [img.height, img.width],
    };
    let canvas = match &args.pad {
        Some(pad) => hw("pad", pad)?,
        None => resize,
    };
    if canvas[0] < resize[0] || canvas[1] < resize[1] {
        return Err(Error::usage(format!(
            "--pad {}x{} is smaller than the image, {}x{} (HxW)",
            canvas[0], canvas[1], resize[0], resize[1]
        )));
    }
    let cpu = || on_cpu(&img, resize, canvas, &norm, args.pad_value);
    let tensor = match args.device {
        DeviceArg::Cpu => {
            let tensor = cpu();
            if let Some(n) = args.repeat {
                let ms = median_ms(n, || drop(cpu()));
                eprintln!("preprocess: median of {n} runs: cpu {ms:.3} ms");
            }
            tensor
        }
        DeviceArg::Cuda => {
            let gpu = GpuPreprocessor::new(0)?;
            let spec = PreprocessSpec {
                resize,
                canvas,
                mean: norm.mean,
                std: norm.std,
                bgr: norm.bgr,
                pad_value: args.pad_value,
            };
            let run = || gpu.run(&img.rgb, img.width, img.height, &spec);
            // The first run allocates the device buffers; the timed ones reuse them.
            let tensor = run()?;
            if let Some(n) = args.repeat {
                let mut failed = None;
                let cuda = median_ms(n, || {
                    if let Err(e) = run() {
                        failed = Some(e);
                    }
                });
                if let Some(e) = failed {
                    return Err(e.into());
                }
                let cpu_ms = median_ms(n, || drop(cpu()));
                eprintln!(
                    "preprocess: median of {n} runs: cuda {cuda:.3} ms (upload, kernel, \
                     download on {}), cpu {cpu_ms:.3} ms",
                    gpu.name()
                );
            }
            tensor
        }
    };
    npy::write(&args.out, &tensor)?;
    println!(
        "{}: [1, 3, {}, {}] -> {}",
        args.image.display(),
        canvas[0],
        canvas[1],
        args.out.display()
    );
    Ok(())
}

/// The CPU path: resized (when the size changes) and normalized by ops_lib, then padded.
fn on_cpu(
    img: &Image,
    resize: [usize; 2],
    canvas: [usize; 2],
    norm: &Normalize,
    pad_value: f32,
) -> Tensor {
    let values = match resize == [img.height, img.width] {
        true => to_chw(img, norm),
        false => to_chw(&resize_bilinear(img, resize[1], resize[0]), norm),
    };
    let [h, w] = resize;
    let [ch, cw] = canvas;
    let data = match resize == canvas {
        true => values,
        false => {
            let mut out = vec![pad_value; 3 * ch * cw];
            for (c, plane) in values.chunks_exact(h * w).enumerate() {
                for (y, row) in plane.chunks_exact(w).enumerate() {
                    out[(c * ch + y) * cw..][..w].copy_from_slice(row);
                }
            }
            out
        }
    };
    Tensor {
        shape: vec![1, 3, ch, cw],
        data: TensorData::F32(data),
    }
}

/// The median wall time of `n` calls of `f`, in milliseconds.
fn median_ms(n: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[n / 2]
}
