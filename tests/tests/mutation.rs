//! A seeded, deterministic mutation test over every reader: real inputs (an ONNX model, a legacy
//! Paddle program with its parameters, a PIR program, a package, a .npy file, an image and a
//! preprocessing YAML) with bits flipped, truncated, spliced, and huge numbers written in,
//! read in process. Every case must end in `Ok` or an error of exit 2 (a bad file), never a
//! panic or an internal error. The coverage-guided fuzzers under `fuzz/` search deeper on
//! nightly; this runs on stable in the normal suite, the same cases on every run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use temblor_ir::{package, BinaryOp, DType, GraphOutput, Layout, Op, Shape, TensorType};
use temblor_tests::builder::Builder;
use temblor_tests::{real_model, shared, Rng};

/// `seed` changed by one of the mutations an attacker tries first.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    if v.is_empty() {
        return v;
    }
    let at = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    match rng.next_u64() % 5 {
        0 => {
            for _ in 0..1 + rng.next_u64() % 8 {
                let i = at(rng, v.len());
                v[i] ^= 1 << (rng.next_u64() % 8);
            }
        }
        1 => v.truncate(at(rng, v.len())),
        2 => {
            // A huge varint, length or extent.
            let i = at(rng, v.len());
            let end = (i + 8).min(v.len());
            v[i..end].fill(0xff);
        }
        3 => {
            let (from, to) = (at(rng, v.len()), at(rng, v.len()));
            let n = (at(rng, 64) + 1).min(v.len() - from.max(to));
            let chunk = v[from..from + n].to_vec();
            v[to..to + n].copy_from_slice(&chunk);
        }
        _ => {
            let i = at(rng, v.len());
            let digit = b"0123456789-e.:[{"[at(rng, 16)];
            v[i] = digit;
        }
    }
    v
}

/// Runs `read` on `cases` mutations of `files[which]` (the others as they are), written into a
/// fresh directory as `files` names them; `read` gets the directory.
fn hammer(
    what: &str,
    files: &[(&str, Vec<u8>)],
    which: usize,
    cases: usize,
    seed: u64,
    read: impl Fn(&Path) -> temblor_ir::Result<()>,
) {
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let target = dir.path().join(files[which].0);
    for case in 0..cases {
        let bytes = mutate(&files[which].1, &mut rng);
        std::fs::write(&target, &bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(|| read(dir.path()))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => assert_eq!(e.exit_code(), 2, "{what} case {case}: {e}"),
            Err(_) => {
                let kept = std::env::temp_dir().join(format!("temblor-mutation-{what}-{case}"));
                std::fs::write(&kept, &bytes).unwrap();
                panic!(
                    "{what} case {case} panicked; input kept in {}",
                    kept.display()
                );
            }
        }
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A model imported and its shapes inferred.
fn import(path: &Path) -> temblor_ir::Result<()> {
    let mut g = temblor_frontend::load(path, &[])?;
    temblor_infer::infer(&mut g)
}

#[test]
fn mutated_onnx_models_are_read_or_refused() {
    let model = read(&real_model(
        "ppocr_cls_v2_onnx",
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    ));
    hammer("onnx", &[("m.onnx", model)], 0, 300, 11, |d| {
        import(&d.join("m.onnx"))
    });
}

#[test]
fn mutated_paddle_programs_and_parameters_are_read_or_refused() {
    let dir = shared().join("models/paddle/paddle_basic");
    let files = [
        ("model.pdmodel", read(&dir.join("model.pdmodel"))),
        ("model.pdiparams", read(&dir.join("model.pdiparams"))),
    ];
    for which in 0..2 {
        hammer("paddle", &files, which, 300, 13 + which as u64, |d| {
            import(&d.join("model.pdmodel"))
        });
    }
}

#[test]
fn mutated_pir_programs_and_parameters_are_read_or_refused() {
    let dir = shared().join("models/pir/native_control_flow");
    let files = [
        ("inference.json", read(&dir.join("inference.json"))),
        (
            "inference.pdiparams",
            read(&dir.join("inference.pdiparams")),
        ),
    ];
    for which in 0..2 {
        hammer("pir", &files, which, 300, 17 + which as u64, |d| {
            import(&d.join("inference.json"))
        });
    }
}

#[test]
fn mutated_packages_are_loaded_or_refused() {
    let mut b = Builder::new("small", 3);
    let ty = TensorType::new(DType::F32, Shape::from_known(&[1, 4]));
    let x = b.input("x", ty.clone());
    let w = b.constant("w", &[1, 4], vec![0.5, -1.0, 2.0, 3.0], Layout::Any);
    let y = b.node("y", Op::Binary(BinaryOp::Mul), ty, &[x, w]);
    b.g.outputs.push(GraphOutput {
        value: y,
        name: "y".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    package::write(&b.g, dir.path()).unwrap();
    let files = [
        (package::MANIFEST, read(&dir.path().join(package::MANIFEST))),
        (package::WEIGHTS, read(&dir.path().join(package::WEIGHTS))),
    ];
    // With hashes checked almost every case stops there: the loader's own checks are what the
    // mutations must reach, so the hashes are off in this process (no other test here loads).
    package::set_verify_hashes(false);
    for which in 0..2 {
        hammer("package", &files, which, 500, 19 + which as u64, |d| {
            package::load(d).map(drop)
        });
    }
}

#[test]
fn mutated_npy_files_are_read_or_refused() {
    let npy = read(&shared().join("models/pir/native_control_flow/input_steps.npy"));
    hammer("npy", &[("x.npy", npy)], 0, 1000, 23, |d| {
        temblor_tools::npy::read(&d.join("x.npy")).map(drop)
    });
}

#[test]
fn mutated_images_are_decoded_or_refused() {
    let mut png = Vec::new();
    let img = image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 7]));
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let mut jpeg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    for (name, bytes, seed) in [("p.png", png, 29), ("p.jpg", jpeg, 31)] {
        hammer("image", &[(name, bytes)], 0, 500, seed, |d| {
            temblor_ops_lib::preprocess::load_image(&d.join(name))
                .map(drop)
                .map_err(|e| temblor_ir::Error::bad_input(e.to_string()))
        });
    }
}

#[test]
fn mutated_preprocessing_yaml_is_read_or_refused() {
    let yaml = b"resize: {size: [320, 320], keep_ratio: true}\nscale: 0.00392\n\
mean: [0.485, 0.456, 0.406]\nstd: [0.229, 0.224, 0.225]\nlabels: [cat, dog]\n"
        .to_vec();
    hammer("yaml", &[("pre.yml", yaml)], 0, 1000, 37, |d| {
        temblor_tools::preprocess_config::PreprocessConfig::load(&d.join("pre.yml")).map(drop)
    });
}
