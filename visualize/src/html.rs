//! `report.html`: the compile report (`report.json`, given as a JSON value) as one self-contained
//! page: inline CSS and inline SVG charts, no script, no external address, so it opens from disk
//! with no server. Sections whose data the report lacks (no profile, no precision plan) are left
//! out. The same report gives the same bytes.

use crate::svg::{bar_chart, escape, Bar, Scale};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Write;
use temblor_ir::{MeasureStatus, PassStatus, VerifyStatus};

const STYLE: &str = "\
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;\
padding:0 16px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid \
#d5dae3;padding-bottom:4px}\
.sub{color:#5b6475;margin:0 0 16px;word-break:break-all}\
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px;text-align:left;\
border-bottom:1px solid #e6e9ef;vertical-align:top}th{background:#f3f5f8;font-weight:600}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.cards{display:flex;gap:14px;flex-wrap:wrap}.card{border:1px solid #d5dae3;border-radius:6px;\
padding:10px 16px;min-width:180px}.card .v{font-size:22px;font-weight:600}\
.ok{color:#17803d}.bad{color:#b42318}.muted{color:#5b6475}\
svg.chart{display:block;margin:6px 0;font:12px ui-monospace,monospace}\
svg.chart .bar{fill:#3b6fd4}svg.chart .label{fill:#1d2330}svg.chart .note{fill:#5b6475}\
#error-chart .bar{fill:#c2410c}\
tr.noop td{color:#8a93a5}";

/// Looks up `path` (object keys) in `v`.
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    at(v, path).and_then(Value::as_f64)
}

/// A status of the report read back into its enum; `None` when absent.
fn read_status<T: DeserializeOwned>(v: &Value, path: &[&str]) -> Option<T> {
    at(v, path).and_then(|s| T::deserialize(s).ok())
}

