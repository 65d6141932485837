//! A mechanical check of the text rules Netron's Caffe reader needs (DESIGN.md, "The three
//! views (Netron)"): tokens, field structure, and that every `bottom` names an earlier `top` or
//! input.

use std::collections::HashSet;

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

/// Splits prototxt into tokens, refusing anything Netron's reader would not take.
fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            c if c.is_whitespace() => {}
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => return Err(format!("string {s:?} runs off its line")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('\\' | '"' | 'n' | 'r' | 't' | 'x')) => s.extend(['\\', e]),
                            e => return Err(format!("bad escape {e:?} in {s:?}")),
                        },
                        Some(c) => s.push(c),
                    }
                }
                toks.push(Tok::Str(s));
            }
            '{' | '}' | '[' | ']' | '<' | '>' | ':' | ',' | ';' => toks.push(Tok::Punct(c)),
            c if c.is_ascii_alphanumeric() || "_-+.".contains(c) => {
                let mut w = c.to_string();
                while let Some(c) =
                    chars.next_if(|c| c.is_ascii_alphanumeric() || "_-+.".contains(*c))
                {
                    w.push(c);
                }
                toks.push(Tok::Word(w));
            }
            c => return Err(format!("bare {c:?} outside quotes and comments")),
        }
    }
    Ok(toks)
}

/// A parsed field: `key: scalar`, `key: [list]` or `key { fields }`.
#[derive(Debug)]
enum Value {
    Scalar(Tok),
    List,
    Message(Vec<(String, Value)>),
}

fn parse_fields(
    toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
    nested: bool,
) -> Result<Vec<(String, Value)>, String> {
    let mut fields = Vec::new();
    loop {
        let key = match toks.next() {
            None if !nested => return Ok(fields),
            Some(Tok::Punct('}')) if nested => return Ok(fields),
            Some(Tok::Word(k)) => k,
            t => return Err(format!("expected a field name, got {t:?}")),
        };
        let value = match toks.next() {
            Some(Tok::Punct('{')) => Value::Message(parse_fields(toks, true)?),
            Some(Tok::Punct(':')) => match toks.next() {
                Some(Tok::Punct('[')) => {
                    while toks.next_if(|t| *t != Tok::Punct(']')).is_some() {}
                    toks.next().ok_or("unclosed list")?;
                    Value::List
                }
                Some(t @ (Tok::Word(_) | Tok::Str(_))) => Value::Scalar(t),
                t => return Err(format!("field {key}: bad value {t:?}")),
            },
            t => return Err(format!("field {key}: expected ':' or '{{', got {t:?}")),
        };
        fields.push((key, value));
    }
}

/// Checks the Netron rules; returns the number of layers.
pub fn check_netron_rules(text: &str) -> Result<usize, String> {
    let top = parse_fields(&mut tokenize(text)?.into_iter().peekable(), false)?;
    let mut defined = HashSet::new();
    let mut layers = 0;
    for (key, value) in &top {
        match (key.as_str(), value) {
            ("name", Value::Scalar(Tok::Str(_))) | ("input_shape", Value::Message(_)) => {}
            ("input", Value::Scalar(Tok::Str(s))) => {
                defined.insert(s.clone());
            }
            ("layer", Value::Message(fields)) => {
                layers += 1;
                let mut params = 0;
                let mut tops = Vec::new();
                for (k, v) in fields {
                    match (k.as_str(), v) {
                        ("name" | "type", Value::Scalar(Tok::Str(_))) => {}
                        ("bottom", Value::Scalar(Tok::Str(s))) if !defined.contains(s) => {
                            return Err(format!("bottom {s:?} is no earlier top or input"));
                        }
                        ("bottom", Value::Scalar(Tok::Str(_))) => {}
                        ("top", Value::Scalar(Tok::Str(s))) => tops.push(s.clone()),
                        ("layer_param", Value::Message(_)) => params += 1,
                        _ => return Err(format!("unexpected layer field {k}: {v:?}")),
                    }
                }
                if params != 1 {
                    return Err(format!("{params} layer_param blocks in a layer"));
                }
                for t in tops {
                    if !defined.insert(t.clone()) {
                        return Err(format!("top {t:?} defined twice"));
                    }
                }
            }
            _ => return Err(format!("unexpected top-level field {key}: {value:?}")),
        }
    }
    Ok(layers)
}
