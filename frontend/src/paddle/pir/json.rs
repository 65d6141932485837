//! `inference.json` read into typed operations. The file is one JSON object (FORMAT.md in the
//! PIR kit describes it); this reader checks every key it uses and says where a malformed file
//! goes wrong (`block_0, op 12 (pd_op.conv2d): ...`), so nothing after it looks at raw JSON.

use serde_json::Value as Json;

/// Integer data types of Paddle's legacy `VarType`, which PIR element types and dtype
/// attributes are translated into (the importer reads programs in those codes).
pub(super) type TypeCode = i32;

pub(super) struct Program {
    pub version: i64,
    pub body: Block,
}

pub(super) struct Block {
    /// `block_0`, `block_1`, ...: the file's own label, for messages.
    pub label: String,
    pub args: Vec<Value>,
    pub ops: Vec<Operation>,
}

pub(super) struct Operation {
    /// Dialect and op, `pd_op.conv2d`; builtin parameters are `builtin.parameter`.
    pub name: String,
    /// Operand value ids in declared order; 0 is an absent optional operand.
    pub operands: Vec<i64>,
    pub results: Vec<Value>,
    pub attrs: Vec<(String, Attr)>,
    pub regions: Vec<Block>,
}

impl Operation {
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

pub(super) struct Value {
    pub id: i64,
    pub ty: Type,
}

#[derive(Clone)]
pub(super) enum Type {
    Tensor(Tensor),
    /// Many values as one (`builtin.combine`'s result, a variadic op's results).
    Vec(Vec<Type>),
    TensorArray(Tensor),
    /// An optional result the op does not produce.
    Null,
}

#[derive(Clone)]
pub(super) struct Tensor {
    pub dtype: TypeCode,
    /// -1 is a dimension known only at run time.
    pub dims: Vec<i64>,
}

#[derive(Clone, Debug)]
pub(super) enum Attr {
    Bool(bool),
    I32(i64),
    I64(i64),
    F32(f64),
    F64(f64),
    Str(String),
    Array(Vec<Attr>),
    IntArray(Vec<i64>),
    /// A data type as Paddle's legacy code; -1 for `Undefined`.
    DType(TypeCode),
    Place,
}

type R<T> = Result<T, String>;

pub(super) fn parse(bytes: &[u8]) -> R<Program> {
    let doc: Json = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a PIR program: the JSON is malformed ({e})"))?;
    let base = doc
        .get("base_code")
        .ok_or("not a PIR program: no \"base_code\" object")?;
    if base.get("magic").and_then(Json::as_str) != Some("pir") {
        return Err("not a PIR program: base_code.magic is not \"pir\"".into());
    }
    let version = base
        .get("version")
        .and_then(Json::as_i64)
        .ok_or("base_code.version is not an integer")?;
    let regions = doc
        .get("program")
        .and_then(|p| p.get("regions"))
        .and_then(Json::as_array)
        .ok_or("no program.regions list")?;
    let [region] = regions.as_slice() else {
        return Err(format!(
            "program.regions holds {} regions, expected 1",
            regions.len()
        ));
    };
    let mut blocks = region_blocks(region, "region_0")?;
    if blocks.len() != 1 {
        return Err(format!(
            "the program's region holds {} blocks, expected 1",
            blocks.len()
        ));
    }
    Ok(Program {
        version,
        body: blocks.remove(0),
    })
}

fn region_blocks(region: &Json, at: &str) -> R<Vec<Block>> {
    let blocks = region
        .get("blocks")
        .and_then(Json::as_array)
        .ok_or_else(|| format!("{at}: no blocks list"))?;
    blocks.iter().map(block).collect()
}

fn block(b: &Json) -> R<Block> {
    let label = b
        .get("#")
        .and_then(Json::as_str)
        .unwrap_or("block")
        .to_string();
    let list = |key: &str| {
        b.get(key)
            .and_then(Json::as_array)
            .ok_or_else(|| format!("{label}: no \"{key}\" list"))
    };
    let args = list("args")?
        .iter()
        .enumerate()
        .map(|(k, a)| {
            let id = a
                .get("#")
                .and_then(Json::as_i64)
                .ok_or_else(|| format!("{label}: argument {k} has no integer id"))?;
            let ty = ty(a.get("TT").unwrap_or(&Json::Null))
                .map_err(|e| format!("{label}: argument {k}: {e}"))?;
            Ok(Value { id, ty })
        })
        .collect::<R<Vec<_>>>()?;
    let ops = list("ops")?
        .iter()
        .enumerate()
        .map(|(k, o)| {
            operation(o).map_err(|e| {
                let name = o.get("#").and_then(Json::as_str).unwrap_or("?");
                format!("{label}, op {k} ({}): {e}", display_name(name))
            })
        })
        .collect::<R<Vec<_>>>()?;
    Ok(Block { label, args, ops })
}

/// `1.conv2d` as `pd_op.conv2d` (FORMAT.md section 3: dialect ids).
fn display_name(raw: &str) -> String {
    if raw == "p" {
        return "builtin.parameter".into();
    }
    match raw.split_once('.') {
        Some((id, op)) => {
            let dialect = match id {
                "0" => "builtin",
                "1" => "pd_op",
                "2" => "cf",
                "3" => "custom_op",
                "4" => "pd_dist",
                other => other,
            };
            format!("{dialect}.{op}")
        }
        None => raw.to_string(),
    }
}

fn operation(o: &Json) -> R<Operation> {
    let raw = o
        .get("#")
        .and_then(Json::as_str)
        .ok_or("no op name (\"#\")")?;
    if raw == "p" {
        return parameter(o);
    }
    let name = display_name(raw);
    let operands = o
        .get("I")
        .and_then(Json::as_array)
        .ok_or("no operand list (\"I\")")?
        .iter()
        .enumerate()
        .map(|(k, v)| {
            v.get("%")
                .and_then(Json::as_i64)
                .ok_or_else(|| format!("operand {k} has no value id"))
        })
        .collect::<R<Vec<_>>>()?;
    let results = o
        .get("O")
        .and_then(Json::as_array)
        .ok_or("no result list (\"O\")")?
        .iter()
        .enumerate()
        .map(|(k, v)| value(v).map_err(|e| format!("result {k}: {e}")))
        .collect::<R<Vec<_>>>()?;
    let attrs = match o.get("A") {
        None => Vec::new(),
        Some(list) => list
            .as_array()
            .ok_or("the attributes (\"A\") are not a list")?
            .iter()
            .map(|a| {
                let n = a
                    .get("N")
                    .and_then(Json::as_str)
                    .ok_or("an attribute has no name")?;
                let v = attr(a.get("AT").unwrap_or(&Json::Null))
                    .map_err(|e| format!("attribute '{n}': {e}"))?;
                Ok((n.to_string(), v))
            })
            .collect::<R<Vec<_>>>()?,
    };
    let regions = match o.get("regions").and_then(Json::as_array) {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(k, r)| {
                let mut blocks = region_blocks(r, &format!("region {k}"))?;
                match blocks.len() {
                    1 => Ok(blocks.remove(0)),
                    n => Err(format!("region {k} holds {n} blocks, expected 1")),
                }
            })
            .collect::<R<Vec<_>>>()?,
    };
    Ok(Operation {
        name,
        operands,
        results,
        attrs,
        regions,
    })
}

