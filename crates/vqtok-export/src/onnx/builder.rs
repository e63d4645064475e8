//! A small ONNX graph builder: nodes with generated value names, initializers with
//! state-dict names (so a graph can be traced back to the checkpoint), typed I/O.

use std::collections::HashSet;

use vqtok_runtime::ElemType;

use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto, type_proto,
};
use crate::error::Result;
use crate::weights::{Init, WeightSource};

/// ONNX operator set of every graph: ORT has fast kernels for all ops we use at 17,
/// and 17 predates GroupNormalization-18/21 (which ORT's CPU provider lacks).
pub const OPSET: i64 = 17;
/// The IR version that goes with opset 17.
pub const IR_VERSION: i64 = 8;

/// ONNX's code for an element type.
fn elem_proto(e: ElemType) -> i32 {
    match e {
        ElemType::Float32 => DataType::Float as i32,
        ElemType::Uint8 => DataType::Uint8 as i32,
        ElemType::Int64 => DataType::Int64 as i32,
    }
}

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    /// A symbolic dimension such as `N` or `H/16`.
    Named(String),
}

impl Dim {
    pub fn named(s: impl Into<String>) -> Dim {
        Dim::Named(s.into())
    }

    /// The manifest's spelling: a number or the symbol.
    pub fn to_manifest(&self) -> serde_json::Value {
        match self {
            Dim::Fixed(v) => serde_json::json!(v),
            Dim::Named(s) => serde_json::json!(s),
        }
    }
}

/// A node attribute.
pub enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Float(&'static str, f32),
    Str(&'static str, &'static str),
}

impl Attr {
    fn proto(self) -> AttributeProto {
        let mut a = AttributeProto::default();
        match self {
            Attr::Int(n, v) => {
                a.name = Some(n.into());
                a.r#type = Some(AttributeType::Int as i32);
                a.i = Some(v);
            }
            Attr::Ints(n, v) => {
                a.name = Some(n.into());
                a.r#type = Some(AttributeType::Ints as i32);
                a.ints = v;
            }
            Attr::Float(n, v) => {
                a.name = Some(n.into());
                a.r#type = Some(AttributeType::Float as i32);
                a.f = Some(v);
            }
            Attr::Str(n, v) => {
                a.name = Some(n.into());
                a.r#type = Some(AttributeType::String as i32);
                a.s = Some(v.as_bytes().to_vec());
            }
        }
        a
    }
}

/// Collects nodes, initializers and I/O of one graph. Parameters come from `weights`.
pub struct GraphBuilder<'w> {
    name: String,
    weights: &'w mut dyn WeightSource,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    initializer_names: HashSet<String>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    counter: usize,
}

fn value_info(name: &str, elem: ElemType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            denotation: None,
            value: Some(match d {
                Dim::Fixed(v) => tensor_shape_proto::dimension::Value::DimValue(*v as i64),
                Dim::Named(s) => tensor_shape_proto::dimension::Value::DimParam(s.clone()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem_proto(elem)),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

impl<'w> GraphBuilder<'w> {
    pub fn new(name: impl Into<String>, weights: &'w mut dyn WeightSource) -> Self {
        GraphBuilder {
            name: name.into(),
            weights,
            nodes: Vec::new(),
            initializers: Vec::new(),
            initializer_names: HashSet::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            counter: 0,
        }
    }

    /// Declares a graph input; returns its value name.
    pub fn input(&mut self, name: &str, elem: ElemType, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem, dims));
        name.to_string()
    }

    /// Exposes `value` as graph output `name` (through an Identity, which ORT removes).
    pub fn output(&mut self, value: &str, name: &str, elem: ElemType, dims: &[Dim]) {
        self.push_node("Identity", &[value], vec![], vec![name.to_string()]);
        self.outputs.push(value_info(name, elem, dims));
    }

    fn push_node(&mut self, op: &str, inputs: &[&str], attrs: Vec<Attr>, outputs: Vec<String>) {
        self.counter += 1;
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs,
            name: Some(format!("{op}_{}", self.counter)),
            op_type: Some(op.into()),
            attribute: attrs.into_iter().map(Attr::proto).collect(),
            ..Default::default()
        });
    }

    /// Appends a single-output node and returns its output's name.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<Attr>) -> String {
        let out = format!("{}_{}", op.to_lowercase(), self.counter + 1);
        self.push_node(op, inputs, attrs, vec![out.clone()]);
        out
    }

    /// Fetches parameter `name` (checked against `shape`) without adding it to the graph,
    /// for layers that transform weights before storing them.
    pub fn fetch(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>> {
        self.weights.tensor(name, shape, init)
    }

    /// Fetches parameter `name` and stores it as an initializer of the same name.
    pub fn param(&mut self, name: &str, shape: &[usize], init: Init) -> Result<String> {
        if self.initializer_names.contains(name) {
            return Ok(name.to_string());
        }
        let data = self.fetch(name, shape, init)?;
        Ok(self.init_f32(name, shape, &data))
    }

    /// Adds an f32 initializer (once per name) and returns its name.
    pub fn init_f32(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len(), "{name}");
        self.add_initializer(
            name,
            dims,
            DataType::Float,
            data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    /// Adds an i64 initializer (once per name) and returns its name.
    pub fn init_i64(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len(), "{name}");
        self.add_initializer(
            name,
            dims,
            DataType::Int64,
            data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    fn add_initializer(
        &mut self,
        name: &str,
        dims: &[usize],
        dt: DataType,
        raw: Vec<u8>,
    ) -> String {
        if self.initializer_names.insert(name.to_string()) {
            self.initializers.push(TensorProto {
                dims: dims.iter().map(|&d| d as i64).collect(),
                data_type: Some(dt as i32),
                name: Some(name.into()),
                raw_data: Some(raw),
                ..Default::default()
            });
        }
        name.to_string()
    }

    /// A 1-D i64 constant (shapes, axes), named after its values so equal ones are shared.
    pub fn const_i64(&mut self, values: &[i64]) -> String {
        let name = format!(
            "const_i64[{}]",
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        self.init_i64(&name, &[values.len()], values)
    }

    /// A scalar f32 constant, shared by value.
    pub fn const_f32(&mut self, value: f32) -> String {
        let name = format!("const_f32[{value:e}]");
        self.init_f32(&name, &[], &[value])
    }

    /// The finished model, with `metadata` as metadata_props.
    pub fn into_model(self, doc: &str, metadata: &[(&str, String)]) -> ModelProto {
        ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
            }],
            producer_name: Some("vqtok-export".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            doc_string: Some(doc.into()),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some((*k).into()),
                    value: Some(v.clone()),
                })
                .collect(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: Some(self.name),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}
