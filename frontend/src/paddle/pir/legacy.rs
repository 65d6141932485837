//! Legacy `OpDesc`s and their attributes, as the translation writes them.

use super::json::Attr;
use super::translate::POSITION;
use crate::paddle::proto::{
    op_desc::{Attr as LAttr, Var as LVar},
    AttrType, OpDesc,
};

type R<T = ()> = Result<T, String>;

pub(super) fn number(a: &Attr) -> Option<f64> {
    match a {
        Attr::I32(x) | Attr::I64(x) => Some(*x as f64),
        Attr::F32(x) | Attr::F64(x) => Some(*x),
        Attr::Bool(b) => Some(*b as i64 as f64),
        _ => None,
    }
}

pub(super) fn legacy_op(
    r#type: &str,
    inputs: Vec<(&str, Vec<String>)>,
    outputs: Vec<(&str, Vec<String>)>,
    attrs: Vec<LAttr>,
) -> OpDesc {
    let vars = |list: Vec<(&str, Vec<String>)>| {
        list.into_iter()
            .map(|(p, arguments)| LVar {
                parameter: p.to_string(),
                arguments,
            })
            .collect()
    };
    OpDesc {
        r#type: r#type.to_string(),
        inputs: vars(inputs),
        outputs: vars(outputs),
        attrs,
        is_target: None,
    }
}

pub(super) fn attr_of(name: &str, kind: AttrType) -> LAttr {
    LAttr {
        name: name.to_string(),
        r#type: kind as i32,
        ..Default::default()
    }
}

pub(super) fn position(at: &str) -> LAttr {
    string(POSITION, at)
}

pub(super) fn string(name: &str, s: &str) -> LAttr {
    LAttr {
        s: Some(s.to_string()),
        ..attr_of(name, AttrType::String)
    }
}

pub(super) fn int(name: &str, v: i64) -> LAttr {
    LAttr {
        i: Some(v as i32),
        ..attr_of(name, AttrType::Int)
    }
}

pub(super) fn long(name: &str, v: i64) -> LAttr {
    LAttr {
        l: Some(v),
        ..attr_of(name, AttrType::Long)
    }
}

pub(super) fn boolean(name: &str, v: bool) -> LAttr {
    LAttr {
        b: Some(v),
        ..attr_of(name, AttrType::Boolean)
    }
}

pub(super) fn float64(name: &str, v: f64) -> LAttr {
    LAttr {
        float64: Some(v),
        ..attr_of(name, AttrType::Float64)
    }
}

pub(super) fn longs(name: &str, v: Vec<i64>) -> LAttr {
    LAttr {
        longs: v,
        ..attr_of(name, AttrType::Longs)
    }
}

pub(super) fn longs_named(name: &str, v: &[f64]) -> LAttr {
    longs(name, v.iter().map(|&x| x as i64).collect())
}

pub(super) fn bools(name: &str, v: Vec<bool>) -> LAttr {
    LAttr {
        bools: v,
        ..attr_of(name, AttrType::Booleans)
    }
}

pub(super) fn floats(name: &str, v: &[f64]) -> LAttr {
    LAttr {
        floats: v.iter().map(|&x| x as f32).collect(),
        ..attr_of(name, AttrType::Floats)
    }
}

pub(super) fn float64s(name: &str, v: &[f64]) -> LAttr {
    LAttr {
        float64s: v.to_vec(),
        ..attr_of(name, AttrType::Float64s)
    }
}

pub(super) fn block_attr(name: &str, idx: i32) -> LAttr {
    LAttr {
        block_idx: Some(idx),
        ..attr_of(name, AttrType::Block)
    }
}

/// A PIR attribute as the legacy attribute of the same kind; `None` for a place.
pub(super) fn legacy_attr(name: &str, a: &Attr) -> R<Option<LAttr>> {
    Ok(Some(match a {
        Attr::Bool(v) => boolean(name, *v),
        Attr::I32(v) => int(name, *v),
        Attr::DType(code) => int(name, *code as i64),
        Attr::I64(v) => long(name, *v),
        Attr::F32(v) => LAttr {
            f: Some(*v as f32),
            ..attr_of(name, AttrType::Float)
        },
        Attr::F64(v) => float64(name, *v),
        Attr::Str(s) => string(name, s),
        Attr::IntArray(v) => longs(name, v.clone()),
        Attr::Place => return Ok(None),
        // An empty list reads as integers or as numbers, whichever the mapping asks for.
        Attr::Array(list) if list.is_empty() => attr_of(name, AttrType::Ints),
        Attr::Array(list) => {
            if list.iter().all(|e| matches!(e, Attr::Bool(_))) {
                bools(
                    name,
                    list.iter().map(|e| matches!(e, Attr::Bool(true))).collect(),
                )
            } else if list
                .iter()
                .all(|e| matches!(e, Attr::I32(_) | Attr::I64(_)))
            {
                longs(
                    name,
                    list.iter().filter_map(number).map(|x| x as i64).collect(),
                )
            } else if list.iter().all(|e| matches!(e, Attr::F32(_))) {
                floats(name, &list.iter().filter_map(number).collect::<Vec<_>>())
            } else if list
                .iter()
                .all(|e| matches!(e, Attr::F32(_) | Attr::F64(_)))
            {
                float64s(name, &list.iter().filter_map(number).collect::<Vec<_>>())
            } else if list.iter().all(|e| matches!(e, Attr::Str(_))) {
                LAttr {
                    strings: list
                        .iter()
                        .filter_map(|e| match e {
                            Attr::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                    ..attr_of(name, AttrType::Strings)
                }
            } else {
                return Err(format!("attribute '{name}' mixes kinds: {list:?}"));
            }
        }
    }))
}
