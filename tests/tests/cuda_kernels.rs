//! The CUDA kernels of ops_lib (`ops_lib/cuda`, issue 23), checked on a machine without a GPU:
//! - every kernel source compiles with nvcc for sm_80 (A100) and sm_90 (H100), so a syntax or
//!   type error fails here, not on the first machine with a device;
//! - a host harness (`tests/cuda/harness.cu`, built by nvcc as host code) runs the kernels'
//!   `__host__ __device__` arithmetic on the CPU, on inputs written here, against ops_lib's Rust
//!   kernels on the same inputs (themselves checked against Paddle's and onnxruntime's outputs).
//!
//! nvcc comes from PyPI (`nvidia-cuda-nvcc` with the nvvm, crt and runtime wheels it pulls in),
//! installed by scripts/setup-python.sh; the wheel's nvcc.profile finds the wheels' headers, cicc
//! and libraries by itself, and the host compiler is the `g++` on PATH. A missing nvcc fails
//! these tests rather than skipping them: setup installs it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use temblor_ir::{MulticlassNmsAttrs, RoiAlignAttrs, YoloBoxAttrs};
use temblor_ops_lib::detection::{non_max_suppression, roi_align};
use temblor_ops_lib::preprocess::{resize_bilinear, to_chw, Image, Normalize};
use temblor_ops_lib::{LibData, LibOp, LibSlice, LibView};
use temblor_tests::{output, python, root, Rng};

/// nvcc of the test environment: `<venv>/lib/python3.*/site-packages/nvidia/cu13/bin/nvcc`.
fn nvcc() -> Command {
    let venv = python();
    let lib = venv
        .parent()
        .and_then(Path::parent)
        .map(|v| v.join("lib"))
        .expect("the venv's python sits in <venv>/bin");
    let found = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("site-packages/nvidia/cu13/bin/nvcc"))
        .find(|p| p.is_file());
    let nvcc = found.unwrap_or_else(|| {
        panic!(
            "nvcc is missing from {}: run scripts/setup-python.sh, which installs it from PyPI \
             (`pip install -r scripts/requirements.txt`: nvidia-cuda-nvcc and the wheels it needs)",
            lib.display()
        )
    });
    let mut cmd = Command::new(nvcc);
    // Warnings are errors: a host function called from device code is only a warning to nvcc,
    // and would fail at run time on the GPU.
    cmd.args(["-Werror", "all-warnings"]);
    cmd
}

/// The names of the `__global__` functions a source defines.
fn kernel_names(source: &str) -> Vec<String> {
    source
        .split("__global__ void ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn every_kernel_compiles_for_sm_80_and_sm_90() {
    let dir = root().join("ops_lib/cuda");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    let names: Vec<_> = sources.iter().filter_map(|p| p.file_stem()).collect();
    for family in ["nms", "preprocess", "roi_align", "yolo_box"] {
        assert!(names.iter().any(|n| *n == family), "{family}.cu is missing");
    }
    let out = tempfile::tempdir().unwrap();
    for src in &sources {
        let kernels = kernel_names(&std::fs::read_to_string(src).unwrap());
        assert!(!kernels.is_empty(), "{}: no kernel", src.display());
        for arch in ["sm_80", "sm_90"] {
            let cubin = out.path().join(format!(
                "{}.{arch}.cubin",
                src.file_stem().unwrap().to_string_lossy()
            ));
            let (code, _, err) = output(
                nvcc()
                    .arg(format!("-arch={arch}"))
                    .arg("-cubin")
                    .arg("-o")
                    .arg(&cubin)
                    .arg(src),
            );
            assert_eq!(
                code,
                0,
                "{} does not compile for {arch}:\n{err}",
                src.display()
            );
            // Each kernel is in the binary under its own (extern "C") name.
            let binary = String::from_utf8_lossy(&std::fs::read(&cubin).unwrap()).into_owned();
            for kernel in &kernels {
                assert!(
                    binary.contains(&format!(".text.{kernel}\0")),
                    "{}: {kernel} is missing from the {arch} binary",
                    src.display()
                );
            }
        }
    }
}

/// The host harness, built by each test that runs it into its own temporary directory, so that
/// test runs sharing a target directory never run each other's build.
struct Harness {
    dir: tempfile::TempDir,
}

impl Harness {
    fn build() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, err) = output(
            nvcc()
                .arg("-I")
                .arg(root().join("ops_lib/cuda"))
                .arg("-o")
                .arg(dir.path().join("harness"))
                .arg(root().join("tests/cuda/harness.cu")),
        );
        assert_eq!(code, 0, "the host harness does not compile:\n{err}");
        Harness { dir }
    }

    /// Runs `commands` (see the harness's header); returns one line of numbers per command.
    fn run(&self, commands: &str) -> Vec<Vec<f32>> {
        let mut child = Command::new(self.dir.path().join("harness"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the harness");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(commands.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "harness failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .map(|t| t.parse().unwrap_or_else(|_| panic!("harness printed {t}")))
                    .collect()
            })
            .collect()
    }
}

