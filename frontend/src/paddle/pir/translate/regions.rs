//! Control-flow regions: `pd_op.while` as a legacy `while` with a sub-block whose block
//! arguments are variables reassigned at its `cf.yield`, and `pd_op.if` as the importer's
//! if/else with a sub-block per branch.

use super::super::json::{Operation, Type};
use super::super::legacy::{block_attr, legacy_op, position};
use super::{operand, Binding, Translator, IF_ELSE, R};
use crate::paddle::proto::BlockDesc;

impl<'p> Translator<'p> {
    /// A `pd_op.while`: operand 0 is the first condition, the others the initial values of the
    /// body's block arguments; the body's `cf.yield` gives the next condition and values; the
    /// results are the last values. Legacy Paddle expresses the same with variables: each
    /// carried value is a variable assigned before the loop and again at the end of the body.
    pub(super) fn while_loop(&mut self, op: &'p Operation, b: usize, at: &str) -> R {
        let [body] = op.regions.as_slice() else {
            return Err(format!("{} regions, expected 1", op.regions.len()));
        };
        let (cond, inits) = op.operands.split_first().ok_or("no condition operand")?;
        if inits.len() != body.args.len() || op.results.len() != body.args.len() {
            return Err(format!(
                "{} initial values, {} block arguments and {} results do not match",
                inits.len(),
                body.args.len(),
                op.results.len()
            ));
        }
        let first = op.results.first().map_or(0, |v| v.id);
        let cond_var = self.fresh(&format!("while_{first}.cond"));
        self.declare(b, &cond_var, &Type::Null, false)?;
        let c = self.tensor_names(*cond, b)?;
        self.assign(b, c, &cond_var, at);
        let mut carried = Vec::new();
        for (k, (&init, arg)) in inits.iter().zip(&body.args).enumerate() {
            self.types.insert(arg.id, arg.ty.clone());
            let name = if let Type::TensorArray(_) = arg.ty {
                // Arrays are objects threaded by reference: the argument is the array itself.
                self.var(init)?
            } else {
                let name = self.fresh(&format!("while_{first}.carry_{k}"));
                self.declare(b, &name, &arg.ty, false)?;
                let v = self.tensor_names(init, b)?;
                self.assign(b, v, &name, at);
                name
            };
            self.bind.insert(arg.id, Binding::Var(name.clone()));
            carried.push((name, matches!(arg.ty, Type::TensorArray(_))));
        }
        let sub = self.blocks.len();
        self.blocks.push(BlockDesc {
            idx: sub as i32,
            parent_idx: b as i32,
            ..Default::default()
        });
        let (last, ops) = body.ops.split_last().ok_or("the loop body is empty")?;
        if last.name != "cf.yield" || last.operands.len() != carried.len() + 1 {
            return Err(
                "the loop body does not end with a yield of the condition and every \
                        carried value"
                    .into(),
            );
        }
        for (k, inner) in ops.iter().enumerate() {
            let inner_at = format!("op '{}' ({}, op {k})", inner.name, body.label);
            self.op(inner, sub, &inner_at)
                .map_err(|e| format!("{inner_at}: {e}"))?;
        }
        // Every yielded value is read before any carried variable is written, as the block
        // arguments of the next iteration all take their values at once.
        let mut staged = Vec::new();
        for (k, &id) in last.operands.iter().enumerate() {
            if k > 0 && carried[k - 1].1 {
                continue;
            }
            let temp = self.fresh(&format!("while_{first}.next_{k}"));
            let v = self.tensor_names(id, sub)?;
            self.assign(sub, v, &temp, at);
            staged.push((k, temp));
        }
        for (k, temp) in staged {
            let target = if k == 0 {
                cond_var.clone()
            } else {
                carried[k - 1].0.clone()
            };
            self.assign(sub, vec![temp], &target, at);
        }
        let names: Vec<String> = carried.iter().map(|(n, _)| n.clone()).collect();
        self.blocks[b].ops.push(legacy_op(
            "while",
            vec![("X", names.clone()), ("Condition", vec![cond_var])],
            vec![("Out", names.clone())],
            vec![block_attr("sub_block", sub as i32), position(at)],
        ));
        for (v, n) in op.results.iter().zip(names) {
            self.bind.insert(v.id, Binding::Var(n));
        }
        Ok(())
    }

    /// A `pd_op.if`: region 0 runs when the condition holds, region 1 otherwise, and the results
    /// are what the region that ran yields. Legacy Paddle has no single op for it (dy2static
    /// wrote two `conditional_block`s and a `select_input`), so it becomes the importer's own
    /// [`IF_ELSE`]: a sub-block per branch, each assigning its yields to the same variables.
    pub(super) fn if_else(&mut self, op: &'p Operation, b: usize, at: &str) -> R {
        let [then, otherwise] = op.regions.as_slice() else {
            return Err(format!("{} regions, expected 2", op.regions.len()));
        };
        let cond = self.tensor_names(operand(op, 0)?, b)?;
        let first = op.results.first().map_or(0, |v| v.id);
        let mut outs = Vec::new();
        for (k, v) in op.results.iter().enumerate() {
            let name = self.fresh(&format!("if_{first}.out_{k}"));
            self.declare(b, &name, &v.ty, false)?;
            outs.push(name);
        }
        let mut subs = Vec::new();
        for region in [then, otherwise] {
            let sub = self.blocks.len();
            self.blocks.push(BlockDesc {
                idx: sub as i32,
                parent_idx: b as i32,
                ..Default::default()
            });
            let (last, ops) = region.ops.split_last().ok_or("a branch is empty")?;
            if last.name != "cf.yield" || last.operands.len() != outs.len() {
                return Err("a branch does not end with a yield of every result".into());
            }
            for (k, inner) in ops.iter().enumerate() {
                let inner_at = format!("op '{}' ({}, op {k})", inner.name, region.label);
                self.op(inner, sub, &inner_at)
                    .map_err(|e| format!("{inner_at}: {e}"))?;
            }
            for (&id, out) in last.operands.iter().zip(&outs) {
                let v = self.tensor_names(id, sub)?;
                self.assign(sub, v, out, at);
            }
            subs.push(sub as i32);
        }
        self.blocks[b].ops.push(legacy_op(
            IF_ELSE,
            vec![("Cond", cond)],
            vec![("Out", outs.clone())],
            vec![
                block_attr("sub_block", subs[0]),
                block_attr("else_block", subs[1]),
                position(at),
            ],
        ));
        for (v, n) in op.results.iter().zip(outs) {
            self.bind.insert(v.id, Binding::Var(n));
        }
        Ok(())
    }
}
