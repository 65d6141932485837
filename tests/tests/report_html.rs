//! The optimization report of a real model: report.json's context, per-pass effects and
//! measured speedup agree with the pass records and the views' layer counts, and report.html
//! opens in headless Chromium without errors and draws its charts.
//!
//! Needs the Python venv with `playwright` (`$TEMBLOR_VENV`) and Debian's `/usr/bin/chromium`.
//! The screenshot is kept (its path is printed) so a person can look at the page.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use temblor_tests::{output, real_model, root, temblor};

fn ppocrv4_det() -> PathBuf {
    real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx")
}

/// `temblor compile` of PP-OCRv4 det at 1x3x160x160 into `out`, with extra flags; the report.
fn compile(out: &Path, extra: &[&str]) -> Value {
    let mut cmd = temblor();
    cmd.arg("compile")
        .arg(ppocrv4_det())
        .arg("-o")
        .arg(out)
        .args(["--input", "x:1x3x160x160"])
        .args(extra);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "compile failed: {err}");
    assert!(out.join("report.html").is_file(), "report.html not written");
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

fn array<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("'{key}' is not a list in {v}"))
}

fn count(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{v} is not an integer"))
}

/// Each pass's effect against the driver's records: one entry per pass that ran, its status and
/// rewrites from the records, its net layer change equal to the records' net change.
fn check_effects(report: &Value, measured: bool) {
    let records = array(report, "passes");
    let effects = array(report, "optimizations");
    let mut names: Vec<&str> = Vec::new();
    for r in records {
        let name = r["pass"].as_str().unwrap();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let listed: Vec<&str> = effects
        .iter()
        .map(|e| e["pass"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed, names,
        "optimizations must list each pass that ran once"
    );
    // Consecutive applied records of one pass are one measured run.
    let applied: Vec<&Value> = records
        .iter()
        .filter(|r| count(&r["applied"]) > 0)
        .collect();
    let mut runs: Vec<&str> = Vec::new();
    for r in &applied {
        let name = r["pass"].as_str().unwrap();
        if runs.last() != Some(&name) {
            runs.push(name);
        }
    }
    for e in effects {
        let name = e["pass"].as_str().unwrap();
        let mine: Vec<&&Value> = applied.iter().filter(|r| r["pass"] == name).collect();
        let rewrites: i64 = mine.iter().map(|r| count(&r["applied"])).sum();
        let net: i64 = mine
            .iter()
            .map(|r| count(&r["layers_before"]) - count(&r["layers_after"]))
            .sum();
        let status = if mine.is_empty() { "no-op" } else { "applied" };
        assert_eq!(e["status"], status, "{e}");
        assert_eq!(count(&e["rewrites"]), rewrites, "{e}");
        assert_eq!(
            count(&e["layers_removed"]) - count(&e["layers_added"]),
            net,
            "{e}"
        );
        let timed = array(e, "runs");
        let expected = if measured {
            runs.iter().filter(|r| **r == name).count()
        } else {
            0
        };
        assert_eq!(timed.len(), expected, "{e}");
        for run in timed {
            for key in ["latency_before_ms", "latency_after_ms"] {
                assert!(run[key].as_f64().unwrap() > 0.0, "{e}");
            }
        }
    }
    let layers = |v: &str| count(&report["views"][v]["layers"]);
    let removed: i64 = effects.iter().map(|e| count(&e["layers_removed"])).sum();
    let added: i64 = effects.iter().map(|e| count(&e["layers_added"])).sum();
    assert_eq!(
        removed - added,
        layers("parse") - layers("optimize"),
        "layers removed minus added must be what the optimizer took out"
    );
    assert!(removed > 0, "the passes removed no layer of PP-OCRv4 det");
}

fn check_context(report: &Value) {
    let c = &report["context"];
    assert_eq!(c["software"]["temblor"], report["temblor_version"]);
    for key in ["os", "arch"] {
        assert!(
            !c["software"][key].as_str().unwrap().is_empty(),
            "context.software.{key} empty: {c}"
        );
    }
    assert!(count(&c["hardware"]["available_cpus"]) >= 1, "{c}");
    let isa = c["hardware"]["isa"].as_str().unwrap_or_default();
    assert!(
        ["avx512f", "avx2+fma", "scalar"].contains(&isa),
        "context.hardware.isa is '{isa}': {c}"
    );
    // The extensions this machine's kernels use, when it has any, each one the runtime names.
    if let Some(extensions) = c["hardware"].get("isa_extensions") {
        let names = extensions.as_array().expect("isa_extensions is a list");
        assert!(
            !names.is_empty(),
            "an empty isa_extensions is left out: {c}"
        );
        for name in names {
            let name = name.as_str().unwrap_or_default();
            assert!(
                ["avx512vnni", "avx512bf16", "amx-bf16"].contains(&name),
                "context.hardware.isa_extensions holds '{name}': {c}"
            );
        }
    }
    assert_eq!(c["threads"], report["measurement"]["threads"], "{c}");
    if Path::new("/proc/cpuinfo").is_file() {
        assert!(c["hardware"]["cpu"].is_string(), "no CPU model: {c}");
        assert!(count(&c["hardware"]["memory_bytes"]) > 0, "{c}");
    }
}

/// The static memory plan of a static-shape model: no smaller than the widest cut (the most
/// bytes alive at once, no plan needs less), near it, and far below keeping every value.
fn check_memory(report: &Value) {
    let m = &report["memory"];
    let (arena, cut, all) = (
        count(&m["arena_bytes"]),
        count(&m["widest_cut_bytes"]),
        count(&m["values_bytes"]),
    );
    assert!(cut > 0 && arena >= cut, "{m}");
    assert!(
        arena * 4 <= cut * 5,
        "the arena is 25% over the widest cut: {m}"
    );
    assert!(arena * 3 < all, "the plan reuses little memory: {m}");
}

/// What check_report_html.py saw of the page.
fn open_in_chromium(page: &Path, shot: &Path) -> Value {
    let python = temblor_tests::python();
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: install Debian's chromium package"
    );
    let script = root().join("tests/scripts/check_report_html.py");
    let (code, out, err) = output(Command::new(&python).arg(script).arg(page).arg(shot));
    assert_eq!(code, 0, "check_report_html.py failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad output {out:?}: {e}"))
}