/// Appends numbers to a harness command (Rust prints the shortest decimal that reads back as the
/// same f32, and the harness reads it with scanf, which rounds correctly).
fn push<T: std::fmt::Display>(cmd: &mut String, values: &[T]) {
    for v in values {
        write!(cmd, " {v}").unwrap();
    }
}

/// The harness's values against ops_lib's. Both sides run the same f32 operations in the same
/// order, with the same libm for exp and pow (glibc's: Rust's f32::exp and powf call it too), so
/// on x86-64 they agree to the last bit. The tolerance, 1e-6 of the value (or absolute below 1),
/// leaves room only for a host compiler that fuses a multiply and an add into one rounding (a few
/// 1e-8 relative, e.g. GCC on aarch64); a wrong index, weight, clamp or formula is off by far
/// more (an 8-bit step of a normalized pixel is 0.017, a sample's weight at least 1e-3).
fn assert_matches(what: &str, harness: &[f32], ops_lib: &[f32]) {
    assert_eq!(harness.len(), ops_lib.len(), "{what}: value count");
    for (i, (&a, &b)) in harness.iter().zip(ops_lib).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{what}: element {i}: harness {a}, ops_lib {b}"
        );
    }
}

/// Values uniform in [lo, hi).
fn uniform(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    rng.values(n)
        .into_iter()
        .map(|v| lo + (v + 1.0) / 2.0 * (hi - lo))
        .collect()
}

fn f32_data(data: &LibData) -> &[f32] {
    match data {
        LibData::F32(v) => v,
        other => panic!("expected float32, got {other:?}"),
    }
}

fn i32_data(data: &LibData) -> &[i32] {
    match data {
        LibData::I32(v) => v,
        other => panic!("expected int32, got {other:?}"),
    }
}

