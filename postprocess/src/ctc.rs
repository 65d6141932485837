//! CTC greedy decoding of a text recognizer, as PaddleOCR's `CTCLabelDecode`.

use crate::floats;
use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

/// Each line's text and mean confidence, from probabilities `[lines, T, classes]`; class 0 is
/// CTC's blank, class `i` is `dictionary[i - 1]`. A model with two classes more than the
/// dictionary was trained with PaddleOCR's `use_space_char`: its last class is a space.
///
/// Per step the most probable class is taken; a class repeating the step before it, and the
/// blank, are dropped (a blank between two equal classes keeps both). The confidence is the mean
/// of the kept steps' probabilities (0 for a line with none, as PaddleOCR).
pub fn decode(probs: &Tensor, dictionary: &[String]) -> Result<Vec<(String, f32)>> {
    let [lines, steps, classes] = probs.shape[..] else {
        return Err(Error::usage(format!(
            "a text recognizer's output is [lines, steps, classes]; this one is {:?}",
            probs.shape
        )));
    };
    let space = if classes == dictionary.len() + 2 {
        true
    } else if classes == dictionary.len() + 1 {
        false
    } else {
        return Err(Error::usage(format!(
            "the recognizer has {classes} classes; a dictionary of {} characters fits {} \
             (blank + characters) or {} (with PaddleOCR's space as the last class)",
            dictionary.len(),
            dictionary.len() + 1,
            dictionary.len() + 2
        )));
    };
    let values = floats("recognizer output", probs)?;
    let character = |class: usize| -> &str {
        match dictionary.get(class - 1) {
            Some(c) => c,
            None if space => " ",
            None => "",
        }
    };
    let mut out = Vec::with_capacity(lines);
    if steps == 0 || classes == 0 {
        out.resize(lines, (String::new(), 0.0));
        return Ok(out);
    }
    for line in values.chunks_exact(steps * classes) {
        let (mut text, mut sum, mut kept) = (String::new(), 0f64, 0usize);
        let mut previous = None;
        for step in line.chunks_exact(classes) {
            let (class, p) = argmax(step);
            if class != 0 && previous != Some(class) {
                text.push_str(character(class));
                sum += f64::from(p);
                kept += 1;
            }
            previous = Some(class);
        }
        let confidence = if kept == 0 {
            0.0
        } else {
            (sum / kept as f64) as f32
        };
        out.push((text, confidence));
    }
    Ok(out)
}

/// The first most probable class and its probability (numpy's argmax picks the first of ties).
fn argmax(step: &[f32]) -> (usize, f32) {
    let mut best = (0, step[0]);
    for (i, &p) in step.iter().enumerate().skip(1) {
        if p > best.1 {
            best = (i, p);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(chars: &str) -> Vec<String> {
        chars.chars().map(String::from).collect()
    }

    /// `[1, T, classes]` with each step's winner at probability `p` and the rest sharing 1 - p.
    fn probs(winners: &[(usize, f32)], classes: usize) -> Tensor {
        let mut v = Vec::new();
        for &(w, p) in winners {
            let rest = (1.0 - p) / (classes - 1) as f32;
            v.extend((0..classes).map(|c| if c == w { p } else { rest }));
        }
        Tensor::f32(vec![1, winners.len(), classes], v)
    }

    #[test]
    fn repeats_merge_blanks_separate_and_space_is_the_last_class() {
        // a b c, blank 0, space 4 (dictionary of 3 + blank + space = 5 classes).
        // Steps: a a 0 a b b space c 0 → "aab c"; kept steps a(0.9) a(0.7) b(0.8) ' '(0.6) c(1.0).
        let t = probs(
            &[
                (1, 0.9),
                (1, 0.5),
                (0, 0.9),
                (1, 0.7),
                (2, 0.8),
                (2, 0.9),
                (4, 0.6),
                (3, 1.0),
                (0, 0.8),
            ],
            5,
        );
        let out = decode(&t, &dict("abc")).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "aab c");
        let mean = (0.9 + 0.7 + 0.8 + 0.6 + 1.0) / 5.0;
        assert!((out[0].1 - mean).abs() < 1e-6, "{}", out[0].1);
    }

    #[test]
    fn without_space_class_and_all_blank_lines() {
        let t = probs(&[(0, 0.9), (0, 0.9)], 4);
        assert_eq!(
            decode(&t, &dict("abc")).unwrap(),
            vec![(String::new(), 0.0)]
        );
        let t = probs(&[(3, 0.5), (0, 0.9), (3, 0.7)], 4);
        let out = decode(&t, &dict("abc")).unwrap();
        assert_eq!(out[0].0, "cc");
        assert!((out[0].1 - 0.6).abs() < 1e-6);
    }

    #[test]
    fn a_dictionary_that_does_not_fit_is_a_usage_error() {
        let t = probs(&[(1, 0.9)], 7);
        let e = decode(&t, &dict("abc")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("7 classes"), "{e}");
        let flat = Tensor::f32(vec![2, 3], vec![0.0; 6]);
        assert_eq!(decode(&flat, &dict("ab")).unwrap_err().exit_code(), 2);
    }
}
