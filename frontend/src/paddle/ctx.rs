//! The context one op mapping works in: its inputs by Paddle parameter name, node creation with
//! provenance and unique names, and binding results to the op's output variables.

use super::attrs::Attrs;
use super::proto::OpDesc;
use super::{args, Failure, Importer};
use temblor_ir::{
    AttrValue, DType, Node, NodeId, Op, Provenance, Shape, TensorInfo, TensorType, ValueRef, Weight,
};

pub(super) type Res<T = ()> = std::result::Result<T, Failure>;

/// One op family's file: the Paddle op types it maps and the function that maps them.
pub(super) struct Family {
    pub ops: &'static [&'static str],
    pub map: fn(&mut Ctx) -> Res,
}

pub(super) struct Ctx<'i, 'p> {
    pub imp: &'i mut Importer<'p>,
    pub op: &'p OpDesc,
    pub attrs: Attrs<'p>,
    /// Name stem of the nodes this op becomes: the first variable it writes.
    base: String,
    prov: Provenance,
    source: Vec<(String, AttrValue)>,
}

impl<'i, 'p> Ctx<'i, 'p> {
    pub fn new(imp: &'i mut Importer<'p>, op: &'p OpDesc) -> Ctx<'i, 'p> {
        let base = super::main_output(op).unwrap_or(&op.r#type).to_string();
        let prov = imp.origin(&base, &op.r#type);
        let attrs = Attrs(&op.attrs);
        Ctx {
            imp,
            op,
            attrs,
            base,
            prov,
            source: attrs.source(),
        }
    }

    pub fn op_type(&self) -> &'p str {
        &self.op.r#type
    }

    /// The single argument of an input parameter.
    pub fn input(&mut self, param: &str) -> Res<ValueRef> {
        self.opt_input(param)?
            .ok_or_else(|| Failure::Msg(format!("input '{param}' is missing")))
    }

    pub fn opt_input(&mut self, param: &str) -> Res<Option<ValueRef>> {
        match args(self.op, param, false).as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(self.imp.value(one)?)),
            more => Err(format!("input '{param}' has {} arguments, expected 1", more.len()).into()),
        }
    }

    /// Every argument of a variadic input parameter.
    pub fn inputs(&mut self, param: &str) -> Res<Vec<ValueRef>> {
        let names = args(self.op, param, false);
        let mut out = Vec::with_capacity(names.len());
        for n in &names {
            out.push(self.imp.value(n)?);
        }
        Ok(out)
    }

    pub fn has_input(&self, param: &str) -> bool {
        !args(self.op, param, false).is_empty()
    }

    pub fn output_count(&self, param: &str) -> usize {
        args(self.op, param, true).len()
    }

    /// The static type of a value so far: graph inputs and constants have one at import; other
    /// values only after shape inference, so a mapping that needs a rank reads the program's
    /// declaration of the variable instead ([`Ctx::declared_rank`]).
    pub fn weight(&self, v: ValueRef) -> Option<&Weight> {
        match self.imp.g.node(v.node).op {
            Op::Constant { weight } => self.imp.g.weights.get(weight),
            _ => None,
        }
    }

    /// The rank the program declares for the variable of an input parameter.
    pub fn declared_rank(&self, param: &str, output: bool) -> Res<usize> {
        let names = args(self.op, param, output);
        let var = names
            .first()
            .ok_or_else(|| Failure::Msg(format!("'{param}' is missing")))?;
        Ok(self.imp.declared_type(var)?.shape.rank())
    }

    /// The dtype the program declares for the variable of an input parameter.
    pub fn declared_dtype(&self, param: &str) -> Res<DType> {
        let names = args(self.op, param, false);
        let var = names
            .first()
            .ok_or_else(|| Failure::Msg(format!("input '{param}' is missing")))?;
        Ok(self.imp.declared_type(var)?.dtype)
    }

    /// A scalar constant of `dtype` (the dtype of the tensor it combines with).
    pub fn scalar(&mut self, dtype: DType, v: f64) -> Res<ValueRef> {
        let data: Vec<u8> = match dtype {
            DType::F32 => (v as f32).to_le_bytes().to_vec(),
            DType::F64 => v.to_le_bytes().to_vec(),
            DType::I32 => (v as i32).to_le_bytes().to_vec(),
            DType::I64 => (v as i64).to_le_bytes().to_vec(),
            other => return Err(format!("a {other} operand is not supported here").into()),
        };
        let name = format!("{}.const", self.base);
        let w = Weight {
            dtype,
            dims: Vec::new(),
            data: data.into(),
        };
        Ok(self.imp.constant(&name, w, self.op_type()))
    }

    /// Adds one node of this op; its outputs get placeholder types until shape inference.
    pub fn node(&mut self, op: Op, inputs: &[Option<ValueRef>], outputs: usize) -> NodeId {
        let name = self.imp.names.unique(&self.base);
        let placeholder = TensorType::new(DType::F32, Shape::default());
        let infos = (0..outputs)
            .map(|k| TensorInfo {
                name: if k == 0 {
                    name.clone()
                } else {
                    self.imp.names.unique(&format!("{name}:{k}"))
                },
                ty: placeholder.clone(),
            })
            .collect();
        let mut node = Node::new(name, op, infos);
        node.provenance = self.prov.clone();
        node.source_attrs = self.source.clone();
        let id = self.imp.g.add_node(node);
        for (port, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.imp.g.connect(*v, id, port);
            }
        }
        id
    }

    /// Adds a one-output node.
    pub fn add(&mut self, op: Op, inputs: &[ValueRef]) -> ValueRef {
        let ins: Vec<Option<ValueRef>> = inputs.iter().copied().map(Some).collect();
        ValueRef::new(self.node(op, &ins, 1), 0)
    }

    pub fn const_i64(&mut self, dims: Vec<usize>, values: &[i64]) -> ValueRef {
        let name = format!("{}.const", self.base);
        self.imp
            .constant(&name, Weight::from_i64(dims, values), self.op_type())
    }

    /// Binds the output parameter's single variable to `v`. A value this op made takes the
    /// variable's name, so views and errors use the names a Paddle user knows.
    pub fn bind(&mut self, param: &str, v: ValueRef) -> Res {
        let names = args(self.op, param, true);
        match names.as_slice() {
            [var] => {
                self.name_value(v, var);
                self.imp.scope.insert(var.clone(), v);
                Ok(())
            }
            other => {
                Err(format!("output '{param}' has {} arguments, expected 1", other.len()).into())
            }
        }
    }

    /// Binds each variable of a variadic output parameter, in order.
    pub fn bind_all(&mut self, param: &str, values: &[ValueRef]) -> Res {
        let names = args(self.op, param, true);
        if names.len() != values.len() {
            return Err(format!(
                "output '{param}' has {} arguments, expected {}",
                names.len(),
                values.len()
            )
            .into());
        }
        for (var, &v) in names.iter().zip(values) {
            self.name_value(v, var);
            self.imp.scope.insert(var.clone(), v);
        }
        Ok(())
    }

    fn name_value(&mut self, v: ValueRef, var: &str) {
        if self.imp.g.node(v.node).provenance != self.prov {
            return;
        }
        let current = &self.imp.g.node(v.node).outputs[v.port].name;
        if current == var {
            return;
        }
        let name = self.imp.names.unique(var);
        self.imp.g.node_mut(v.node).outputs[v.port].name = name;
    }
}
