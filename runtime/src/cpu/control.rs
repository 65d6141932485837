//! Loop and If: each body is a plan of its own, prepared with the threads of the plan that holds
//! it, and a step runs it as often as its condition says, in the same run's memory pool.

use super::buffers::Buffers;
use super::plan::CpuPlan;
use super::shape_ops::concat;
use crate::{RuntimeError, Tensor, TensorData};
use temblor_ir::Dim;

#[derive(Debug)]
pub(crate) enum Control {
    Loop {
        body: CpuPlan,
        carried: usize,
    },
    If {
        then: CpuPlan,
        otherwise: Box<CpuPlan>,
    },
}

pub(crate) fn run(
    control: &Control,
    ins: &[Option<&Tensor>],
    buffers: &Buffers,
) -> Result<Vec<Tensor>, RuntimeError> {
    match control {
        Control::Loop { body, carried } => run_loop(body, *carried, ins, buffers),
        Control::If { then, otherwise } => {
            let cond = ins
                .first()
                .copied()
                .flatten()
                .ok_or_else(|| RuntimeError::internal("an If without its condition"))?;
            let taken = if truth(cond, "the If condition")? {
                then
            } else {
                otherwise
            };
            let captured: Vec<&Tensor> = ins[1..]
                .iter()
                .copied()
                .map(required)
                .collect::<Result<_, _>>()?;
            let outs = taken.run_positional(buffers, &captured)?;
            Ok(outs.into_iter().map(|(_, t)| t).collect())
        }
    }
}

fn required(t: Option<&Tensor>) -> Result<&Tensor, RuntimeError> {
    t.ok_or_else(|| RuntimeError::internal("a captured value is not connected"))
}

fn run_loop(
    body: &CpuPlan,
    carried: usize,
    ins: &[Option<&Tensor>],
    buffers: &Buffers,
) -> Result<Vec<Tensor>, RuntimeError> {
    let trips = match ins.first().copied().flatten() {
        Some(t) => Some(scalar_i64(t, "the Loop trip count")?),
        None => None,
    };
    // Without a condition input the body's condition output is ignored: a `for` loop.
    let conditioned = ins.get(1).copied().flatten().is_some();
    // A loop past the limit is refused: a model that claims one is hostile or broken, and the
    // run would not end. A `for` loop's count is known before it starts; a `while` loop (often
    // exported with the trip count i64::MAX) is stopped when it reaches the limit.
    let limits = temblor_ir::limits::Limits::get();
    if let (Some(m), false) = (trips, conditioned) {
        limits.check_loop(m).map_err(RuntimeError::bad_input)?;
    }
    let mut cond = match ins.get(1).copied().flatten() {
        Some(t) => t.clone(),
        None => Tensor {
            shape: vec![],
            data: TensorData::Bool(vec![true]),
        },
    };
    let mut state: Vec<Tensor> = ins
        .get(2..2 + carried)
        .ok_or_else(|| RuntimeError::internal("a Loop with fewer inputs than carried values"))?
        .iter()
        .copied()
        .map(|t| required(t).cloned())
        .collect::<Result<_, _>>()?;
    let captured: Vec<&Tensor> = ins[2 + carried..]
        .iter()
        .copied()
        .map(required)
        .collect::<Result<_, _>>()?;
    let mut scans: Vec<Vec<Tensor>> = Vec::new();
    let mut i: i64 = 0;
    while truth(&cond, "the Loop condition")? && trips.is_none_or(|m| i < m) {
        if i as u64 >= limits.loop_iterations {
            return Err(RuntimeError::bad_input(format!(
                "the loop ran {i} iterations without ending (--max-loop-iterations)"
            )));
        }
        let iteration = Tensor {
            shape: vec![],
            data: TensorData::I64(vec![i]),
        };
        let mut inputs: Vec<&Tensor> = vec![&iteration, &cond];
        inputs.extend(state.iter());
        inputs.extend(captured.iter().copied());
        let mut outs = body
            .run_positional(buffers, &inputs)?
            .into_iter()
            .map(|(_, t)| t);
        let next_cond = outs
            .next()
            .ok_or_else(|| RuntimeError::internal("a Loop body without outputs"))?;
        let next: Vec<Tensor> = outs.by_ref().take(carried).collect();
        let scanned: Vec<Tensor> = outs.collect();
        if scans.is_empty() {
            scans = scanned.iter().map(|_| Vec::new()).collect();
        }
        for (list, t) in scans.iter_mut().zip(scanned) {
            list.push(t);
        }
        if conditioned {
            cond = next_cond;
        }
        state = next;
        i += 1;
    }
    let scan_count = body.output_count() - 1 - carried;
    for k in 0..scan_count {
        let stacked = match scans.get(k) {
            Some(list) if !list.is_empty() => stack(list)?,
            _ => empty_scan(body, 1 + carried + k)?,
        };
        state.push(stacked);
    }
    Ok(state)
}

/// Per-iteration values stacked on a new axis 0; they must agree in shape, as ONNX says.
fn stack(list: &[Tensor]) -> Result<Tensor, RuntimeError> {
    let first = &list[0].shape;
    if let Some(t) = list.iter().find(|t| &t.shape != first) {
        return Err(RuntimeError::bad_input(format!(
            "a scan output changes shape between iterations: {:?} then {:?}",
            first, t.shape
        )));
    }
    let lifted: Vec<Tensor> = list
        .iter()
        .map(|t| {
            let mut shape = vec![1];
            shape.extend(&t.shape);
            Tensor {
                shape,
                data: t.data.clone(),
            }
        })
        .collect();
    let refs: Vec<&Tensor> = lifted.iter().collect();
    concat(&refs, 0)
}

/// A scan output of a loop that ran no iteration: `[0, ...]` of the body's declared type, which
/// must then be static.
fn empty_scan(body: &CpuPlan, output: usize) -> Result<Tensor, RuntimeError> {
    let ty = body
        .output_type(output)
        .ok_or_else(|| RuntimeError::internal("a scan output without a type"))?;
    let mut shape = vec![0];
    for d in ty.shape.dims() {
        match d {
            Dim::Known(n) => shape.push(*n),
            _ => {
                return Err(RuntimeError::unsupported(
                    "a loop that runs no iteration, with a scan output whose shape is known only \
                     at run time",
                ))
            }
        }
    }
    let data = TensorData::from_le_bytes(ty.dtype, &[])
        .ok_or_else(|| RuntimeError::internal(format!("no empty tensor of {}", ty.dtype)))?;
    Ok(Tensor { shape, data })
}

fn scalar_i64(t: &Tensor, what: &str) -> Result<i64, RuntimeError> {
    match (&t.data, t.len()) {
        (TensorData::I64(v), 1) => Ok(v[0]),
        (TensorData::I32(v), 1) => Ok(v[0] as i64),
        _ => Err(RuntimeError::bad_input(format!(
            "{what} is {} {:?}, expected one int64",
            t.dtype(),
            t.shape
        ))),
    }
}

fn truth(t: &Tensor, what: &str) -> Result<bool, RuntimeError> {
    match (&t.data, t.len()) {
        (TensorData::Bool(v), 1) => Ok(v[0]),
        _ => Err(RuntimeError::bad_input(format!(
            "{what} is {} {:?}, expected one bool",
            t.dtype(),
            t.shape
        ))),
    }
}