/// `{"#": "p", "A": [is_distributed, is_parameter, need_clip, name], "O": {value}}`.
fn parameter(o: &Json) -> R<Operation> {
    let name = o
        .get("A")
        .and_then(Json::as_array)
        .and_then(|a| a.get(3))
        .and_then(Json::as_str)
        .ok_or("a parameter without a name (A[3])")?;
    let result = value(o.get("O").ok_or("a parameter without a value (\"O\")")?)?;
    Ok(Operation {
        name: "builtin.parameter".into(),
        operands: Vec::new(),
        results: vec![result],
        attrs: vec![("parameter_name".into(), Attr::Str(name.to_string()))],
        regions: Vec::new(),
    })
}

fn value(v: &Json) -> R<Value> {
    let id = v
        .get("%")
        .and_then(Json::as_i64)
        .ok_or("no value id (\"%\")")?;
    Ok(Value {
        id,
        ty: ty(v.get("TT").unwrap_or(&Json::Null))?,
    })
}

fn ty(t: &Json) -> R<Type> {
    let kind = t
        .get("#")
        .and_then(Json::as_str)
        .ok_or("a type without a kind")?;
    let data = t.get("D");
    Ok(match kind {
        "NULL" => Type::Null,
        "0.t_dtensor" => Type::Tensor(tensor(data)?),
        "1.t_dense_tensor_array" => Type::TensorArray(tensor(data)?),
        "0.t_vec" => Type::Vec(
            data.and_then(Json::as_array)
                .ok_or("a vec type without element types")?
                .iter()
                .map(ty)
                .collect::<R<Vec<_>>>()?,
        ),
        other => return Err(format!("type '{other}' is not supported")),
    })
}