#[test]
fn preprocess_matches_resize_and_normalize() {
    let harness = Harness::build();
    let imagenet = Normalize {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        bgr: false,
    };
    let half = Normalize {
        mean: [0.5; 3],
        std: [0.5; 3],
        bgr: true,
    };
    // (source, resized, padded canvas, normalization): a non-integer downscale, an upscale with
    // B, G, R order, the same size without padding.
    let cases = [
        ((37, 23), (20, 16), (32, 32), &imagenet),
        ((13, 9), (40, 30), (40, 32), &half),
        ((16, 16), (16, 16), (16, 16), &imagenet),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pad = 0.0f32;
    let mut commands = String::new();
    let mut expected = Vec::new();
    for ((sw, sh), (dw, dh), (ow, oh), norm) in cases {
        let img = Image {
            width: sw,
            height: sh,
            rgb: rng.bytes(sw * sh * 3),
        };
        write!(
            commands,
            "preprocess {sw} {sh} {dw} {dh} {ow} {oh} {} {pad}",
            u8::from(norm.bgr)
        )
        .unwrap();
        push(&mut commands, &norm.mean);
        push(&mut commands, &norm.std);
        push(&mut commands, &img.rgb);
        commands.push('\n');
        let chw = to_chw(&resize_bilinear(&img, dw, dh), norm);
        let mut want = vec![pad; 3 * oh * ow];
        for c in 0..3 {
            for y in 0..dh {
                for x in 0..dw {
                    want[(c * oh + y) * ow + x] = chw[(c * dh + y) * dw + x];
                }
            }
        }
        expected.push((format!("{sw}x{sh} -> {dw}x{dh} in {ow}x{oh}"), want));
    }
    let got = harness.run(&commands);
    assert_eq!(got.len(), expected.len());
    for (values, (what, want)) in got.iter().zip(&expected) {
        assert_matches(what, values, want);
    }
}

fn yolo_attrs(iou_aware: bool) -> YoloBoxAttrs {
    YoloBoxAttrs {
        anchors: Some(vec![10, 13, 16, 30, 33, 23]),
        class_num: 4,
        conf_thresh: 0.3,
        downsample_ratio: 32,
        clip_bbox: !iou_aware,
        scale_x_y: if iou_aware { 1.0 } else { 1.05 },
        iou_aware,
        iou_aware_factor: 0.4,
    }
}

#[test]
fn yolo_box_matches_the_cpu_kernel() {
    let harness = Harness::build();
    let (n, h, w) = (2, 5, 7);
    // Images of other sizes than the network input (5x7 cells of 32 pixels), so the boxes
    // are scaled, and clipping cuts some.
    let img_size = [608, 416, 150, 300];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for iou_aware in [false, true] {
        let attrs = yolo_attrs(iou_aware);
        let anchors = attrs.anchors.clone().unwrap();
        let an = anchors.len() / 2;
        let channels = an * (5 + attrs.class_num + usize::from(iou_aware));
        // Logits in [-3, 3): objectness from 0.05 to 0.95 around the 0.3 threshold.
        let x = uniform(&mut rng, n * channels * h * w, -3.0, 3.0);
        let dims = [n, channels, h, w];
        let inputs = [
            Some(LibView {
                dims: &dims,
                data: LibSlice::F32(&x),
            }),
            Some(LibView {
                dims: &[n, 2],
                data: LibSlice::I32(&img_size),
            }),
        ];
        let out = temblor_ops_lib::run(&LibOp::YoloBox(attrs.clone()), &inputs).unwrap();
        let mut want = f32_data(&out[0].data).to_vec();
        let zero_rows = want.chunks_exact(4).filter(|b| b == &[0.0; 4]).count();
        assert!(
            zero_rows > 0 && zero_rows < n * an * h * w,
            "the case must have positions on both sides of the threshold"
        );
        want.extend_from_slice(f32_data(&out[1].data));

        let mut cmd = format!(
            "yolo_box {n} {h} {w} {an} {} {} {} {} {} {} {}",
            attrs.class_num,
            u8::from(iou_aware),
            attrs.iou_aware_factor,
            attrs.conf_thresh,
            attrs.downsample_ratio,
            u8::from(attrs.clip_bbox),
            attrs.scale_x_y
        );
        push(&mut cmd, &anchors);
        push(&mut cmd, &img_size);
        push(&mut cmd, &x);
        let got = harness.run(&cmd);
        assert_matches(&format!("yolo_box iou_aware={iou_aware}"), &got[0], &want);
    }
}

/// `m` boxes `[x1, y1, x2, y2]` in a few overlapping clusters (so NMS suppresses), over a
/// `size`-wide field, with exact duplicates and zero-width boxes among them.
fn clustered_boxes(rng: &mut Rng, m: usize, size: f32) -> Vec<f32> {
    let centres = uniform(rng, 12, 0.2 * size, 0.8 * size);
    let mut boxes = Vec::with_capacity(m * 4);
    for i in 0..m {
        if i % 17 == 16 {
            let prev = boxes[boxes.len() - 4..].to_vec();
            boxes.extend(prev);
            continue;
        }
        let k = 2 * (rng.next_u64() % 6) as usize;
        let jitter = uniform(rng, 4, -0.04 * size, 0.04 * size);
        let half = uniform(rng, 2, 0.03 * size, 0.15 * size);
        let (cx, cy) = (centres[k] + jitter[0], centres[k + 1] + jitter[1]);
        let half_w = if i % 23 == 22 { 0.0 } else { half[0] };
        boxes.extend([
            cx - half_w,
            cy - half[1],
            cx + half_w + jitter[2],
            cy + half[1],
        ]);
    }
    boxes
}

/// Scores in [0, 1) on a grid of 1/64, so that equal scores occur and their order is tested.
fn tied_scores(rng: &mut Rng, n: usize) -> Vec<f32> {
    uniform(rng, n, 0.0, 1.0)
        .into_iter()
        .map(|s| (s * 64.0).floor() / 64.0)
        .collect()
}

/// A harness NMS command for one class (`params`: RULE THRESHOLD SCORE_THRESHOLD TOP_K LIMIT);
/// the harness answers with the kept box indices, best first.
fn nms_command(params: &str, boxes: &[f32], scores: &[f32]) -> String {
    let mut cmd = format!("nms {params} {}", scores.len());
    push(&mut cmd, boxes);
    push(&mut cmd, scores);
    cmd.push('\n');
    cmd
}

#[test]
fn nms_matches_onnx_non_max_suppression() {
    let harness = Harness::build();
    let (n, classes, b) = (2, 3, 150);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for center_point in [false, true] {
        let mut boxes = Vec::with_capacity(n * b * 4);
        for _ in 0..n {
            for (i, c) in clustered_boxes(&mut rng, b, 100.0)
                .chunks_exact(4)
                .enumerate()
            {
                boxes.extend(match (center_point, i % 5) {
                    (true, _) => [
                        (c[0] + c[2]) / 2.0,
                        (c[1] + c[3]) / 2.0,
                        c[2] - c[0],
                        c[3] - c[1],
                    ],
                    // ONNX takes [y1, x1, y2, x2], any diagonal pair: some flipped.
                    (false, 0) => [c[3], c[2], c[1], c[0]],
                    (false, _) => [c[1], c[0], c[3], c[2]],
                });
            }
        }
        let scores = tied_scores(&mut rng, n * classes * b);
        for (limit, iou, score) in [(1000, 0.5, 0.2), (7, 0.3, 0.0)] {
            let want = non_max_suppression(
                &boxes,
                &scores,
                [n, classes, b],
                center_point,
                limit,
                iou,
                Some(score),
            );
            let rule = if center_point { 3 } else { 2 };
            let mut commands = String::new();
            for batch in 0..n {
                for class in 0..classes {
                    commands += &nms_command(
                        &format!("{rule} {iou} {score} -1 {limit}"),
                        &boxes[batch * b * 4..(batch + 1) * b * 4],
                        &scores[(batch * classes + class) * b..][..b],
                    );
                }
            }
            let kept = harness.run(&commands);
            let got: Vec<i64> = kept
                .iter()
                .enumerate()
                .flat_map(|(i, k)| {
                    let (batch, class) = (i / classes, i % classes);
                    k.iter()
                        .flat_map(move |&idx| [batch as i64, class as i64, idx as i64])
                })
                .collect();
            let what = format!("center_point={center_point} limit={limit} iou={iou}");
            assert_eq!(got, want, "{what}");
            let candidates = scores.iter().filter(|&&s| s > score).count();
            assert!(
                want.len() / 3 < candidates && want.len() / 3 > n * classes,
                "{what}: the case must both keep and suppress boxes"
            );
        }
    }
}

#[test]
fn nms_matches_multiclass_nms3() {
    let harness = Harness::build();
    let (n, classes, m) = (2, 4, 120);
    let mut rng = Rng(0x94D0_49BB_1331_11EB);
    for normalized in [false, true] {
        // Pixel boxes count both end pixels: a field of 200 pixels; normalized ones span [0, 1].
        let size = if normalized { 1.0 } else { 200.0 };
        let boxes: Vec<f32> = (0..n)
            .flat_map(|_| clustered_boxes(&mut rng, m, size))
            .collect();
        let scores = tied_scores(&mut rng, n * classes * m);
        let attrs = MulticlassNmsAttrs {
            background_label: 0,
            score_threshold: 0.1,
            nms_top_k: 60,
            nms_threshold: 0.45,
            nms_eta: 1.0,
            keep_top_k: -1,
            normalized,
        };
        let inputs = [
            Some(LibView {
                dims: &[n, m, 4],
                data: LibSlice::F32(&boxes),
            }),
            Some(LibView {
                dims: &[n, classes, m],
                data: LibSlice::F32(&scores),
            }),
        ];
        let out = temblor_ops_lib::run(&LibOp::MulticlassNms(attrs.clone()), &inputs).unwrap();
        // Index holds image * m + box, per image by ascending label, best first in a label.
        let want_index = i32_data(&out[1].data);
        let want_counts = i32_data(&out[2].data);

        let params = format!(
            "{} {} {} {} -1",
            u8::from(normalized),
            attrs.nms_threshold,
            attrs.score_threshold,
            attrs.nms_top_k
        );
        let mut commands = String::new();
        for image in 0..n {
            for class in 1..classes {
                commands += &nms_command(
                    &params,
                    &boxes[image * m * 4..(image + 1) * m * 4],
                    &scores[(image * classes + class) * m..][..m],
                );
            }
        }
        let kept = harness.run(&commands);
        let per_image = kept.chunks_exact(classes - 1);
        let got_counts: Vec<i32> = per_image
            .clone()
            .map(|c| c.iter().map(Vec::len).sum::<usize>() as i32)
            .collect();
        let got_index: Vec<i32> = per_image
            .enumerate()
            .flat_map(|(image, c)| {
                c.iter()
                    .flatten()
                    .map(move |&idx| (image * m) as i32 + idx as i32)
            })
            .collect();
        let what = format!("normalized={normalized}");
        assert_eq!(got_index, want_index, "{what}");
        assert_eq!(got_counts, want_counts, "{what}");
        let candidates: usize = scores
            .chunks_exact(m)
            .enumerate()
            .filter(|(row, _)| row % classes != 0)
            .map(|(_, class)| {
                let above = class.iter().filter(|&&s| s > attrs.score_threshold).count();
                above.min(attrs.nms_top_k as usize)
            })
            .sum();
        assert!(
            want_index.len() < candidates && want_index.len() > n * (classes - 1),
            "{what}: the case must both keep and suppress boxes"
        );
    }
}

#[test]
fn roi_align_matches_the_cpu_kernel() {
    let harness = Harness::build();
    let (n, c, h, w) = (2, 3, 9, 11);
    let mut rng = Rng(0xBF58_476D_1CE4_E5B9);
    let x = uniform(&mut rng, n * c * h * w, -2.0, 2.0);
    // Regions in input coordinates (spatial_scale maps them onto the 9x11 map): inside, partly
    // outside on every side, flipped, and smaller than a cell.
    let mut rois = vec![
        4.0, 4.0, 30.0, 20.0, //
        -10.0, -6.0, 12.0, 14.0, //
        30.0, 20.0, 60.0, 50.0, //
        25.0, 18.0, 5.0, 3.0, //
        8.3, 9.1, 9.0, 9.5, //
    ];
    for _ in 0..6 {
        let corner = uniform(&mut rng, 2, -8.0, 40.0);
        let size = uniform(&mut rng, 2, 1.0, 30.0);
        rois.extend([
            corner[0],
            corner[1],
            corner[0] + size[0],
            corner[1] + size[1],
        ]);
    }
    let regions = rois.len() / 4;
    let batch: Vec<usize> = (0..regions).map(|r| r % n).collect();
    let batch_i32: Vec<i32> = batch.iter().map(|&b| b as i32).collect();
    for (max, sampling_ratio, spatial_scale, half_pixel) in [
        (false, 0, 0.25, true),
        (true, 2, 0.25, false),
        (false, 2, 0.5, false),
        (true, 0, 0.5, true),
    ] {
        let attrs = RoiAlignAttrs {
            max,
            output_height: 3,
            output_width: 4,
            sampling_ratio,
            spatial_scale,
            half_pixel,
        };
        let want = roi_align(&attrs, &x, [n, c, h, w], &rois, &batch).unwrap();
        assert!(want.iter().any(|&v| v != 0.0));
        let mut cmd = format!(
            "roi_align {n} {c} {h} {w} {} {} {sampling_ratio} {spatial_scale} {} {} {regions}",
            attrs.output_height,
            attrs.output_width,
            u8::from(half_pixel),
            u8::from(max)
        );
        push(&mut cmd, &x);
        push(&mut cmd, &rois);
        push(&mut cmd, &batch_i32);
        let got = harness.run(&cmd);
        let what = format!("max={max} sampling_ratio={sampling_ratio} half_pixel={half_pixel}");
        assert_matches(&what, &got[0], &want);
    }
}
