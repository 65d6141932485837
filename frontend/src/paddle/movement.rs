//! Shape and indexing ops: reshape, transpose, concat, split, slice, squeeze, unsqueeze,
//! flatten, stack, expand, gather, meshgrid and broadcast (tensor creation is in creation.rs).
//!
//! Paddle gives many integer operands (shapes, slice bounds) either as an attribute, as one
//! tensor or as a list of one-element tensors; [`ints`] resolves them to one int64 operand,
//! folded to a constant when every part is one, so shape inference keeps exact dims. Paddle 2.5+
//! programs hold 0-D tensors where older ones held `[1]`; mappings that can produce either follow
//! the rank the program declares for the output.

use super::args;
use super::ctx::{Ctx, Family, Res};
use temblor_ir::{BinaryOp, DType, Op, Scalar, SplitSizes, UnaryOp, ValueRef, Weight};

pub(super) const FAMILY: Family = Family {
    ops: &[
        "reshape2",
        "transpose2",
        "concat",
        "split",
        "slice",
        "strided_slice",
        "squeeze2",
        "unsqueeze2",
        "flatten_contiguous_range",
        "stack",
        "expand_v2",
        "gather",
        "gather_nd",
        "meshgrid",
        "broadcast_tensors",
    ],
    map,
};

fn map(c: &mut Ctx) -> Res {
    match c.op_type() {
        "reshape2" => reshape(c),
        "transpose2" => {
            let x = c.input("X")?;
            let perm = c.attrs.ints("axis")?;
            let rank = c.declared_rank("X", false)?;
            let perm = perm
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect::<Result<_, _>>()?;
            let y = c.add(Op::Transpose { perm }, &[x]);
            c.bind("Out", y)
        }
        "concat" => {
            let xs = c.inputs("X")?;
            let axis = match const_input(c, "AxisTensor")? {
                Some(v) => single_value(&v, "AxisTensor")?,
                None => c.attrs.int_or("axis", 0)?,
            };
            let y = c.add(Op::Concat { axis }, &xs);
            c.bind("Out", y)
        }
        "split" => split(c),
        "slice" | "strided_slice" => slice(c),
        "squeeze2" => squeeze(c),
        "unsqueeze2" => unsqueeze(c),
        "flatten_contiguous_range" => flatten(c),
        "stack" => {
            let xs = c.inputs("X")?;
            let rank = c.declared_rank("X", false)?;
            let axis = norm_axis(c.attrs.int_or("axis", 0)?, rank + 1)?;
            let axes = c.const_i64(vec![1], &[axis as i64]);
            let parts: Vec<ValueRef> = xs
                .iter()
                .map(|&x| c.add(Op::Unsqueeze, &[x, axes]))
                .collect();
            let y = c.add(Op::Concat { axis: axis as i64 }, &parts);
            c.bind("Y", y)
        }
        "expand_v2" => expand(c),
        "gather" => gather(c),
        "gather_nd" => {
            let x = c.input("X")?;
            let index = c.input("Index")?;
            let y = c.add(Op::GatherNd { batch_dims: 0 }, &[x, index]);
            c.bind("Out", y)
        }
        "meshgrid" => meshgrid(c),
        "broadcast_tensors" => broadcast_tensors(c),
        other => Err(format!("{other} is listed but not mapped").into()),
    }
}

/// The extents of `x` on axes `start..end` (`None`: through the last), as int64.
pub(super) fn shape_of(c: &mut Ctx, x: ValueRef, start: i64, end: Option<i64>) -> ValueRef {
    c.add(Op::Shape { start, end }, &[x])
}

/// `x` reshaped to constant `dims` (0 copies an extent, -1 infers one).
pub(super) fn reshape_to(c: &mut Ctx, x: ValueRef, dims: &[i64]) -> ValueRef {
    let shape = c.const_i64(vec![dims.len()], dims);
    c.add(Op::Reshape { allowzero: false }, &[x, shape])
}

/// A tensor of the computed `shape` holding `value`.
pub(super) fn fill(c: &mut Ctx, shape: ValueRef, dtype: DType, value: f64) -> ValueRef {
    c.add(
        Op::ConstantOfShape {
            value: Scalar { dtype, value },
        },
        &[shape],
    )
}

/// An axis counted from the end when negative, checked against `rank`.
pub(super) fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {axis} is out of range for rank {rank}"))
}

