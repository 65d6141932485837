//! Class names a model carries in its own metadata (ONNX `metadata_props`), so nobody restates
//! what the exporter wrote:
//!
//! - Ultralytics' `names`: `str()` of a Python dict, `{0: 'person', 1: "driver's seat"}` (YOLOv5
//!   wrote a list, `['person', ...]`). Parsed as the Python literal it is: either quote,
//!   backslash escapes, keys in any order; the ids must be exactly 0..n.
//! - RapidOCR's `character`: the CTC dictionary, one character a line, read with Python's
//!   `str.splitlines()`; class `i` reads `labels[i - 1]`, CTC's blank being class 0, and the
//!   space RapidOCR appends as the last class (PaddleOCR's `use_space_char`) is left to
//!   `ctc::decode`, which knows it by the class count.

/// The labels by class id in `metadata`, from Ultralytics' `names` or else RapidOCR's
/// `character`; None when neither is there or `names` does not parse into ids 0..n.
pub fn labels(metadata: &[(String, String)]) -> Option<Vec<String>> {
    let value = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    if let Some(names) = value("names") {
        return ultralytics_names(names);
    }
    value("character").map(|c| ctc_dictionary(c))
}

/// Ultralytics' `names` literal as labels by id.
pub fn ultralytics_names(literal: &str) -> Option<Vec<String>> {
    let mut p = Parser {
        chars: literal.chars().collect(),
        at: 0,
    };
    let entries = p.collection()?;
    p.skip_space();
    if p.at != p.chars.len() {
        return None;
    }
    let mut labels: Vec<Option<String>> = vec![None; entries.len()];
    for (id, name) in entries {
        let slot = labels.get_mut(usize::try_from(id).ok()?)?;
        if slot.replace(name).is_some() {
            return None;
        }
    }
    labels.into_iter().collect()
}

