//! An `infer` request's input tensor checked against the model (name, datatype, shape, count,
//! finiteness) and flattened into rows for the scorer.

use serde_json::Value;

use super::{InferRequest, Target};
use crate::app::AppContext;
use crate::http::error::ApiError;
use crate::http::json;
use crate::model::ServingSet;

fn bad(message: String, field: &str) -> ApiError {
    ApiError::InvalidRequest {
        message,
        field: Some(field.to_owned()),
        row: None,
    }
}

/// The request checked against the serving model: its rows, ready for the scorer.
pub(super) fn prepare(
    ctx: &AppContext,
    target: &Target,
    body: &[u8],
) -> Result<(ServingSet, Vec<f32>, usize, Option<String>), ApiError> {
    let request: InferRequest = json::parse(body)?;
    let set = target.resolve(ctx)?;
    let model = &set.serving;
    let width = model.width();
    let [input] = request.inputs.as_slice() else {
        return Err(bad(
            format!(
                "{} inputs; the model takes exactly one",
                request.inputs.len()
            ),
            "inputs",
        ));
    };
    if input.name != model.manifest.input.name {
        return Err(bad(
            format!(
                "input `{}`: the model's input is `{}`",
                input.name, model.manifest.input.name
            ),
            "inputs.name",
        ));
    }
    if !matches!(input.datatype.as_str(), "FP32" | "FP64") {
        return Err(bad(
            format!("datatype {}: the model takes FP32", input.datatype),
            "inputs.datatype",
        ));
    }
    let rows = match input.shape.as_slice() {
        [n, w] if *n >= 0 && *w == width as i64 => *n as usize,
        [n] if *n >= 0 && width == 1 => *n as usize,
        shape => {
            return Err(bad(
                format!("shape {shape:?}: the model takes [N, {width}]"),
                "inputs.shape",
            ));
        }
    };
    let max = ctx.config.http.max_batch_rows;
    if rows > max {
        return Err(ApiError::BatchTooLarge { rows, max });
    }
    if rows == 0 {
        return Err(ApiError::EmptyBatch);
    }
    let mut values = Vec::with_capacity(rows * width);
    flatten(&input.data, &mut values, rows * width)?;
    if values.len() != rows * width {
        return Err(bad(
            format!(
                "{} values for shape [{rows}, {width}] ({} expected)",
                values.len(),
                rows * width
            ),
            "inputs.data",
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ApiError::NotFinite {
            row: i / width,
            feature: model.feature_set.names()[i % width].clone(),
            value: f64::from(values[i]),
        });
    }
    if let Some(outputs) = &request.outputs
        && let Some(other) = outputs
            .iter()
            .find(|o| o.name != model.manifest.output.name)
    {
        return Err(bad(
            format!(
                "output `{}`: the model's output is `{}`",
                other.name, model.manifest.output.name
            ),
            "outputs.name",
        ));
    }
    Ok((set, values, rows, request.id))
}

/// Appends the numbers of a (nested) JSON array, row-major; refuses non-numbers and more than
/// `limit` values.
fn flatten(value: &Value, out: &mut Vec<f32>, limit: usize) -> Result<(), ApiError> {
    match value {
        Value::Number(n) => {
            if out.len() >= limit {
                return Err(bad(
                    format!("more than the {limit} values the shape holds"),
                    "inputs.data",
                ));
            }
            out.push(n.as_f64().unwrap_or(f64::NAN) as f32);
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|v| flatten(v, out, limit)),
        other => Err(bad(
            format!(
                "data holds a {}, not a number",
                match other {
                    Value::Null => "null",
                    Value::Bool(_) => "boolean",
                    Value::String(_) => "string",
                    _ => "object",
                }
            ),
            "inputs.data",
        )),
    }
}
