//! The HParams plugin's summaries, which make TensorBoard's HParams table compare a sweep's
//! cells: each cell's run starts with its values (`session_start_info`) and ends with its status
//! (`session_end_info`); the sweep's own directory holds the experiment (`experiment`): every
//! axis with its values, and the metrics to show.

use super::event::{FILE_VERSION, now};
use super::proto::{
    DataType, Domain, Event, Experiment, HParamInfo, HParamsData, HParamsPluginData, Kind, ListValue, MetricInfo, MetricName, PluginData, SessionEndInfo,
    SessionStartInfo, Status, Summary, SummaryMetadata, SummaryValue, TensorDim, TensorProto, TensorShape, Value, ValueKind, What,
};
use super::record::frame;
use crate::atomic_file::write_atomic;
use anyhow::Result;
use prost::Message;
use std::path::{Path, PathBuf};

pub const PLUGIN_NAME: &str = "hparams";
pub const EXPERIMENT_TAG: &str = "_hparams_/experiment";
pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// The metrics the HParams table shows, as the runs' scalar tags.
pub const METRICS: [&str; 6] = ["accuracy/test", "loss/test", "accuracy/train", "loss/train", "accuracy/val", "loss/val"];

/// One hyperparameter's value.
#[derive(Clone, Debug, PartialEq)]
pub enum HParamValue {
    Number(f64),
    Text(String),
}

impl HParamValue {
    /// An axis' values as typed: numbers when every one is a finite number (a learning rate, a
    /// batch size), else text (`full`, `784,32,10`), so that one axis is of one type in every
    /// cell and in the experiment.
    pub fn typed(values: &[String]) -> Vec<HParamValue> {
        let numbers: Option<Vec<f64>> = values.iter().map(|v| v.trim().parse::<f64>().ok().filter(|x| x.is_finite())).collect();
        match numbers {
            Some(xs) => xs.into_iter().map(HParamValue::Number).collect(),
            None => values.iter().cloned().map(HParamValue::Text).collect(),
        }
    }

    fn to_proto(&self) -> Value {
        let kind = match self {
            HParamValue::Number(x) => Kind::Number(*x),
            HParamValue::Text(s) => Kind::String(s.clone()),
        };
        Value { kind: Some(kind) }
    }
}

/// A run's place in a sweep: its name (the HParams table's group) and its value of every axis.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionStart {
    pub group_name: String,
    pub hparams: Vec<(String, HParamValue)>,
}

/// A sweep's axis: its name, as the cells' `SessionStart`s name it, and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct HParamAxis {
    pub name: String,
    pub values: Vec<HParamValue>,
}

/// How a run ended, for the HParams table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    Success,
    /// It diverged (or failed otherwise).
    Failure,
}

/// The summary value of `data` under `tag`, as tensorboard's hparams `summary.py` writes it:
/// the message in the plugin data, and an empty float tensor, without which TensorBoard's data
/// loader would drop the value.
fn summary_value(tag: &str, data: HParamsData) -> SummaryValue {
    let content = HParamsPluginData { version: 0, data: Some(data) }.encode_to_vec();
    let empty = TensorProto { dtype: 1, tensor_shape: Some(TensorShape { dim: vec![TensorDim { size: 0 }] }) };
    SummaryValue {
        tag: tag.to_string(),
        metadata: Some(SummaryMetadata { plugin_data: Some(PluginData { plugin_name: PLUGIN_NAME.to_string(), content }) }),
        value: Some(ValueKind::Tensor(empty)),
    }
}

pub(super) fn session_start(s: &SessionStart) -> SummaryValue {
    let info = SessionStartInfo {
        hparams: s.hparams.iter().map(|(name, v)| (name.clone(), v.to_proto())).collect(),
        group_name: s.group_name.clone(),
        start_time_secs: now(),
    };
    summary_value(SESSION_START_TAG, HParamsData::SessionStartInfo(info))
}

pub(super) fn session_end(status: SessionStatus) -> SummaryValue {
    let status = match status {
        SessionStatus::Success => Status::Success,
        SessionStatus::Failure => Status::Failure,
    };
    summary_value(SESSION_END_TAG, HParamsData::SessionEndInfo(SessionEndInfo { status: status as i32, end_time_secs: now() }))
}

fn experiment(axes: &[HParamAxis]) -> SummaryValue {
    let hparam_infos = axes
        .iter()
        .map(|a| {
            let numeric = a.values.iter().all(|v| matches!(v, HParamValue::Number(_)));
            HParamInfo {
                name: a.name.clone(),
                r#type: if numeric { DataType::Float64 } else { DataType::String } as i32,
                domain: Some(Domain::DomainDiscrete(ListValue {
                    values: a
                        .values
                        .iter()
                        .map(|v| match (v, numeric) {
                            (HParamValue::Number(x), false) => HParamValue::Text(format!("{x}")).to_proto(),
                            _ => v.to_proto(),
                        })
                        .collect(),
                })),
            }
        })
        .collect();
    let metric_infos = METRICS.iter().map(|tag| MetricInfo { name: Some(MetricName { group: String::new(), tag: tag.to_string() }) }).collect();
    summary_value(EXPERIMENT_TAG, HParamsData::Experiment(Experiment { time_created_secs: now(), hparam_infos, metric_infos }))
}

/// Writes a sweep's experiment (every axis and its values, the metrics) as a new event file in
/// `dir`, atomically: the shards of a sweep never append to it. Returns its path.
pub fn write_experiment(dir: &Path, axes: &[HParamAxis]) -> Result<PathBuf> {
    let mut bytes = Vec::new();
    for what in [What::FileVersion(FILE_VERSION.to_string()), What::Summary(Summary { value: vec![experiment(axes)] })] {
        frame(&Event { wall_time: now(), step: 0, what: Some(what) }.encode_to_vec(), &mut bytes);
    }
    let path = super::writer::free_name(dir)?;
    write_atomic(&path, &bytes)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_is_numeric_only_when_every_value_is_a_number() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(HParamValue::typed(&s(&["0.1", "1e-3"])), [HParamValue::Number(0.1), HParamValue::Number(1e-3)]);
        assert_eq!(HParamValue::typed(&s(&["10", "full"])), [HParamValue::Text("10".into()), HParamValue::Text("full".into())]);
        assert_eq!(HParamValue::typed(&s(&["1", "inf"]))[0], HParamValue::Text("1".into()));
    }
}