/// RapidOCR's `character` dictionary, one character a line. The space PaddleOCR's
/// `use_space_char` adds as the last class is not appended: `ctc::decode` knows it by the class
/// count, and a package's labels.txt could not hold it.
pub fn ctc_dictionary(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // Python's str.splitlines() boundaries.
        match c {
            '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::take(&mut line));
            }
            c => line.push(c),
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// A reader of the small part of Python's literal syntax `str()` writes for a dict of int to
/// str, or a list of str.
struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// Takes `c` (after any space) if it is next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        let here = self.peek() == Some(c);
        if here {
            self.at += 1;
        }
        here
    }

    /// `{id: 'name', ...}` or `['name', ...]` (ids by position), as (id, name) pairs.
    fn collection(&mut self) -> Option<Vec<(i64, String)>> {
        let (dict, close) = if self.eat('{') {
            (true, '}')
        } else if self.eat('[') {
            (false, ']')
        } else {
            return None;
        };
        let mut entries = Vec::new();
        loop {
            if self.eat(close) {
                return Some(entries);
            }
            let id = if dict {
                let id = self.integer()?;
                self.eat(':').then_some(id)?
            } else {
                entries.len() as i64
            };
            self.skip_space();
            entries.push((id, self.string()?));
            if !self.eat(',') {
                return self.eat(close).then_some(entries);
            }
        }
    }

    fn integer(&mut self) -> Option<i64> {
        self.skip_space();
        let start = self.at;
        if self.peek() == Some('-') {
            self.at += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        self.chars[start..self.at]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
    }

    /// A quoted string, either quote, with Python's backslash escapes.
    fn string(&mut self) -> Option<String> {
        let quote = self.peek().filter(|&q| q == '\'' || q == '"')?;
        self.at += 1;
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            self.at += 1;
            match c {
                c if c == quote => return Some(out),
                '\\' => self.escape(&mut out)?,
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Option<()> {
        let c = self.peek()?;
        self.at += 1;
        let simple = match c {
            '\\' | '\'' | '"' => Some(c),
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\n' => return Some(()),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            return Some(());
        }
        let code = match c {
            'x' => self.hex(2)?,
            'u' => self.hex(4)?,
            'U' => self.hex(8)?,
            '0'..='7' => {
                let mut v = c.to_digit(8)?;
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.at += 1;
                        }
                        None => break,
                    }
                }
                v
            }
            // Python keeps an unknown escape as written.
            _ => {
                out.push('\\');
                out.push(c);
                return Some(());
            }
        };
        out.push(char::from_u32(code)?);
        Some(())
    }

    fn hex(&mut self, digits: usize) -> Option<u32> {
        let s: String = self.chars.get(self.at..self.at + digits)?.iter().collect();
        self.at += digits;
        u32::from_str_radix(&s, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of `names` in yolov8n_nudenet_onnx/320n.onnx (Ultralytics 8.2.46).
    const NUDENET: &str = "{0: 'FEMALE_GENITALIA_COVERED', 1: 'FACE_FEMALE', \
        2: 'BUTTOCKS_EXPOSED', 3: 'FEMALE_BREAST_EXPOSED', 4: 'FEMALE_GENITALIA_EXPOSED', \
        5: 'MALE_BREAST_EXPOSED', 6: 'ANUS_EXPOSED', 7: 'FEET_EXPOSED', 8: 'BELLY_COVERED', \
        9: 'FEET_COVERED', 10: 'ARMPITS_COVERED', 11: 'ARMPITS_EXPOSED', 12: 'FACE_MALE', \
        13: 'BELLY_EXPOSED', 14: 'MALE_GENITALIA_EXPOSED', 15: 'ANUS_COVERED', \
        16: 'FEMALE_BREAST_COVERED', 17: 'BUTTOCKS_COVERED'}";

    fn meta(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ultralytics_names_of_the_real_models() {
        let labels = labels(&meta(&[("task", "detect"), ("names", NUDENET)])).unwrap();
        assert_eq!(labels.len(), 18);
        assert_eq!(labels[1], "FACE_FEMALE");
        assert_eq!(labels[17], "BUTTOCKS_COVERED");
        // yolo11seg_slider_onnx/slider.onnx (8.3.176).
        assert_eq!(ultralytics_names("{0: 's'}").unwrap(), ["s"]);
    }

    #[test]
    fn python_quoting_and_order() {
        let got = ultralytics_names(
            r#"{1: "driver's seat", 0: 'a\'b', 2: 'tab\there', 3: '\xe9\u00e9\\'}"#,
        );
        assert_eq!(got.unwrap(), ["a'b", "driver's seat", "tab\there", "éé\\"]);
        assert_eq!(
            ultralytics_names("['person', 'car',]").unwrap(),
            ["person", "car"]
        );
        assert_eq!(ultralytics_names("{}").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn ids_other_than_0_to_n_are_not_labels() {
        for bad in [
            "{0: 'a', 2: 'b'}",
            "{0: 'a', 0: 'b'}",
            "{-1: 'a'}",
            "{0: 'a'",
            "{0: 'a'} x",
            "{0: a}",
            "names",
            "",
        ] {
            assert_eq!(ultralytics_names(bad), None, "{bad}");
        }
        assert_eq!(
            labels(&meta(&[("names", "{1: 'a'}"), ("character", "x")])),
            None
        );
        assert_eq!(labels(&meta(&[("task", "detect")])), None);
    }

    #[test]
    fn rapidocr_character_dictionary() {
        // The first and last lines of ppocrv4_rec_onnx's `character` (6623 lines, no final
        // newline; the model has 6625 classes: blank, the lines, and the space).
        let character = "'\n疗\n绚\n诚\n娇\n...\nū\nì\n殻\n鉄\n∑\n蛲\n焼\n緖\n續\n紹\n懮";
        let got = labels(&meta(&[("character", character)])).unwrap();
        assert_eq!(got[..3], ["'", "疗", "绚"]);
        assert_eq!(got[got.len() - 3..], ["續", "紹", "懮"]);
        assert_eq!(got.len(), 17);
        assert_eq!(ctc_dictionary("a\r\nb\u{2028}c\n"), ["a", "b", "c"]);
    }
}
