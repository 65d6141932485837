//! A small protobuf text writer that keeps to what Netron's Caffe reader accepts: outside
//! quotes only identifiers, numbers, `{ } [ ] : ,` and `#` comments; strings on one line with
//! `"` and `\` escaped; floats as plain numbers, non-finite ones as quoted strings.

use std::fmt::Write;
use temblor_ir::{AttrValue, Shape};

/// Builds the text line by line, two spaces of indent per open block.
#[derive(Default)]
pub(crate) struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    pub(crate) fn finish(self) -> String {
        self.out
    }

    fn line(&mut self, text: &str) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    pub(crate) fn blank(&mut self) {
        self.out.push('\n');
    }

    /// `key: value`, where `value` is already formatted (see [`quote`], [`float`], [`attr`]).
    pub(crate) fn field(&mut self, key: &str, value: &str) {
        self.line(&format!("{}: {value}", ident(key)));
    }

    pub(crate) fn open(&mut self, key: &str) {
        self.line(&format!("{} {{", ident(key)));
        self.depth += 1;
    }

    /// `key { k: v k: v }` on one line; values already formatted.
    pub(crate) fn inline(&mut self, key: &str, fields: &[(&str, String)]) {
        let mut text = format!("{} {{", ident(key));
        for (k, v) in fields {
            write!(text, " {}: {v}", ident(k)).expect("write to String");
        }
        text.push_str(" }");
        self.line(&text);
    }

    pub(crate) fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
    }

    /// A `#` comment; line breaks and other control characters become spaces.
    pub(crate) fn comment(&mut self, text: &str) {
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.line(&format!("# {clean}"));
    }
}

/// A quoted string literal with `"`, `\` and control characters escaped.
pub(crate) fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                write!(q, "\\x{:02x}", c as u32).expect("write to String");
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A field name: characters outside `[A-Za-z0-9_]` become `_`, and a name that does not start
/// with a letter or `_` gets a leading `_`.
pub(crate) fn ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s.insert(0, '_');
    }
    s
}

/// A finite float as a number (`1e-5`, `0.5`, `6.0`); `inf`, `-inf` and `nan` quoted.
pub(crate) fn float(v: f32) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else if v.is_nan() {
        quote("nan")
    } else if v > 0.0 {
        quote("inf")
    } else {
        quote("-inf")
    }
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    let parts: Vec<String> = items.iter().map(f).collect();
    format!("[{}]", parts.join(", "))
}

/// An attribute value: numbers, `[...]` lists, or a quoted string.
pub(crate) fn attr(v: &AttrValue) -> String {
    match v {
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Float(f) => float(*f),
        AttrValue::String(s) => quote(s),
        AttrValue::Ints(v) => list(v, i64::to_string),
        AttrValue::Floats(v) => list(v, |f| float(*f)),
        AttrValue::Strings(v) => list(v, |s| quote(s)),
        AttrValue::Tensor { dtype, dims } => {
            quote(&format!("tensor {dtype} {}", list(dims, i64::to_string)))
        }
    }
}

/// `[1,3,N,?]`: known extents, symbol names, `?` for unknown (for use inside quotes).
pub(crate) fn shape(s: &Shape) -> String {
    let dims: Vec<String> = s.dims().iter().map(ToString::to_string).collect();
    format!("[{}]", dims.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_quotes_backslashes_and_line_breaks() {
        assert_eq!(quote("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\x01""#);
    }

    #[test]
    fn floats_are_numbers_or_quoted() {
        assert_eq!(float(1e-5), "1e-5");
        assert_eq!(float(6.0), "6.0");
        assert_eq!(float(f32::INFINITY), "\"inf\"");
        assert_eq!(float(f32::NEG_INFINITY), "\"-inf\"");
        assert_eq!(float(f32::NAN), "\"nan\"");
    }

    #[test]
    fn idents_are_sanitized() {
        assert_eq!(ident("kernel_shape"), "kernel_shape");
        assert_eq!(ident("a.b/c"), "a_b_c");
        assert_eq!(ident("0x"), "_0x");
    }
}
