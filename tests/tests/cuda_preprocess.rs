//! Image preprocessing on the GPU (issue 23) without a GPU: the kernel of
//! ops_lib/cuda/preprocess.cu, run by the CUDA host emulator through `GpuPreprocessor` (the
//! same parameter bytes and buffers the driver gets), against the CPU path of ops_lib and of
//! `temblor preprocess`, bit for bit, on real photos.

use std::path::Path;
use temblor_ops_lib::preprocess::{load_image, resize_bilinear, to_chw, Image, Normalize};
use temblor_runtime::{GpuPreprocessor, PreprocessSpec};
use temblor_tests::{output, read_f32, shared, temblor};

const IMAGENET: Normalize = Normalize {
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    bgr: false,
};

fn photo(name: &str) -> Image {
    load_image(&shared().join("images").join(name)).unwrap()
}

/// The CPU path: ops_lib's resize and layout, the image at the top left of the canvas.
fn on_cpu(img: &Image, spec: &PreprocessSpec) -> Vec<f32> {
    let norm = Normalize {
        mean: spec.mean,
        std: spec.std,
        bgr: spec.bgr,
    };
    let [h, w] = spec.resize;
    let [ch, cw] = spec.canvas;
    let values = to_chw(&resize_bilinear(img, w, h), &norm);
    let mut out = vec![spec.pad_value; 3 * ch * cw];
    for c in 0..3 {
        for y in 0..h {
            let from = (c * h + y) * w;
            out[(c * ch + y) * cw..][..w].copy_from_slice(&values[from..from + w]);
        }
    }
    out
}

fn spec(
    resize: [usize; 2],
    canvas: [usize; 2],
    norm: &Normalize,
    pad_value: f32,
) -> PreprocessSpec {
    PreprocessSpec {
        resize,
        canvas,
        mean: norm.mean,
        std: norm.std,
        bgr: norm.bgr,
        pad_value,
    }
}

/// The first element whose bits differ, if any.
fn first_difference(got: &[f32], want: &[f32]) -> Option<(usize, f32, f32)> {
    assert_eq!(got.len(), want.len());
    let differs =
        |(i, (g, w)): (usize, (&f32, &f32))| (g.to_bits() != w.to_bits()).then_some((i, *g, *w));
    got.iter().zip(want).enumerate().find_map(differs)
}

#[test]
fn emulated_gpu_preprocessing_is_the_cpu_path_bit_for_bit() {
    let gpu = GpuPreprocessor::emulated().unwrap();
    let bgr = Normalize {
        mean: [0.406, 0.456, 0.485],
        std: [0.225, 0.224, 0.229],
        bgr: true,
    };
    // In order on one preprocessor, so that smaller images reuse the buffers of larger ones.
    #[rustfmt::skip]
    let cases = [
        ("chelsea.png", [133, 201], [133, 201], &IMAGENET, 0.0, "downscale, odd sizes"),
        ("rocket.png", [800, 1333], [800, 1333], &IMAGENET, 0.0, "upscale to 1333x800"),
        ("rocket.png", [320, 480], [320, 480], &IMAGENET, 0.0, "after a larger image"),
        ("camera.png", [512, 512], [544, 576], &bgr, -1.5, "gray photo, kept size, padded"),
        ("chelsea.png", [300, 451], [320, 480], &bgr, 0.0, "kept size, padded, BGR"),
        ("rocket.png", [427, 640], [448, 640], &IMAGENET, 0.0, "padded below only"),
        ("rocket.png", [213, 320], [224, 352], &bgr, 0.0, "downscale, padded"),
        ("coffee.png", [601, 899], [608, 928], &IMAGENET, 0.0, "upscale, padded"),
    ];
    for (name, resize, canvas, norm, pad_value, what) in cases {
        let img = photo(name);
        let spec = spec(resize, canvas, norm, pad_value);
        let got = gpu.run(&img.rgb, img.width, img.height, &spec).unwrap();
        assert_eq!(got.shape, [1, 3, canvas[0], canvas[1]], "{what}");
        if let Some((i, g, w)) = first_difference(got.as_f32().unwrap(), &on_cpu(&img, &spec)) {
            panic!("{what}: element {i} is {g} on the emulated GPU, {w} on the CPU");
        }
    }
}

/// `temblor preprocess`'s CPU output, with resize, padding and BGR, equals the emulated GPU's.
#[test]
fn cli_cpu_output_equals_the_emulated_gpu() {
    let image = shared().join("images/coffee.png");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    let (code, stdout, err) = output(
        temblor()
            .arg("preprocess")
            .arg(&image)
            .arg("-o")
            .arg(&out)
            .args("--size 360x540 --pad 384x544 --pad-value -0.5 --bgr".split(' '))
            .args("--mean 0.1,0.2,0.3 --std 0.3,0.2,0.1 --repeat 3".split(' ')),
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("[1, 3, 384, 544]"), "{stdout}");
    assert!(err.contains("preprocess: median of 3 runs: cpu "), "{err}");
    let (shape, cli) = read_f32(&out);
    assert_eq!(shape, [1, 3, 384, 544]);
    let norm = Normalize {
        mean: [0.1, 0.2, 0.3],
        std: [0.3, 0.2, 0.1],
        bgr: true,
    };
    let img = load_image(&image).unwrap();
    let gpu = GpuPreprocessor::emulated().unwrap();
    let got = gpu
        .run(
            &img.rgb,
            img.width,
            img.height,
            &spec([360, 540], [384, 544], &norm, -0.5),
        )
        .unwrap();
    if let Some((i, g, w)) = first_difference(got.as_f32().unwrap(), &cli) {
        panic!("element {i} is {g} on the emulated GPU, {w} from temblor preprocess");
    }
}

#[test]
fn cli_refuses_a_pad_smaller_than_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = output(
        temblor()
            .arg("preprocess")
            .arg(shared().join("images/chelsea.png"))
            .arg("-o")
            .arg(dir.path().join("x.npy"))
            .args(["--pad", "256x256"]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--pad 256x256 is smaller than the image, 300x451"),
        "{err}"
    );
}

#[test]
fn cli_cuda_without_a_driver_exits_2() {
    // A machine with NVIDIA's kernel module has its driver library too.
    if Path::new("/proc/driver/nvidia").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    let (code, stdout, err) = output(
        temblor()
            .arg("preprocess")
            .arg(shared().join("images/chelsea.png"))
            .arg("-o")
            .arg(&out)
            .args(["--device", "cuda", "--repeat", "5"]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        err.starts_with(
            "error: no CUDA driver found (libcuda.so.1): --device cuda needs an NVIDIA GPU"
        ),
        "{err}"
    );
    assert!(!out.exists());
}
