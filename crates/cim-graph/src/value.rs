//! Property values (the flat `value` variant of `cim:ecs/graph`) and their Bolt forms.

use neo4rs::{BoltList, BoltNull, BoltType};
use serde_json::{json, Map, Value as Json};

/// A property or result value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent.
    Null,
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Text. Nodes, relationships, maps and paths in query results arrive as JSON text.
    Text(String),
    /// List of texts.
    Texts(Vec<String>),
    /// List of floats.
    Floats(Vec<f64>),
}

impl Value {
    /// The Bolt form of the value.
    pub fn to_bolt(&self) -> BoltType {
        match self {
            Value::Null => BoltType::Null(BoltNull),
            Value::Bool(b) => BoltType::from(*b),
            Value::Int(i) => BoltType::from(*i),
            Value::Float(f) => BoltType::from(*f),
            Value::Text(s) => BoltType::from(s.as_str()),
            Value::Texts(v) => BoltType::List(BoltList::from(
                v.iter()
                    .map(|s| BoltType::from(s.as_str()))
                    .collect::<Vec<_>>(),
            )),
            Value::Floats(v) => BoltType::List(BoltList::from(
                v.iter().map(|f| BoltType::from(*f)).collect::<Vec<_>>(),
            )),
        }
    }

    /// A result value: scalars stay scalars, homogeneous lists of texts or numbers stay lists,
    /// anything structured (nodes, relationships, maps, paths) becomes JSON text.
    pub fn from_bolt(b: &BoltType) -> Value {
        match b {
            BoltType::Null(_) => Value::Null,
            BoltType::Boolean(x) => Value::Bool(x.value),
            BoltType::Integer(x) => Value::Int(x.value),
            BoltType::Float(x) => Value::Float(x.value),
            BoltType::String(x) => Value::Text(x.value.clone()),
            BoltType::List(list) => {
                let items: Vec<&BoltType> = list.value.iter().collect();
                if items.iter().all(|i| matches!(i, BoltType::String(_))) {
                    Value::Texts(
                        items
                            .iter()
                            .filter_map(|i| match i {
                                BoltType::String(s) => Some(s.value.clone()),
                                _ => None,
                            })
                            .collect(),
                    )
                } else if items
                    .iter()
                    .all(|i| matches!(i, BoltType::Float(_) | BoltType::Integer(_)))
                {
                    Value::Floats(
                        items
                            .iter()
                            .filter_map(|i| match i {
                                BoltType::Float(f) => Some(f.value),
                                BoltType::Integer(n) => Some(n.value as f64),
                                _ => None,
                            })
                            .collect(),
                    )
                } else {
                    Value::Text(bolt_to_json(b).to_string())
                }
            }
            other => Value::Text(bolt_to_json(other).to_string()),
        }
    }
}

/// A JSON rendering of any Bolt value (nodes as `{labels, properties}`, relationships as
/// `{type, properties}`). Map keys are sorted: a Bolt map has no order (neo4rs keeps it in a
/// hash map), and the same node must always render the same text.
pub fn bolt_to_json(b: &BoltType) -> Json {
    let map = |m: &neo4rs::BoltMap| -> Json {
        let mut entries: Vec<(String, Json)> = m
            .value
            .iter()
            .map(|(k, v)| (k.value.clone(), bolt_to_json(v)))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Json::Object(entries.into_iter().collect::<Map<_, _>>())
    };
    match b {
        BoltType::Null(_) => Json::Null,
        BoltType::Boolean(x) => json!(x.value),
        BoltType::Integer(x) => json!(x.value),
        BoltType::Float(x) => json!(x.value),
        BoltType::String(x) => json!(x.value),
        BoltType::List(l) => Json::Array(l.value.iter().map(bolt_to_json).collect()),
        BoltType::Map(m) => map(m),
        BoltType::Node(n) => json!({
            "labels": n.labels.value.iter().map(bolt_to_json).collect::<Vec<_>>(),
            "properties": map(&n.properties),
        }),
        BoltType::Relation(r) => json!({
            "type": r.typ.value,
            "properties": map(&r.properties),
        }),
        BoltType::UnboundedRelation(r) => json!({
            "type": r.typ.value,
            "properties": map(&r.properties),
        }),
        BoltType::Path(p) => json!({
            "nodes": p.nodes.value.iter().map(bolt_to_json).collect::<Vec<_>>(),
            "relationships": p.rels.value.iter().map(bolt_to_json).collect::<Vec<_>>(),
        }),
        other => json!(format!("{other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_render_with_sorted_keys() {
        for keys in [["b", "a", "c"], ["c", "b", "a"]] {
            let mut m = neo4rs::BoltMap::new();
            for (i, k) in keys.iter().enumerate() {
                m.put((*k).into(), BoltType::from(i as i64));
            }
            let text = bolt_to_json(&BoltType::Map(m)).to_string();
            let a = text.find("\"a\"").unwrap();
            let b = text.find("\"b\"").unwrap();
            let c = text.find("\"c\"").unwrap();
            assert!(a < b && b < c, "{text}");
        }
    }

    #[test]
    fn values_round_trip_through_bolt() {
        for v in [
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::Float(0.5),
            Value::Text("a'b\"c".into()),
            Value::Texts(vec!["x".into(), "y".into()]),
            Value::Floats(vec![0.25, -1.0]),
        ] {
            assert_eq!(Value::from_bolt(&v.to_bolt()), v);
        }
    }
}
