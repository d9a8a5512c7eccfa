//! Converts JSON views into CEL values.
//!
//! Done by hand rather than through `cel::to_value` so that every JSON integer becomes a CEL
//! `int`: mixing `uint` (what serde gives for `u32` fields) and `int` literals in a comparison
//! is a type error in CEL, which would turn honest evidence into ERROR verdicts.

use serde_json::Value;
use std::collections::HashMap;

/// The CEL value for a JSON value.
pub fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::from(s.as_str()),
        Value::Array(a) => cel::Value::from(a.iter().map(to_cel).collect::<Vec<_>>()),
        Value::Object(m) => {
            let map: HashMap<String, cel::Value> =
                m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expr: &str, var: Value) -> Result<cel::Value, String> {
        let program = cel::Program::compile(expr).map_err(|e| e.to_string())?;
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("x", to_cel(&var));
        program.execute(&ctx).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_compare_with_int_literals() {
        assert_eq!(
            eval("x.days <= 90", json!({"days": 90u32})),
            Ok(cel::Value::Bool(true))
        );
    }

    #[test]
    fn null_field_is_an_error_not_false() {
        assert!(eval("x.days <= 90", json!({"days": null})).is_err());
        assert!(eval("x.missing == true", json!({})).is_err());
    }

    #[test]
    fn lists_and_maps_work() {
        assert_eq!(
            eval(
                "x.l.all(v, v in ['a','b']) && x.m.k == 'v'",
                json!({"l": ["a"], "m": {"k": "v"}})
            ),
            Ok(cel::Value::Bool(true))
        );
    }
}