/// `[element type, dims, layout, lod, offset]`.
fn tensor(d: Option<&Json>) -> R<Tensor> {
    let d = d
        .and_then(Json::as_array)
        .ok_or("a tensor type without [dtype, dims, ...]")?;
    let elem = d
        .first()
        .and_then(|e| e.get("#"))
        .and_then(Json::as_str)
        .ok_or("a tensor type without an element type")?;
    let dims = d
        .get(1)
        .and_then(Json::as_array)
        .ok_or("a tensor type without dims")?
        .iter()
        .map(|x| {
            x.as_i64()
                .filter(|&x| x >= -1)
                .ok_or_else(|| format!("dimension {x} is not an integer >= -1"))
        })
        .collect::<R<Vec<_>>>()?;
    Ok(Tensor {
        dtype: element_type(elem)?,
        dims,
    })
}

fn element_type(name: &str) -> R<TypeCode> {
    Ok(match name {
        "0.t_bool" => 0,
        "0.t_i16" => 1,
        "0.t_i32" => 2,
        "0.t_i64" => 3,
        "0.t_f16" => 4,
        "0.t_f32" => 5,
        "0.t_f64" => 6,
        "0.t_ui8" => 20,
        "0.t_i8" => 21,
        "0.t_bf16" => 22,
        "0.t_c64" => 23,
        "0.t_c128" => 24,
        other => return Err(format!("element type '{other}' is not supported")),
    })
}

/// A dtype attribute's name as the legacy code.
fn dtype_code(name: &str) -> R<TypeCode> {
    Ok(match name {
        "bool" => 0,
        "int16" => 1,
        "int32" => 2,
        "int64" => 3,
        "float16" => 4,
        "float32" => 5,
        "float64" => 6,
        "uint8" => 20,
        "int8" => 21,
        "bfloat16" => 22,
        "complex64" => 23,
        "complex128" => 24,
        n if n.starts_with("Undefined") => -1,
        other => return Err(format!("dtype '{other}' is not known")),
    })
}

fn attr(a: &Json) -> R<Attr> {
    let kind = a
        .get("#")
        .and_then(Json::as_str)
        .ok_or("no attribute kind")?;
    let d = a.get("D").unwrap_or(&Json::Null);
    let int = || {
        d.as_i64()
            .ok_or_else(|| format!("{kind}: {d} is not an integer"))
    };
    // nlohmann-json writes a non-finite float as null.
    let float = || match d {
        Json::Null => Ok(f64::NAN),
        _ => d
            .as_f64()
            .ok_or_else(|| format!("{kind}: {d} is not a number")),
    };
    Ok(match kind {
        "0.a_bool" => Attr::Bool(d.as_bool().ok_or("0.a_bool: not a boolean")?),
        "0.a_i32" => Attr::I32(int()?),
        "0.a_i64" => Attr::I64(int()?),
        "0.a_f32" => Attr::F32(float()?),
        "0.a_f64" => Attr::F64(float()?),
        "0.a_str" => Attr::Str(d.as_str().ok_or("0.a_str: not a string")?.to_string()),
        "0.a_array" => Attr::Array(
            d.as_array()
                .ok_or("0.a_array: not a list")?
                .iter()
                .map(attr)
                .collect::<R<Vec<_>>>()?,
        ),
        "1.a_intarray" => Attr::IntArray(
            d.as_array()
                .ok_or("1.a_intarray: not a list")?
                .iter()
                .map(|x| {
                    x.as_i64()
                        .ok_or("1.a_intarray: an element is not an integer")
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        "1.a_dtype" => Attr::DType(dtype_code(d.as_str().ok_or("1.a_dtype: not a string")?)?),
        "1.a_place" => Attr::Place,
        other => return Err(format!("attribute kind '{other}' is not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_file_names_the_json_error() {
        let text =
            br##"{"base_code":{"magic":"pir","trainable":true,"version":4},"program":{"regi"##;
        let e = parse(text).err().unwrap();
        assert!(e.contains("malformed") && e.contains("EOF"), "{e}");
    }

    #[test]
    fn an_op_with_a_bad_operand_is_named_by_block_and_position() {
        let text = br##"{"base_code":{"magic":"pir","version":4},"program":{"regions":[{"#":"region_0","blocks":[{"#":"block_0","args":[],"ops":[
            {"#":"1.relu","A":[],"I":[{"x":1}],"O":[]}]}]}]}}"##;
        let e = parse(text).err().unwrap();
        assert_eq!(e, "block_0, op 0 (pd_op.relu): operand 0 has no value id");
    }
}