/// A value as plain text (strings unquoted), or an empty string when absent.
fn text(v: &Value, path: &[&str]) -> String {
    match at(v, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The instruction set the kernels were chosen for, with its extensions in use:
/// `avx512f + avx512vnni, avx512bf16, amx-bf16`.
fn kernels_for(r: &Value) -> String {
    let isa = text(r, &["context", "hardware", "isa"]);
    let extensions: Vec<&str> = at(r, &["context", "hardware", "isa_extensions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if extensions.is_empty() {
        isa
    } else {
        format!("{isa} + {}", extensions.join(", "))
    }
}

fn ms(x: f64) -> String {
    format!("{x:.2} ms")
}

fn row(out: &mut String, cells: &[(&str, String)]) {
    out.push_str("<tr>");
    for (class, cell) in cells {
        let _ = write!(out, "<td class=\"{class}\">{cell}</td>");
    }
    out.push_str("</tr>");
}

fn head(out: &mut String, names: &[&str]) {
    out.push_str("<tr>");
    for n in names {
        let _ = write!(out, "<th>{n}</th>");
    }
    out.push_str("</tr>");
}

/// The page for one report.
pub fn report_html(report: &Value) -> String {
    let model = text(report, &["model"]);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>temblor report: {}</title><style>{STYLE}</style></head><body>\
         <h1>temblor optimization report</h1><p class=\"sub\">{}</p>",
        escape(&model),
        escape(&model)
    );
    summary(&mut s, report);
    context(&mut s, report);
    layers(&mut s, report);
    passes(&mut s, report);
    profile(&mut s, report);
    precision(&mut s, report);
    verification(&mut s, report);
    s.push_str("</body></html>\n");
    s
}

fn card(s: &mut String, title: &str, value: &str, class: &str, detail: &str) {
    let _ = write!(
        s,
        "<div class=\"card\"><div class=\"muted\">{}</div><div class=\"v {class}\">{}</div>\
         <div class=\"muted\">{}</div></div>",
        escape(title),
        escape(value),
        escape(detail)
    );
}

fn summary(s: &mut String, r: &Value) {
    s.push_str("<div class=\"cards\" id=\"summary\">");
    match (
        num(r, &["measurement", "speedup"]),
        num(r, &["measurement", "parse_ms"]),
        num(r, &["measurement", "compile_ms"]),
    ) {
        (Some(x), Some(p), Some(c)) => card(
            s,
            "overall speedup (parse vs compile graph)",
            &format!("{x:.2}\u{d7}"),
            "",
            &format!("{} \u{2192} {}", ms(p), ms(c)),
        ),
        _ => card(
            s,
            "overall speedup",
            "not measured",
            "muted",
            &text(r, &["measurement", "reason"]),
        ),
    }
    let count = |v: &str| text(r, &["views", v, "layers"]);
    card(
        s,
        "layers parse \u{2192} optimize \u{2192} compile",
        &format!(
            "{} \u{2192} {} \u{2192} {}",
            count("parse"),
            count("optimize"),
            count("compile")
        ),
        "",
        "",
    );
    let (value, class) = match read_status(r, &["verification", "status"]) {
        Some(VerifyStatus::Passed) => ("passed", "ok"),
        Some(other @ VerifyStatus::Skipped) => (other.name(), "bad"),
        None => ("not run", "muted"),
    };
    card(
        s,
        "verification (optimize vs parse)",
        value,
        class,
        &text(r, &["verification", "reason"]),
    );
    s.push_str("</div>");
}

fn context(s: &mut String, r: &Value) {
    s.push_str("<h2>Context</h2><table id=\"context\">");
    let memory = num(r, &["context", "hardware", "memory_bytes"])
        .map(|b| format!("{:.1} GiB", b / f64::from(1u32 << 30)))
        .unwrap_or_default();
    let cpus = format!(
        "{} logical, {} available",
        text(r, &["context", "hardware", "logical_cpus"]),
        text(r, &["context", "hardware", "available_cpus"])
    );
    let rows = [
        ("temblor", text(r, &["context", "software", "temblor"])),
        ("rustc", text(r, &["context", "software", "rustc"])),
        ("OS", text(r, &["context", "software", "os"])),
        ("kernel", text(r, &["context", "software", "kernel"])),
        ("architecture", text(r, &["context", "software", "arch"])),
        ("CPU", text(r, &["context", "hardware", "cpu"])),
        ("CPUs", cpus),
        ("kernels for", kernels_for(r)),
        ("memory", memory),
        ("threads measured on", text(r, &["context", "threads"])),
    ];
    for (name, value) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        row(s, &[("", name.to_string()), ("", escape(value))]);
    }
    for (kind, key) in [("input", "inputs"), ("output", "outputs")] {
        for v in at(r, &[key])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let desc = format!(
                "{} {} {}",
                text(v, &["name"]),
                text(v, &["dtype"]),
                text(v, &["shape"])
            );
            row(s, &[("", kind.to_string()), ("", escape(&desc))]);
        }
    }
    s.push_str("</table>");
}

fn layers(s: &mut String, r: &Value) {
    let bars: Vec<Bar> = ["parse", "optimize", "compile"]
        .iter()
        .filter_map(|v| {
            let n = num(r, &["views", v, "layers"])?;
            Some(Bar {
                label: v.to_string(),
                value: n,
                note: format!("{n:.0} layers"),
            })
        })
        .collect();
    s.push_str("<h2>Layers per view</h2>");
    s.push_str(&bar_chart(
        "layers-chart",
        "layers per view",
        &bars,
        Scale::Linear,
    ));
}

