//! Response validation: every JSON answer the simulator gives on an Atlassian route,
//! checked against the vendored OpenAPI documents (`crates/sim/specs/`), so that drift
//! between the simulator and the platform (a field a closed schema does not allow, a
//! missing required one, a wrong type) is found by the tests that use it.
//!
//! Switched on by `SimConfig::validate_responses` (the `validate` feature must be built;
//! the default is on exactly when it is). A violation is logged and recorded
//! ([`SimState::spec_violations`](super::state::SimState::spec_violations)); a
//! [`SimHandle`](super::SimHandle) with violations panics when dropped, so the test that
//! caused one fails. An answer is checked when a document describes the operation and
//! declares a JSON schema for the status sent; the rest (operations no vendored document
//! has, statuses a document omits, such as most 429s) are not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

/// One vendored document and the part of our paths it describes.
struct Doc {
    /// Our paths under this prefix belong to this document...
    owns: &'static str,
    /// ...after this prefix is removed (the document's server URL).
    strip: &'static str,
    doc: Value,
}

fn docs() -> &'static [Doc] {
    static DOCS: OnceLock<Vec<Doc>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let load = |text: &str| -> Value {
            let mut v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            openapi30_nullable(&mut v);
            v
        };
        // In order: the first document that owns a path and has a template for it wins.
        vec![
            Doc {
                owns: "/admin/",
                strip: "/admin",
                doc: load(include_str!("../specs/admin-v2-directory.transcribed.json")),
            },
            Doc {
                owns: "/admin/v1/",
                strip: "/admin/v1",
                doc: load(include_str!(
                    "../specs/admin-organizations.schema-original.json"
                )),
            },
            Doc {
                owns: "/rest/servicedeskapi/",
                strip: "",
                doc: load(include_str!(
                    "../specs/jira-service-management.schema-original.json"
                )),
            },
            Doc {
                owns: "/rest/api/3/",
                strip: "",
                doc: load(include_str!("../specs/jira-platform-v3.swagger-v3.v3.json")),
            },
            Doc {
                owns: "/wiki/rest/api/",
                strip: "",
                doc: load(include_str!("../specs/confluence-v1.schema-original.json")),
            },
        ]
    })
}

/// OpenAPI 3.0's `nullable: true` is not JSON Schema: make it `type: [T, "null"]`, or an
/// `anyOf` with `null` where there is no plain type.
fn openapi30_nullable(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                openapi30_nullable(child);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                match map.get("type").cloned() {
                    Some(Value::String(t)) => {
                        map.insert("type".into(), json!([t, "null"]));
                        if let Some(Value::Array(e)) = map.get_mut("enum") {
                            e.push(Value::Null);
                        }
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(map));
                        map.insert("anyOf".into(), json!([{ "type": "null" }, inner]));
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(openapi30_nullable),
        _ => {}
    }
}

/// The best-matching template (most literal segments) for a concrete path.
fn match_template<'a>(templates: impl Iterator<Item = &'a String>, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    templates
        .filter_map(|template| {
            let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    continue;
                }
                if part != segment {
                    return None;
                }
                literal += 1;
            }
            Some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, t)| t)
}

type Key = (usize, String, String, u16);

fn validators() -> &'static Mutex<HashMap<Key, Option<Arc<jsonschema::Validator>>>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Option<Arc<jsonschema::Validator>>>>> =
        OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The compiled schema for an answer, or `None` when no document describes it.
fn validator_for(method: &str, path: &str, status: u16) -> Option<Arc<jsonschema::Validator>> {
    let (index, doc, template) = docs().iter().enumerate().find_map(|(i, d)| {
        let rest = path.strip_prefix(d.owns).map(|_| &path[d.strip.len()..])?;
        let paths = d.doc.get("paths")?.as_object()?;
        Some((i, d, match_template(paths.keys(), rest)?.to_owned()))
    })?;
    let paths = doc.doc.get("paths")?.as_object()?;
    let method = method.to_ascii_lowercase();
    let key = (index, template.clone(), method.clone(), status);
    if let Some(v) = crate::state::lock(validators()).get(&key) {
        return v.clone();
    }
    let schema = paths[&template]
        .get(&method)
        .and_then(|op| op.get("responses"))
        .and_then(|r| r.get(status.to_string()))
        .and_then(|r| r.get("content"))
        .and_then(|c| {
            c.get("application/json")
                .or_else(|| c.as_object().and_then(|o| o.values().next()))
        })
        .and_then(|m| m.get("schema"))
        .cloned();
    let compiled = schema.and_then(|schema| {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": doc.doc["components"].clone(),
            "allOf": [schema],
        });
        match jsonschema::draft202012::options().build(&root) {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                tracing::warn!(error = %e, %template, "a vendored schema does not compile");
                None
            }
        }
    });
    crate::state::lock(validators()).insert(key, compiled.clone());
    compiled
}

/// The spec violations of one answer (empty when it conforms or no schema applies).
pub fn check(method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let Some(validator) = validator_for(method, path, status) else {
        return Vec::new();
    };
    validator
        .iter_errors(body)
        .take(5)
        .map(|e| format!("{method} {path} {status}: {e} at {}", e.instance_path()))
        .collect()
}