#[test]
fn report_of_ppocrv4_det_measures_every_pass_and_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("det.temblor");
    let report = compile(&pkg, &[]);
    check_context(&report);
    check_memory(&report);
    let m = &report["measurement"];
    assert_eq!(m["status"], "measured", "{m}");
    let (parse_ms, compile_ms) = (
        m["parse_ms"].as_f64().unwrap(),
        m["compile_ms"].as_f64().unwrap(),
    );
    assert!(parse_ms > 0.0 && compile_ms > 0.0, "{m}");
    let speedup = m["speedup"].as_f64().unwrap();
    assert!(
        (speedup - parse_ms / compile_ms).abs() <= 1e-9 * speedup,
        "{m}"
    );
    check_effects(&report, true);

    // The page and its screenshot are kept for a person to look at.
    let keep = tempfile::Builder::new()
        .prefix("temblor-report-html-")
        .tempdir()
        .unwrap()
        .keep();
    let page = keep.join("report.html");
    std::fs::copy(pkg.join("report.html"), &page).unwrap();
    let shot = keep.join("report.png");
    let seen = open_in_chromium(&page, &shot);
    println!("report.html screenshot: {}", shot.display());
    for key in ["console_errors", "page_errors", "external_requests"] {
        assert!(array(&seen, key).is_empty(), "{key}: {seen}");
    }
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");

    let charts = array(&seen, "charts");
    let chart = |id: &str| charts.iter().find(|c| c["id"] == id);
    let mut expected = vec![("layers-chart", 3)];
    if let Some(profile) = report.get("profile") {
        expected.push(("profile-chart", array(profile, "op_types").len()));
    }
    if let Some(errors) = report.get("per_layer_error") {
        expected.push(("error-chart", errors.as_array().unwrap().len().min(60)));
    }
    for (id, bars) in expected {
        let c = chart(id).unwrap_or_else(|| panic!("no chart '{id}' drawn: {seen}"));
        assert!(
            c["width"].as_f64().unwrap() > 0.0 && c["height"].as_f64().unwrap() > 0.0,
            "chart '{id}' has no size: {c}"
        );
        assert_eq!(c["bars"].as_u64().unwrap() as usize, bars, "{c}");
    }
}

#[test]
fn no_measure_reports_layer_effects_without_timing() {
    let dir = tempfile::tempdir().unwrap();
    let report = compile(&dir.path().join("det.temblor"), &["--no-measure"]);
    let m = &report["measurement"];
    assert_eq!(m["status"], "skipped", "{m}");
    assert!(m.get("speedup").is_none(), "{m}");
    check_effects(&report, false);
    for e in array(&report, "optimizations") {
        assert!(e.get("latency_saved_ms").is_none(), "{e}");
    }
}
