//! Scan (https://onnx.ai/onnx/operators/onnx__Scan.html), unrolled when its length is known at
//! import: each pass Gathers one element of each scan input (from the end for a reverse
//! direction) and the per-pass scan outputs are stacked (in reverse for a reverse direction);
//! a length known only at run time makes it a Loop (bodies.rs). Opset 8's batch axis is
//! scanned image by image.

use super::{required_inputs, Body, Site, MAX_TRIPS};
use crate::onnx::attrs::Attrs;
use crate::onnx::proto::NodeProto;
use crate::onnx::Importer;
use std::collections::HashMap;
use temblor_ir::{Dim, Op, ValueRef, Weight};

pub(super) fn scan(imp: &mut Importer, at: &Site) -> Result<(), String> {
    let attrs = Attrs(&at.n.attribute);
    let m = attrs.usize("num_scan_inputs", 0)?;
    if m == 0 {
        return Err("num_scan_inputs is 0: a Scan needs a scan input for its trip count".into());
    }
    let outputs = attrs
        .get("body")
        .and_then(|a| a.g.as_ref())
        .map_or(0, |g| g.output.len());
    if imp.opset < 9 {
        return scan8(imp, at, m, outputs);
    }
    let inputs = required_inputs(imp, at.n)?;
    let states = inputs.len().checked_sub(m).ok_or_else(|| {
        format!(
            "num_scan_inputs is {m} but the node has {} inputs",
            inputs.len()
        )
    })?;
    let layout = scan_layout(&attrs, "scan_input_directions", states, m, outputs)?;
    let Some(trips) = scan_trips(imp, at.n, &inputs[states..], &layout.in_axes)? else {
        return crate::onnx::bodies::run_time_scan(
            imp,
            at.n,
            at.name,
            at.prov.clone(),
            &inputs,
            &layout,
        );
    };
    let (state, stacked) = scan_passes(imp, at, &inputs, &layout, trips, "")?;
    at.bind(imp, &state)?;
    for (j, v) in stacked.into_iter().enumerate() {
        if let Some(output) = at.n.output.get(states + j).filter(|o| !o.is_empty()) {
            imp.define(output, v).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn scan_layout(
    attrs: &Attrs,
    directions: &str,
    states: usize,
    m: usize,
    outputs: usize,
) -> Result<crate::onnx::bodies::ScanLayout, String> {
    let k = outputs
        .checked_sub(states)
        .ok_or_else(|| format!("the body has fewer outputs than the {states} states"))?;
    Ok(crate::onnx::bodies::ScanLayout {
        states,
        in_axes: per_value(attrs, "scan_input_axes", m)?,
        in_reverse: per_value(attrs, directions, m)?,
        out_axes: per_value(attrs, "scan_output_axes", k)?,
        out_reverse: per_value(attrs, "scan_output_directions", k)?,
    })
}

/// Scan of opset 8: every input has a leading batch axis (and scan inputs their sequence axis
/// after it), which the body does not see. Each image of a batch of static size is scanned on
/// its own (as opset 9 would) and the results stacked back on the batch axis. Sequences of
/// different lengths (`sequence_lens`) are refused.
fn scan8(imp: &mut Importer, at: &Site, m: usize, outputs: usize) -> Result<(), String> {
    let all = imp.node_inputs(at.n)?;
    if all.first().copied().flatten().is_some() {
        return Err(
            "Scan of opset 8 with sequence_lens (sequences of different lengths) is not \
             supported"
                .into(),
        );
    }
    let inputs: Vec<ValueRef> = all
        .iter()
        .skip(1)
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| format!("input {} is omitted", i + 1)))
        .collect::<Result<_, _>>()?;
    let states = inputs.len().checked_sub(m).ok_or_else(|| {
        format!(
            "num_scan_inputs is {m} but the node has {} inputs after sequence_lens",
            inputs.len()
        )
    })?;
    let attrs = Attrs(&at.n.attribute);
    let layout = scan_layout(&attrs, "directions", states, m, outputs)?;
    temblor_infer::infer(&mut imp.g).map_err(|e| e.to_string())?;
    let batch = match imp.g.value_type(inputs[0]).shape.dims().first() {
        Some(Dim::Known(b)) => *b,
        _ => {
            return Err(
                "Scan of opset 8 over a batch whose size is not known at import; give the \
                 inputs static sizes (--input NAME:DIMS)"
                    .into(),
            )
        }
    };
    let seq = match imp.g.value_type(inputs[states]).shape.dims().get(1) {
        Some(Dim::Known(t)) => *t,
        _ => {
            return Err(
                "Scan of opset 8 over a sequence whose length is not known at import".into(),
            )
        }
    };
    let mut per_image: Vec<(Vec<ValueRef>, Vec<ValueRef>)> = Vec::with_capacity(batch);
    for b in 0..batch {
        let index = at.constant(
            imp,
            &format!("{}_image{b}", at.name),
            Weight::from_i64(vec![], &[b as i64]),
        )?;
        let mut sliced = Vec::with_capacity(inputs.len());
        for (j, &x) in inputs.iter().enumerate() {
            let gather = Op::Gather { axis: 0 };
            sliced.push(at.add(
                imp,
                &format!("{}_image{b}_in{j}", at.name),
                gather,
                &[x, index],
            )?);
        }
        per_image.push(scan_passes(
            imp,
            at,
            &sliced,
            &layout,
            seq,
            &format!("image{b}/"),
        )?);
    }
    let names: Vec<String> = (0..outputs)
        .map(|k| at.n.output.get(k).cloned().unwrap_or_default())
        .collect();
    for (k, output) in names.iter().enumerate() {
        if output.is_empty() {
            continue;
        }
        let parts: Vec<ValueRef> = per_image
            .iter()
            .map(|(state, stacked)| {
                if k < states {
                    state[k]
                } else {
                    stacked[k - states]
                }
            })
            .collect();
        let v = at.stack(imp, &parts, 0, output)?;
        imp.define(output, v).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A Scan's `trips` passes unrolled over `inputs` (the states, then the scan inputs): the last
/// states and each scan output stacked, reversed and placed as the layout says.
fn scan_passes(
    imp: &mut Importer,
    at: &Site,
    inputs: &[ValueRef],
    layout: &crate::onnx::bodies::ScanLayout,
    trips: usize,
    prefix: &str,
) -> Result<(Vec<ValueRef>, Vec<ValueRef>), String> {
    let states = layout.states;
    let (in_axes, in_reverse) = (&layout.in_axes, &layout.in_reverse);
    let (out_axes, out_reverse) = (&layout.out_axes, &layout.out_reverse);
    let body = Body::new(imp, at, "body")?;
    let k = out_axes.len();
    let mut state = inputs[..states].to_vec();
    let mut rows: Vec<Vec<ValueRef>> = vec![Vec::with_capacity(trips); k];
    let mut indices: HashMap<usize, ValueRef> = HashMap::new();
    for t in 0..trips {
        let mut bound = state.clone();
        for (j, &x) in inputs[states..].iter().enumerate() {
            let i = if in_reverse[j] == 1 { trips - 1 - t } else { t };
            let index = match indices.get(&i) {
                Some(&v) => v,
                None => {
                    let v = at.constant(
                        imp,
                        &format!("{}_index{i}", at.name),
                        Weight::from_i64(vec![], &[i as i64]),
                    )?;
                    *indices.entry(i).or_insert(v)
                }
            };
            let gather = Op::Gather { axis: in_axes[j] };
            bound.push(at.add(
                imp,
                &format!("{}_{prefix}{t}_in{j}", at.name),
                gather,
                &[x, index],
            )?);
        }
        let outs = body.pass(imp, &format!("{}/{prefix}{t}/", at.name), &bound)?;
        state = outs[..states].to_vec();
        for (row, &y) in rows.iter_mut().zip(&outs[states..]) {
            row.push(y);
        }
    }
    let mut stacked = Vec::with_capacity(k);
    for (j, mut parts) in rows.into_iter().enumerate() {
        let base =
            at.n.output
                .get(states + j)
                .filter(|o| !o.is_empty())
                .cloned()
                .unwrap_or_else(|| format!("{}_scan{j}", at.name));
        if out_reverse[j] == 1 {
            parts.reverse();
        }
        stacked.push(at.stack(imp, &parts, out_axes[j], &format!("{prefix}{base}"))?);
    }
    Ok((state, stacked))
}

/// A per-scan-value attribute: `count` entries, zeros when absent. Directions must be 0 or 1.
fn per_value(attrs: &Attrs, name: &str, count: usize) -> Result<Vec<i64>, String> {
    let v = attrs.ints(name)?.unwrap_or_else(|| vec![0; count]);
    if v.len() != count {
        return Err(format!(
            "attribute '{name}' has {} entries, expected {count}",
            v.len()
        ));
    }
    if name.ends_with("directions") && v.iter().any(|d| !matches!(d, 0 | 1)) {
        return Err(format!(
            "attribute '{name}' holds {v:?}; a direction is 0 or 1"
        ));
    }
    Ok(v)
}

/// The trip count of a Scan: the extent of its scan inputs along their scan axes, from declared
/// types or, failing those, shape inference of the graph built so far; `None` when it is known
/// only at run time.
fn scan_trips(
    imp: &mut Importer,
    n: &NodeProto,
    xs: &[ValueRef],
    axes: &[i64],
) -> Result<Option<usize>, String> {
    let names = &n.input[n.input.len() - xs.len()..];
    let mut inferred = false;
    let mut trips: Option<(usize, &str)> = None;
    for ((x, &v), &axis) in names.iter().zip(xs).zip(axes) {
        let dims: Vec<Dim> = match imp.static_dims(x, Some(v)) {
            Some(d) => d.into_iter().map(Dim::Known).collect(),
            None => {
                // A node before the Scan that inference cannot type leaves the extent unknown,
                // which the error below reports.
                inferred = inferred || temblor_infer::infer(&mut imp.g).is_ok();
                imp.g.value_type(v).shape.0.clone()
            }
        };
        let rank = dims.len() as i64;
        if !(-rank..rank).contains(&axis) {
            return Err(format!(
                "scan axis {axis} is out of range for scan input '{x}' of rank {rank}"
            ));
        }
        let Dim::Known(extent) = dims[axis.rem_euclid(rank) as usize] else {
            continue;
        };
        match trips {
            Some((t, other)) if t != extent => {
                return Err(format!(
                    "scan inputs '{other}' and '{x}' have extents {t} and {extent} along their \
                     scan axes"
                ))
            }
            _ => trips = Some((extent, x)),
        }
    }
    let Some((trips, _)) = trips else {
        return Ok(None);
    };
    if trips > MAX_TRIPS {
        return Err(format!(
            "the Scan runs {trips} passes; unrolling stops at {MAX_TRIPS}"
        ));
    }
    Ok(Some(trips))
}