/// The program's declared extents of a variable (`None` where it leaves one open).
pub(super) fn declared_dims(c: &Ctx, param: &str, output: bool) -> Res<Vec<Option<usize>>> {
    let names = args(c.op, param, output);
    let var = names
        .first()
        .ok_or_else(|| format!("'{param}' is missing"))?;
    let ty = c.imp.declared_type(var)?;
    Ok(ty.shape.dims().iter().map(|d| d.known()).collect())
}

/// A constant node of this op holding `w`.
pub(super) fn constant(c: &mut Ctx, w: Weight) -> ValueRef {
    let var =
        c.op.outputs
            .iter()
            .flat_map(|v| v.arguments.first())
            .next()
            .cloned();
    let name = var.unwrap_or_else(|| c.op_type().to_string());
    c.imp.constant(&name, w, c.op_type())
}

/// `v` given the rank the program declares for the output `param` when the IR's rule gave
/// `rank`: a Paddle before 2.5 keeps `[1]` where the IR has a 0-D result.
pub(super) fn declared_rank_of(
    c: &mut Ctx,
    v: ValueRef,
    rank: usize,
    param: &str,
) -> Res<ValueRef> {
    if rank == 0 && c.declared_rank(param, true)? == 1 {
        return Ok(reshape_to(c, v, &[1]));
    }
    Ok(v)
}

/// An integer operand: values known at import, or an int64 1-D value computed at run time.
pub(super) enum Ints {
    Const(Vec<i64>),
    Dyn(ValueRef),
}

impl Ints {
    fn value(self, c: &mut Ctx) -> ValueRef {
        match self {
            Ints::Const(v) => c.const_i64(vec![v.len()], &v),
            Ints::Dyn(v) => v,
        }
    }
}

/// The integer values of a constant.
fn const_ints(c: &Ctx, v: ValueRef) -> Option<Vec<i64>> {
    c.weight(v).and_then(|w| w.to_i64())
}

fn single_value(v: &[i64], what: &str) -> Result<i64, String> {
    match v {
        [one] => Ok(*one),
        _ => Err(format!("{what} holds {} values, expected 1", v.len())),
    }
}

/// The values of a constant input parameter; an error when it is computed at run time.
fn const_input(c: &mut Ctx, param: &str) -> Res<Option<Vec<i64>>> {
    let Some(v) = c.opt_input(param)? else {
        return Ok(None);
    };
    Ok(Some(const_ints(c, v).ok_or_else(|| {
        format!("input '{param}' is computed at run time; only a constant is supported")
    })?))
}

/// Variable `var` as a 1-D int64 value: cast when declared otherwise, 0-D made `[1]`.
fn as_i64_list(c: &mut Ctx, var: &str, v: ValueRef) -> Res<ValueRef> {
    let ty = c.imp.declared_type(var)?;
    let mut v = v;
    if ty.dtype != DType::I64 {
        v = c.add(Op::Cast { to: DType::I64 }, &[v]);
    }
    if ty.shape.rank() == 0 {
        let axes = c.const_i64(vec![1], &[0]);
        v = c.add(Op::Unsqueeze, &[v, axes]);
    }
    Ok(v)
}

/// One tensor of a list parameter.
enum Part {
    Known(Vec<i64>),
    /// An int64 1-D value computed at run time, and whether it holds a single element.
    Computed(ValueRef, bool),
}

fn list_parts(c: &mut Ctx, param: &str) -> Res<Vec<Part>> {
    let names = args(c.op, param, false);
    let mut parts = Vec::with_capacity(names.len());
    for var in &names {
        let v = c.imp.value(var)?;
        match const_ints(c, v) {
            Some(vals) => parts.push(Part::Known(vals)),
            None => {
                let dims = c.imp.declared_type(var)?.shape;
                let single = dims.rank() == 0 || dims.known().as_deref() == Some(&[1]);
                let v = as_i64_list(c, var, v)?;
                parts.push(Part::Computed(v, single));
            }
        }
    }
    Ok(parts)
}

/// The parts joined in order: folded when all are known, else one Concat.
fn join(c: &mut Ctx, parts: Vec<Part>) -> Ints {
    if parts.iter().all(|p| matches!(p, Part::Known(_))) {
        let all = parts.into_iter().flat_map(|p| match p {
            Part::Known(vals) => vals,
            Part::Computed(..) => Vec::new(),
        });
        return Ints::Const(all.collect());
    }
    let values: Vec<ValueRef> = parts
        .into_iter()
        .map(|p| match p {
            Part::Known(vals) => c.const_i64(vec![vals.len()], &vals),
            Part::Computed(v, _) => v,
        })
        .collect();
    Ints::Dyn(c.add(Op::Concat { axis: 0 }, &values))
}