fn passes(s: &mut String, r: &Value) {
    s.push_str("<h2>Optimizations</h2><table id=\"passes\">");
    head(
        s,
        &[
            "pass",
            "status",
            "rewrites",
            "layers removed",
            "layers added",
            "latency before \u{2192} after (rounds)",
            "saved",
        ],
    );
    for p in at(r, &["optimizations"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let status: Option<PassStatus> = read_status(p, &["status"]);
        let runs: Vec<String> = p["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|run| {
                let (a, b) = (
                    num(run, &["latency_before_ms"]).unwrap_or(f64::NAN),
                    num(run, &["latency_after_ms"]).unwrap_or(f64::NAN),
                );
                let (first, last) = (text(run, &["first_round"]), text(run, &["last_round"]));
                let rounds = if first == last {
                    first
                } else {
                    format!("{first}\u{2013}{last}")
                };
                format!("{} \u{2192} {} ({rounds})", ms(a), ms(b))
            })
            .collect();
        let saved = num(p, &["latency_saved_ms"]).map(ms).unwrap_or_default();
        let _ = write!(
            s,
            "<tr class=\"{}\">",
            match status {
                Some(PassStatus::Applied) => "applied",
                Some(PassStatus::NoOp) | None => "noop",
            }
        );
        let cells = [
            ("", escape(&text(p, &["pass"]))),
            ("", status.map_or("", PassStatus::name).to_string()),
            ("n", text(p, &["rewrites"])),
            ("n", text(p, &["layers_removed"])),
            ("n", text(p, &["layers_added"])),
            ("", runs.join("<br>")),
            ("n", saved),
        ];
        for (class, cell) in cells {
            let _ = write!(s, "<td class=\"{class}\">{cell}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    let m = &r["measurement"];
    let note = match read_status(m, &["status"]) {
        Some(MeasureStatus::Measured) => format!(
            "Latency: median of {} runs after {} warm-up, {} threads, CPU runtime, same \
             synthesized inputs for every graph. Saved = before \u{2212} after over the pass's runs.",
            text(m, &["iters"]),
            text(m, &["warmup"]),
            text(m, &["threads"])
        ),
        _ => format!("Latency not measured: {}", text(m, &["reason"])),
    };
    let _ = write!(s, "<p class=\"muted\">{}</p>", escape(&note));
}

fn profile(s: &mut String, r: &Value) {
    let Some(p) = r.get("profile").filter(|p| !p.is_null()) else {
        return;
    };
    let mut ops: Vec<&Value> = p["op_types"].as_array().into_iter().flatten().collect();
    ops.sort_by(|a, b| {
        let key = |v: &Value| num(v, &["mean_ms"]).unwrap_or(0.0);
        key(b).total_cmp(&key(a))
    });
    let bars: Vec<Bar> = ops
        .iter()
        .map(|o| {
            let mean = num(o, &["mean_ms"]).unwrap_or(0.0);
            let share = num(o, &["share"]).map(|x| format!(", {:.1}%", x * 100.0));
            Bar {
                label: text(o, &["op_type"]),
                value: mean,
                note: format!(
                    "{mean:.2} \u{b1} {:.2} ms, {} layer{}{}",
                    num(o, &["stddev_ms"]).unwrap_or(0.0),
                    text(o, &["count"]),
                    if text(o, &["count"]) == "1" { "" } else { "s" },
                    share.unwrap_or_default()
                ),
            }
        })
        .collect();
    let _ = write!(
        s,
        "<h2>Time per op type (compile graph)</h2><p class=\"muted\">total {} per run</p>",
        num(p, &["total_ms"]).map(ms).unwrap_or_default()
    );
    s.push_str(&bar_chart(
        "profile-chart",
        "time per op type",
        &bars,
        Scale::Linear,
    ));
}

/// At most this many layers are drawn in the per-layer error chart: the worst ones.
const MAX_ERROR_BARS: usize = 60;

fn precision(s: &mut String, r: &Value) {
    let plan = r.get("precision").filter(|p| !p.is_null());
    let errors = r.get("per_layer_error").and_then(Value::as_array);
    if plan.is_none() && errors.is_none() {
        return;
    }
    s.push_str("<h2>Precision plan</h2>");
    if let Some(p) = plan {
        s.push_str("<table id=\"precision\">");
        let share = |k: &str| num(p, &[k]).map(|x| format!("{:.1}%", x * 100.0));
        let rows = [
            ("mode", Some(text(p, &["mode"]))),
            ("fp16 FLOP share", share("fp16_flop_share")),
            ("int8 FLOP share", share("int8_flop_share")),
            (
                "detection agreement AP",
                num(p, &["agreement_ap"]).map(|x| format!("{x:.4}")),
            ),
            (
                "output relative L2",
                num(p, &["output_rel_l2"]).map(|x| format!("{x:.3e}")),
            ),
        ];
        for (name, value) in rows {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                row(s, &[("", name.to_string()), ("", escape(&v))]);
            }
        }
        s.push_str("</table>");
    }
    if let Some(errors) = errors {
        let mut bars: Vec<Bar> = errors
            .iter()
            .map(|e| {
                let v = num(e, &["rel_l2"]).unwrap_or(f64::NAN);
                Bar {
                    label: text(e, &["layer"]),
                    value: v,
                    note: format!("{v:.3e}"),
                }
            })
            .collect();
        let total = bars.len();
        if total > MAX_ERROR_BARS {
            bars.sort_by(|a, b| b.value.total_cmp(&a.value));
            bars.truncate(MAX_ERROR_BARS);
        }
        let shown = if total > MAX_ERROR_BARS {
            format!("the {MAX_ERROR_BARS} worst of {total} layers, worst first")
        } else {
            format!("{total} layers, in graph order")
        };
        let _ = write!(
            s,
            "<p class=\"muted\">Relative L2 error per layer of the chosen plan (log scale): {}</p>",
            escape(&shown)
        );
        s.push_str(&bar_chart(
            "error-chart",
            "per-layer error",
            &bars,
            Scale::Log,
        ));
    }
}

fn verification(s: &mut String, r: &Value) {
    s.push_str("<h2>Verification</h2>");
    let v = &r["verification"];
    if v.is_null() {
        s.push_str("<p class=\"muted\">not run (--no-verify)</p>");
        return;
    }
    let status: Option<VerifyStatus> = read_status(v, &["status"]);
    let _ = write!(
        s,
        "<p>optimize graph against parse graph on the CPU runtime: <b class=\"{}\">{}</b> {}</p>",
        if status == Some(VerifyStatus::Passed) {
            "ok"
        } else {
            "bad"
        },
        status.map_or("", VerifyStatus::name),
        escape(&text(v, &["reason"]))
    );
    let outputs: Vec<&Value> = v["outputs"].as_array().into_iter().flatten().collect();
    if outputs.is_empty() {
        return;
    }
    s.push_str("<table id=\"verification\">");
    head(s, &["checked value", "relative L2", "allowed"]);
    for o in outputs {
        row(
            s,
            &[
                ("", escape(&text(o, &["name"]))),
                (
                    "n",
                    format!("{:.3e}", num(o, &["rel_l2"]).unwrap_or(f64::NAN)),
                ),
                (
                    "n",
                    format!("{:.3e}", num(o, &["allowed"]).unwrap_or(f64::NAN)),
                ),
            ],
        );
    }
    s.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::report_html;
    use serde_json::json;

    fn bars_in(page: &str, id: &str) -> usize {
        let start = page
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no chart {id}"));
        let end = start + page[start..].find("</svg>").unwrap();
        page[start..end].matches("class=\"bar\"").count()
    }

    #[test]
    fn every_section_is_drawn_and_text_is_escaped() {
        let errors: Vec<_> = (0..70)
            .map(|i| json!({"layer": format!("conv<{i}>&"), "rel_l2": 1e-6 * f64::from(i)}))
            .collect();
        let report = json!({
            "model": "m.onnx",
            "views": {"parse": {"layers": 9}, "optimize": {"layers": 5}, "compile": {"layers": 7}},
            "measurement": {"status": "measured", "parse_ms": 2.0, "compile_ms": 1.0,
                            "speedup": 2.0, "iters": 3, "warmup": 1, "threads": 2},
            "profile": {"total_ms": 1.0, "op_types": [
                {"op_type": "Conv", "mean_ms": 0.75, "stddev_ms": 0.1, "count": 3, "share": 0.75},
                {"op_type": "Add", "mean_ms": 0.25, "stddev_ms": 0.0, "count": 1, "share": 0.25}]},
            "precision": {"mode": "int8", "int8_flop_share": 0.5},
            "per_layer_error": errors,
        });
        let page = report_html(&report);
        assert_eq!(
            page,
            report_html(&report),
            "the same report gives the same page"
        );
        assert_eq!(bars_in(&page, "layers-chart"), 3);
        assert_eq!(bars_in(&page, "profile-chart"), 2);
        assert_eq!(
            bars_in(&page, "error-chart"),
            60,
            "only the worst 60 layers are drawn"
        );
        assert!(page.contains("conv&lt;69&gt;&amp;") && !page.contains("conv<"));
        assert!(page.contains("the 60 worst of 70 layers"));
        assert!(
            !page.contains("conv&lt;9&gt;"),
            "a layer among the 10 smallest errors is drawn"
        );
    }
}
