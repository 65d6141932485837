//! The CUDA backend passes each kernel's parameter struct by value, as the bytes of a Rust
//! `#[repr(C)]` mirror. A field out of place would reach the GPU as another field's value, with
//! no error anywhere: every mirror's size and field offsets must be the C compiler's, read here
//! from nvcc's host compiler over the kernel headers themselves.

use super::harness::nvcc;
use std::fmt::Write as _;
use temblor_runtime::cuda_param_layouts;
use temblor_tests::{output, root};

#[test]
fn every_parameter_mirror_is_laid_out_as_its_c_struct() {
    let layouts = cuda_param_layouts();
    // Every byte must be a field, since the mirrors' bytes are read as they are: the C field
    // sizes must add up to the struct's.
    let padding = |l: &temblor_runtime::CudaParamLayout| {
        let sizes: Vec<String> = l
            .fields
            .iter()
            .map(|(f, _)| format!("sizeof((({}*)0)->{f})", l.c_name))
            .collect();
        format!("sizeof({}) - ({})", l.c_name, sizes.join(" + "))
    };
    assert!(!layouts.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let mut program = String::new();
    for folder in ["runtime/cuda", "ops_lib/cuda"] {
        let mut headers: Vec<_> = std::fs::read_dir(root().join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cuh"))
            .collect();
        headers.sort();
        for h in headers {
            writeln!(program, "#include \"{}\"", h.display()).unwrap();
        }
    }
    program.push_str("#include <cstdio>\n#include <cstddef>\nint main() {\n");
    for l in &layouts {
        writeln!(
            program,
            "    printf(\"{0} %zu padding %zu\\n\", sizeof({0}), (size_t)({1}));",
            l.c_name,
            padding(l)
        )
        .unwrap();
        for (field, _) in l.fields {
            writeln!(
                program,
                "    printf(\"{0}.{1} %zu\\n\", offsetof({0}, {1}));",
                l.c_name, field
            )
            .unwrap();
        }
    }
    program.push_str("    return 0;\n}\n");
    let source = dir.path().join("layouts.cu");
    std::fs::write(&source, &program).unwrap();
    let binary = dir.path().join("layouts");
    let (code, _, err) = output(nvcc().arg(&source).arg("-o").arg(&binary));
    assert_eq!(code, 0, "nvcc: {err}\n{program}");
    let (code, out, err) = output(&mut std::process::Command::new(&binary));
    assert_eq!(code, 0, "{err}");
    let mut want = String::new();
    for l in &layouts {
        writeln!(want, "{} {} padding 0", l.c_name, l.size).unwrap();
        for (field, offset) in l.fields {
            writeln!(want, "{}.{field} {offset}", l.c_name).unwrap();
        }
    }
    assert_eq!(
        out, want,
        "Rust mirrors (right) against the C structs (left)"
    );
}