/// An integer operand from the first of: a tensor list, a tensor, an attribute.
pub(super) fn ints(c: &mut Ctx, list: Option<&str>, tensor: &str, attr: &str) -> Res<Option<Ints>> {
    if let Some(list) = list.filter(|l| c.has_input(l)) {
        let parts = list_parts(c, list)?;
        return Ok(Some(join(c, parts)));
    }
    if let Some(v) = c.opt_input(tensor)? {
        if let Some(vals) = const_ints(c, v) {
            return Ok(Some(Ints::Const(vals)));
        }
        let var = args(c.op, tensor, false).remove(0);
        return Ok(Some(Ints::Dyn(as_i64_list(c, &var, v)?)));
    }
    Ok(if c.attrs.has(attr) {
        Some(Ints::Const(c.attrs.ints(attr)?))
    } else {
        None
    })
}

fn reshape(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let shape = if c.has_input("ShapeTensor") {
        let parts = list_parts(c, "ShapeTensor")?;
        // One computed entry among constants is what the others leave, so it can be inferred
        // (-1) and the target stays a constant shape inference can read.
        let mut target = Vec::with_capacity(parts.len());
        let (mut computed, mut foldable) = (0, true);
        for p in &parts {
            match p {
                Part::Known(vals) if !vals.contains(&-1) => target.extend(vals),
                Part::Computed(_, true) => {
                    computed += 1;
                    target.push(-1);
                }
                _ => foldable = false,
            }
        }
        if foldable && computed == 1 {
            Ints::Const(target)
        } else {
            join(c, parts)
        }
    } else {
        ints(c, None, "Shape", "shape")?.ok_or("neither a shape attribute nor a Shape input")?
    };
    let shape = shape.value(c);
    let y = c.add(Op::Reshape { allowzero: false }, &[x, shape]);
    c.bind("Out", y)
}

fn split(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    if c.has_input("SectionsTensorList") {
        return Err("split with tensor sections is not supported".into());
    }
    let axis = match const_input(c, "AxisTensor")? {
        Some(v) => single_value(&v, "AxisTensor")?,
        None => c.attrs.int_or("axis", 0)?,
    };
    let num = c.attrs.int_or("num", 0)?;
    let n = c.output_count("Out");
    let sizes = if num > 0 {
        SplitSizes::Equal(num as usize)
    } else {
        let sections = c.attrs.ints("sections")?;
        let dims = declared_dims(c, "X", false)?;
        let extent = dims[norm_axis(axis, dims.len())?];
        match resolve_sections(&sections, extent)? {
            Some(sizes) => SplitSizes::Explicit(sizes),
            None => return split_by_slices(c, x, axis, &sections),
        }
    };
    if sizes.count() != n {
        return Err(format!("split makes {} parts but writes {n} outputs", sizes.count()).into());
    }
    let id = c.node(Op::Split { axis, sizes }, &[Some(x)], n);
    let outs: Vec<ValueRef> = (0..n).map(|k| ValueRef::new(id, k)).collect();
    c.bind_all("Out", &outs)
}

/// Sections with their one `-1` resolved from the axis extent; `None` when that needs an
/// extent the program leaves open.
fn resolve_sections(sections: &[i64], extent: Option<usize>) -> Result<Option<Vec<usize>>, String> {
    let fixed: i64 = sections.iter().filter(|&&s| s >= 0).sum();
    let mut out = Vec::with_capacity(sections.len());
    for &s in sections {
        out.push(match s {
            -1 => match extent {
                Some(e) => usize::try_from(e as i64 - fixed)
                    .map_err(|_| format!("sections {sections:?} exceed the extent {e}"))?,
                None => return Ok(None),
            },
            s => usize::try_from(s).map_err(|_| format!("sections {sections:?} hold {s}"))?,
        });
    }
    Ok(Some(out))
}

/// A split whose `-1` section takes what an open extent leaves: each part is a slice, those
/// after the open one counted from the end.
fn split_by_slices(c: &mut Ctx, x: ValueRef, axis: i64, sections: &[i64]) -> Res {
    let open = sections
        .iter()
        .position(|&s| s == -1)
        .unwrap_or(sections.len());
    let mut outs = Vec::with_capacity(sections.len());
    let axes = c.const_i64(vec![1], &[axis]);
    for k in 0..sections.len() {
        let from_start = |i: usize| sections[..i].iter().sum::<i64>();
        let from_end = |i: usize| -sections[i..].iter().sum::<i64>();
        let start = if k <= open {
            from_start(k)
        } else {
            from_end(k)
        };
        let end = match k {
            k if k + 1 == sections.len() => i64::MAX,
            k if k < open => from_start(k + 1),
            k => from_end(k + 1),
        };
        let starts = c.const_i64(vec![1], &[start]);
        let ends = c.const_i64(vec![1], &[end]);
        outs.push(c.add(Op::Slice, &[x, starts, ends, axes]));
    }
    c.bind_all("Out", &outs)
}

