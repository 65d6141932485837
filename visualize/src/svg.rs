//! Horizontal bar charts as inline SVG: one labelled bar per row, sized by a linear or a
//! logarithmic scale. Numbers are written with fixed precision so the same rows give the same
//! bytes.

use std::fmt::Write;

/// One bar: its label, its value (what the bar's length shows) and the text written after it.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub note: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Decades: for values spanning orders of magnitude (relative errors). Values at or below 0
    /// get no bar.
    Log,
}

const ROW: f64 = 22.0;
const BAR: f64 = 15.0;
const BAR_SPACE: f64 = 360.0;
const CHAR: f64 = 7.2;
const MAX_LABEL: usize = 44;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL {
        return label.to_string();
    }
    let head: String = label.chars().take(MAX_LABEL - 1).collect();
    format!("{head}\u{2026}")
}

/// The length of each bar as a fraction of the longest possible one.
fn fractions(bars: &[Bar], scale: Scale) -> Vec<f64> {
    match scale {
        Scale::Linear => {
            let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
            bars.iter()
                .map(|b| {
                    if max > 0.0 {
                        b.value.max(0.0) / max
                    } else {
                        0.0
                    }
                })
                .collect()
        }
        Scale::Log => {
            let logs: Vec<f64> = bars
                .iter()
                .filter(|b| b.value > 0.0 && b.value.is_finite())
                .map(|b| b.value.log10())
                .collect();
            let lo = logs.iter().copied().fold(f64::INFINITY, f64::min).floor() - 1.0;
            let hi = logs
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max)
                .ceil();
            bars.iter()
                .map(|b| match b.value {
                    v if v.is_infinite() && v > 0.0 => 1.0,
                    v if v > 0.0 && hi > lo => (v.log10() - lo) / (hi - lo),
                    _ => 0.0,
                })
                .collect()
        }
    }
}

/// An SVG bar chart with one row per bar; `id` names it for styling and tests.
pub fn bar_chart(id: &str, title: &str, bars: &[Bar], scale: Scale) -> String {
    let label_space = bars
        .iter()
        .map(|b| shorten(&b.label).chars().count())
        .max()
        .unwrap_or(0) as f64
        * CHAR
        + 12.0;
    let note_space = bars
        .iter()
        .map(|b| b.note.chars().count())
        .max()
        .unwrap_or(0) as f64
        * CHAR
        + 12.0;
    let width = label_space + BAR_SPACE + note_space;
    let height = ROW * bars.len().max(1) as f64 + 8.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" id=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\">\
         <title>{}</title>",
        escape(id),
        escape(title)
    );
    for (i, (bar, frac)) in bars.iter().zip(fractions(bars, scale)).enumerate() {
        let y = 4.0 + ROW * i as f64;
        let length = (frac * BAR_SPACE).max(if frac > 0.0 { 1.0 } else { 0.0 });
        let _ = write!(
            s,
            "<g class=\"row\"><title>{label}: {note}</title>\
             <text class=\"label\" x=\"{lx:.1}\" y=\"{ty:.1}\" text-anchor=\"end\">{short}</text>\
             <rect class=\"bar\" x=\"{label_space:.1}\" y=\"{y:.1}\" width=\"{length:.1}\" \
             height=\"{BAR:.1}\" rx=\"2\"/>\
             <text class=\"note\" x=\"{nx:.1}\" y=\"{ty:.1}\">{note}</text></g>",
            label = escape(&bar.label),
            note = escape(&bar.note),
            short = escape(&shorten(&bar.label)),
            lx = label_space - 6.0,
            ty = y + BAR - 3.0,
            nx = label_space + length + 6.0,
        );
    }
    s.push_str("</svg>");
    s
}
