//! A trained network as a standard ONNX model (opset 13): input `pixels` [N, in] (pixel values
//! scaled to [0, 1], as gpu-nn reads them), the model's input normalisation as Sub and Div
//! where it is not the identity, then per layer a Gemm (x·Wᵀ + b, W stored [out, in] with
//! transB = 1) and its activation (Relu, Sigmoid, Tanh, LeakyRelu α = 0.01, Softmax on axis 1;
//! none for identity); output `outputs` [N, out], the probabilities for a softmax output.
//!
//! The protobuf is written here by hand (the handful of messages and fields an inference graph
//! needs, numbered as in onnx.proto) rather than through a protobuf code generator.

use crate::nn::model::{Activation, ModelSpec, Params};

/// Protobuf wire encoding: varints, keys and length-delimited fields.
struct Pb(Vec<u8>);

impl Pb {
    fn new() -> Pb {
        Pb(Vec::new())
    }
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(&mut self, field: u32, m: Pb) -> &mut Self {
        self.bytes(field, &m.0)
    }
    fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

const FLOAT: i64 = 1; // TensorProto.DataType.FLOAT

/// TensorProto: a float tensor with its values as raw little-endian bytes.
fn tensor(name: &str, dims: &[usize], values: &[f64]) -> Pb {
    let mut t = Pb::new();
    for &d in dims {
        t.int(1, d as i64);
    }
    t.int(2, FLOAT).str(8, name);
    let raw: Vec<u8> = values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

/// ValueInfoProto of a float [batch, width] tensor.
fn value_info(name: &str, width: usize) -> Pb {
    let mut batch = Pb::new();
    batch.str(2, "batch");
    let mut w = Pb::new();
    w.int(1, width as i64);
    let mut shape = Pb::new();
    shape.msg(1, batch).msg(1, w);
    let mut tt = Pb::new();
    tt.int(1, FLOAT).msg(2, shape);
    let mut ty = Pb::new();
    ty.msg(1, tt);
    let mut v = Pb::new();
    v.str(1, name).msg(2, ty);
    v
}

/// NodeProto; `attrs` as (name, value) with INT (2) or FLOAT (1) type.
fn node(op: &str, name: &str, inputs: &[&str], output: &str, ints: &[(&str, i64)], floats: &[(&str, f32)]) -> Pb {
    let mut n = Pb::new();
    for i in inputs {
        n.str(1, i);
    }
    n.str(2, output).str(3, name).str(4, op);
    for (k, v) in ints {
        let mut a = Pb::new();
        a.str(1, k).int(3, *v).int(20, 2);
        n.msg(5, a);
    }
    for (k, v) in floats {
        let mut a = Pb::new();
        a.str(1, k).float(2, *v).int(20, 1);
        n.msg(5, a);
    }
    n
}

/// The serialized ModelProto of `spec` with `params`.
pub fn onnx_model(spec: &ModelSpec, params: &Params) -> Vec<u8> {
    let mut g = Pb::new();
    let mut x = "pixels".to_string();
    let mut inits = Vec::new();
    if let Some(f) = &spec.feature_norm {
        // a table's per-feature standardisation, broadcast over the batch
        let d = spec.input_size();
        inits.push(tensor("feature_mean", &[d], &f.mean));
        inits.push(tensor("feature_std", &[d], &f.std));
        g.msg(1, node("Sub", "centre_features", &[&x, "feature_mean"], "features_centred", &[], &[]));
        g.msg(1, node("Div", "scale_features", &["features_centred", "feature_std"], "features", &[], &[]));
        x = "features".into();
    }
    let norm = spec.input_norm;
    if !norm.is_identity() {
        inits.push(tensor("input_mean", &[1], &[norm.mean]));
        inits.push(tensor("input_std", &[1], &[norm.std]));
        g.msg(1, node("Sub", "centre", &[&x, "input_mean"], "centred", &[], &[]));
        g.msg(1, node("Div", "scale", &["centred", "input_std"], "inputs", &[], &[]));
        x = "inputs".into();
    }
    let last = spec.num_layers() - 1;
    for (i, l) in params.layers.iter().enumerate() {
        let (n_in, n_out) = spec.layer_dims(i);
        let (w, b) = (format!("layers.{i}.weight"), format!("layers.{i}.bias"));
        inits.push(tensor(&w, &[n_out, n_in], &l.weight));
        inits.push(tensor(&b, &[n_out], &l.bias));
        let act = spec.activations[i];
        let z = if act == Activation::Identity && i == last { "outputs".to_string() } else { format!("z{}", i + 1) };
        g.msg(1, node("Gemm", &format!("gemm{}", i + 1), &[&x, &w, &b], &z, &[("transB", 1)], &[]));
        let a = if i == last { "outputs".to_string() } else { format!("a{}", i + 1) };
        let name = format!("act{}", i + 1);
        match act {
            Activation::Identity => {
                x = z;
                continue;
            }
            Activation::Relu => g.msg(1, node("Relu", &name, &[&z], &a, &[], &[])),
            Activation::Sigmoid => g.msg(1, node("Sigmoid", &name, &[&z], &a, &[], &[])),
            Activation::Tanh => g.msg(1, node("Tanh", &name, &[&z], &a, &[], &[])),
            Activation::LeakyRelu => g.msg(1, node("LeakyRelu", &name, &[&z], &a, &[], &[("alpha", crate::nn::model::LEAKY_SLOPE as f32)])),
            Activation::Softmax => g.msg(1, node("Softmax", &name, &[&z], &a, &[("axis", 1)], &[])),
        };
        x = a;
    }
    g.str(2, "gpu-nn");
    for t in inits {
        g.msg(5, t);
    }
    g.msg(11, value_info("pixels", spec.input_size()));
    g.msg(12, value_info("outputs", spec.output_size()));
    let mut opset = Pb::new();
    opset.str(1, "").int(2, 13);
    let mut m = Pb::new();
    m.int(1, 8).str(2, "gpu-nn").str(3, env!("CARGO_PKG_VERSION")).msg(7, g).msg(8, opset);
    if !spec.classes.is_empty() {
        // metadata_props: the class of each output, as the model file names them
        let mut e = Pb::new();
        e.str(1, "classes").str(2, &serde_json::to_string(&spec.classes).unwrap_or_default());
        m.msg(14, e);
    }
    m.0
}