fn slice(c: &mut Ctx) -> Res {
    let x = c.input("Input")?;
    let rank = c.declared_rank("Input", false)?;
    let axes = c.attrs.ints("axes")?;
    let strided = c.op_type() == "strided_slice";
    let starts = ints(c, Some("StartsTensorList"), "StartsTensor", "starts")?.ok_or("no starts")?;
    let mut ends = ints(c, Some("EndsTensorList"), "EndsTensor", "ends")?.ok_or("no ends")?;
    let steps = match strided {
        true => ints(c, Some("StridesTensorList"), "StridesTensor", "strides")?,
        false => None,
    };
    // strided_slice reads an end of -1 with a negative stride as "through index 0", which
    // ONNX bounds spell as any end below -extent.
    if let (Ints::Const(e), Some(Ints::Const(s))) = (&mut ends, &steps) {
        for (e, s) in e.iter_mut().zip(s) {
            if *e == -1 && *s < 0 {
                *e = i64::MIN;
            }
        }
    }
    let mut ins = vec![
        x,
        starts.value(c),
        ends.value(c),
        c.const_i64(vec![axes.len()], &axes),
    ];
    if let Some(steps) = steps {
        ins.push(steps.value(c));
    }
    let mut y = c.add(Op::Slice, &ins);
    let decrease = c.attrs.ints_or("decrease_axis", &[])?;
    let keeps_one = decrease.len() == rank && c.declared_rank("Out", true)? == 1;
    if !decrease.is_empty() && !keeps_one {
        let axes = c.const_i64(vec![decrease.len()], &decrease);
        y = c.add(Op::Squeeze, &[y, axes]);
    }
    c.bind("Out", y)
}

/// Paddle skips listed axes whose extent is not 1, and without axes squeezes every extent-1
/// axis; both are decided on the declared shape where it is known.
fn squeeze(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let dims = declared_dims(c, "X", false)?;
    let listed = c.attrs.ints_or("axes", &[])?;
    let axes: Vec<i64> = if listed.is_empty() {
        if dims.contains(&None) {
            let y = c.add(Op::Squeeze, &[x]);
            return c.bind("Out", y);
        }
        (0..dims.len())
            .filter(|&a| dims[a] == Some(1))
            .map(|a| a as i64)
            .collect()
    } else {
        let mut axes = Vec::new();
        for &a in &listed {
            let a = norm_axis(a, dims.len())?;
            if dims[a].is_none_or(|d| d == 1) && !axes.contains(&(a as i64)) {
                axes.push(a as i64);
            }
        }
        axes
    };
    if axes.is_empty() {
        return c.bind("Out", x);
    }
    let axes = c.const_i64(vec![axes.len()], &axes);
    let y = c.add(Op::Squeeze, &[x, axes]);
    c.bind("Out", y)
}

/// Paddle inserts the axes one after another, each counted in the rank reached so far; the IR
/// counts all of them in the result's rank, so constant axes are converted.
fn unsqueeze(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let axes = ints(c, Some("AxesTensorList"), "AxesTensor", "axes")?.ok_or("no axes")?;
    let axes = match axes {
        Ints::Const(list) => {
            let mut fresh: Vec<bool> = vec![false; c.declared_rank("X", false)?];
            for &a in &list {
                let at = if a < 0 { a + fresh.len() as i64 + 1 } else { a };
                let at = usize::try_from(at)
                    .ok()
                    .filter(|&p| p <= fresh.len())
                    .ok_or_else(|| format!("axes {list:?} do not fit the input's rank"))?;
                fresh.insert(at, true);
            }
            let placed: Vec<i64> = (0..fresh.len())
                .filter(|&i| fresh[i])
                .map(|i| i as i64)
                .collect();
            c.const_i64(vec![placed.len()], &placed)
        }
        // Computed axes are taken as the IR reads them (right for ascending, non-negative ones).
        dynamic => dynamic.value(c),
    };
    let y = c.add(Op::Unsqueeze, &[x, axes]);
    c.bind("Out", y)
}

