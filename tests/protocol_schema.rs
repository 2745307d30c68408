//! The protocol's JSON schemas, emitted from the Rust types, are what is committed in
//! `editors/vscode/protocol/`: the VS Code extension's TypeScript types are generated from them
//! and its hand-written mirror is checked against those (`npm run typecheck`).
//!
//! After changing a protocol type: `UPDATE_PROTOCOL_SCHEMA=1 cargo test --test protocol_schema`.

use std::path::PathBuf;

use claude_lsp::protocol::lsp_ext;
use schemars::JsonSchema;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Map, Value, json};

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("editors/vscode/protocol/lsp_ext.schema.json")
}

/// The definitions of `T` and everything it refers to, as `contract` reads them: what clients
/// send is described as the server deserializes it, what the server sends as it serializes it.
fn definitions(
    contract: Contract,
    roots: &[fn(&mut schemars::SchemaGenerator)],
) -> Map<String, Value> {
    let mut generator =
        SchemaSettings::draft07().with(|settings| settings.contract = contract).into_generator();
    for root in roots {
        root(&mut generator);
    }
    generator.take_definitions(true)
}

fn root<T: JsonSchema>(generator: &mut schemars::SchemaGenerator) {
    generator.subschema_for::<T>();
}

/// An optional property is left out, never `null`, when the server sends it; clients leave it out
/// too. So `x?: T`, not `x?: T | null`.
fn drop_null_from_optional(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let required: Vec<String> = object
                .get("required")
                .and_then(Value::as_array)
                .map(|names| names.iter().filter_map(Value::as_str).map(String::from).collect())
                .unwrap_or_default();
            if let Some(Value::Object(properties)) = object.get_mut("properties") {
                for (name, property) in properties.iter_mut() {
                    if !required.contains(name) {
                        strip_null(property);
                    }
                    wrap_described_ref(property);
                }
            }
            object.values_mut().for_each(drop_null_from_optional);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_from_optional),
        _ => {}
    }
}

fn strip_null(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else { return };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|kind| kind != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            object.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(options)) = object.get("anyOf") {
        let rest: Vec<Value> =
            options.iter().filter(|option| **option != json!({"type": "null"})).cloned().collect();
        if rest.len() == 1 {
            object.remove("anyOf");
            if let Some(Value::Object(only)) = rest.into_iter().next() {
                for (key, value) in only {
                    object.entry(key).or_insert(value);
                }
            }
        }
    }
    if let Some(Value::Array(options)) = object.get_mut("enum") {
        options.retain(|option| !option.is_null());
    }
    if object.get("default").is_some_and(Value::is_null) {
        object.remove("default");
    }
}

/// `{"$ref", "description"}` becomes `{"allOf": [{"$ref"}], "description"}`: TypeScript generators
/// read a `$ref` with siblings as a new type (`FindingFix1`), an `allOf` of one as the type itself.
fn wrap_described_ref(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else { return };
    if object.len() > 1
        && let Some(reference) = object.remove("$ref")
    {
        object.insert("allOf".into(), json!([{ "$ref": reference }]));
    }
}

/// The method names, as one object type of string constants: `Methods` in TypeScript, which the
/// extension's `Method` table must equal.
fn methods() -> Value {
    let names = [
        ("generate", lsp_ext::GENERATE),
        ("analyze", lsp_ext::ANALYZE),
        ("refactor", lsp_ext::REFACTOR),
        ("review", lsp_ext::REVIEW),
        ("sessions", lsp_ext::SESSIONS),
        ("session", lsp_ext::SESSION),
        ("usage", lsp_ext::USAGE),
        ("runs", lsp_ext::RUNS),
        ("metrics", lsp_ext::METRICS),
        ("audit", lsp_ext::AUDIT),
        ("estimate", lsp_ext::ESTIMATE),
        ("output", lsp_ext::OUTPUT_NOTIFICATION),
        ("usageChanged", lsp_ext::USAGE_NOTIFICATION),
    ];
    let properties: Map<String, Value> =
        names.iter().map(|(name, method)| ((*name).to_owned(), json!({"const": method}))).collect();
    json!({
        "description": "The custom request and notification method names.",
        "type": "object",
        "properties": properties,
        "required": names.map(|(name, _)| name),
        "additionalProperties": false,
    })
}

fn protocol_schema() -> Value {
    let params = definitions(
        Contract::Deserialize,
        &[
            root::<lsp_ext::ActionParams>,
            root::<lsp_ext::ContinueParams>,
            root::<lsp_ext::CancelParams>,
            root::<lsp_ext::FindingRef>,
            root::<lsp_ext::ChangeRef>,
            root::<lsp_ext::SessionsParams>,
            root::<lsp_ext::UsageParams>,
            root::<lsp_ext::EstimateParams>,
        ],
    );
    let results = definitions(
        Contract::Serialize,
        &[
            root::<lsp_ext::ActionResult>,
            root::<lsp_ext::RunStarted>,
            root::<lsp_ext::SessionsResult>,
            root::<lsp_ext::UsageReport>,
            root::<lsp_ext::OutputParams>,
            root::<lsp_ext::RunInfo>,
            root::<lsp_ext::EstimateResult>,
        ],
    );
    let mut all = params;
    all.insert("Methods".to_owned(), methods());
    for (name, schema) in results {
        if let Some(existing) = all.get(&name) {
            assert_eq!(
                existing, &schema,
                "{name} reads differently as a parameter and as a result: give it one shape"
            );
        }
        all.insert(name, schema);
    }
    let mut schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "claude-lsp protocol extensions",
        "description": "Generated from src/protocol/lsp_ext.rs by tests/protocol_schema.rs; do not edit.",
        "definitions": all,
    });
    drop_null_from_optional(&mut schema);
    schema
}

#[test]
fn committed_protocol_schema_matches_the_rust_types() {
    let generated =
        format!("{}\n", serde_json::to_string_pretty(&protocol_schema()).unwrap_or_default());
    let path = schema_path();
    if std::env::var_os("UPDATE_PROTOCOL_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap_or(&path)).unwrap_or_default();
        std::fs::write(&path, &generated)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    pretty_assertions::assert_eq!(
        committed,
        generated,
        "{} is stale: run UPDATE_PROTOCOL_SCHEMA=1 cargo test --test protocol_schema and commit it",
        path.display()
    );
}
