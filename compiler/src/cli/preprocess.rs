use std::path::PathBuf;
use temblor_ir::{Error, Result};
use temblor_ops_lib::preprocess::{load_image, resize_bilinear, to_chw, Normalize};
use temblor_runtime::{Tensor, TensorData};
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
    let mut img = load_image(&args.image).map_err(|e| Error::bad_input(e.to_string()))?;
    if let Some(size) = &args.size {
        let dims = super::parse_dims(size)
            .filter(|d| d.len() == 2)
            .ok_or_else(|| Error::usage(format!("--size '{size}': expected HxW, e.g. 640x480")))?;
        img = resize_bilinear(&img, dims[1], dims[0]);
    }
    let tensor = Tensor {
        shape: vec![1, 3, img.height, img.width],
        data: TensorData::F32(to_chw(&img, &norm)),
    };
    npy::write(&args.out, &tensor)?;
    println!(
        "{}: [1, 3, {}, {}] -> {}",
        args.image.display(),
        img.height,
        img.width,
        args.out.display()
    );
    Ok(())
}