/// Axes start..=stop merged into one: a Reshape whose other entries copy (leading) or restate
/// (trailing) the input's extents.
fn flatten(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let dims = declared_dims(c, "X", false)?;
    let rank = dims.len();
    if rank == 0 {
        let y = reshape_to(c, x, &[1]);
        return c.bind("Out", y);
    }
    let start = norm_axis(c.attrs.int_or("start_axis", 1)?, rank)?;
    let stop = norm_axis(c.attrs.int_or("stop_axis", -1)?, rank)?;
    if stop < start {
        return Err(format!("stop_axis {stop} comes before start_axis {start}").into());
    }
    let mut lead = vec![0i64; start];
    lead.push(-1);
    let trailing: Option<Vec<i64>> = dims[stop + 1..]
        .iter()
        .map(|d| d.map(|d| d as i64))
        .collect();
    let shape = match trailing {
        Some(t) => {
            lead.extend(t);
            c.const_i64(vec![lead.len()], &lead)
        }
        None => {
            let head = c.const_i64(vec![lead.len()], &lead);
            let tail = shape_of(c, x, stop as i64 + 1, None);
            c.add(Op::Concat { axis: 0 }, &[head, tail])
        }
    };
    let y = c.add(Op::Reshape { allowzero: false }, &[x, shape]);
    c.bind("Out", y)
}

/// Paddle's -1 keeps the input's extent, which ONNX Expand spells 1.
fn expand(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let shape =
        ints(c, Some("expand_shapes_tensor"), "Shape", "shape")?.ok_or("no target shape")?;
    let shape = match shape {
        Ints::Const(v) => {
            let v: Vec<i64> = v.iter().map(|&d| if d == -1 { 1 } else { d }).collect();
            c.const_i64(vec![v.len()], &v)
        }
        Ints::Dyn(v) => c.add(Op::Unary(UnaryOp::Abs), &[v]),
    };
    let y = c.add(Op::Expand, &[x, shape]);
    c.bind("Out", y)
}

/// Paddle takes a `[N, 1]` index as `[N]`; a 0-D index drops the axis as ONNX's does.
fn gather(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let mut index = c.input("Index")?;
    let axis = match const_input(c, "Axis")? {
        Some(v) => single_value(&v, "Axis")?,
        None => c.attrs.int_or("axis", 0)?,
    };
    if c.declared_rank("Index", false)? > 1 {
        index = reshape_to(c, index, &[-1]);
    }
    let y = c.add(Op::Gather { axis }, &[x, index]);
    c.bind("Out", y)
}

/// 'ij' indexing: input k laid along axis k, then expanded to every input's length.
fn meshgrid(c: &mut Ctx) -> Res {
    let xs = c.inputs("X")?;
    let n = xs.len();
    let mut lines = Vec::with_capacity(n);
    let mut extents = Vec::with_capacity(n);
    for (k, &x) in xs.iter().enumerate() {
        let shape: Vec<i64> = (0..n).map(|i| if i == k { -1 } else { 1 }).collect();
        let line = reshape_to(c, x, &shape);
        extents.push(shape_of(c, line, k as i64, Some(k as i64 + 1)));
        lines.push(line);
    }
    let full = c.add(Op::Concat { axis: 0 }, &extents);
    let outs: Vec<ValueRef> = lines
        .iter()
        .map(|&l| c.add(Op::Expand, &[l, full]))
        .collect();
    c.bind_all("Out", &outs)
}

/// The common shape comes from expanding the first input by every other one (Expand
/// broadcasts both ways); each input is then expanded to it.
fn broadcast_tensors(c: &mut Ctx) -> Res {
    let xs = c.inputs("X")?;
    let Some((&first, rest)) = xs.split_first() else {
        return Err("broadcast_tensors has no inputs".into());
    };
    let mut all = first;
    for &x in rest {
        let s = shape_of(c, x, 0, None);
        all = c.add(Op::Expand, &[all, s]);
    }
    let common = shape_of(c, all, 0, None);
    let mut outs = vec![all];
    for &x in rest {
        outs.push(c.add(Op::Expand, &[x, common]));
    }
    c.bind_all("Out", &outs)
}

/// Shared with linalg: `x` broadcast-multiplied by a scalar of its dtype.
pub(super) fn times(c: &mut Ctx, x: ValueRef, dtype: DType, k: f64) -> Res<ValueRef> {
    let s = c.scalar(dtype, k)?;
    Ok(c.add(Op::Binary(BinaryOp::Mul), &[x, s]))
}
