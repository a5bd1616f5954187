//! The CRDs against the facts of Flagger's published v1beta1 CRDs (tests/data, copied from
//! Flagger v1.44.0): every field path, enum and printer column must be there.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

const FIELD_PATHS: &str = include_str!("data/flagger-v1beta1-field-paths.txt");
const ENUMS_AND_COLUMNS: &str = include_str!("data/flagger-v1beta1-enums-and-columns.txt");

fn crds_by_kind() -> BTreeMap<String, CustomResourceDefinition> {
    serin_api::crd::all()
        .into_iter()
        .map(|crd| (crd.spec.names.kind.clone(), crd))
        .collect()
}

fn schema(crd: &CustomResourceDefinition, version: &str) -> Value {
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == version)
        .expect("version served");
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Every path of a schema: `a.b` for properties, `[]` for list items, `{}` for map values.
fn paths(schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            out.insert(path.clone());
            paths(child, &path, out);
        }
    }
    if let Some(items) = schema.get("items") {
        paths(items, &format!("{prefix}[]"), out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        paths(values, &format!("{prefix}{{}}"), out);
    }
}

/// The sub-schema at a path written as in the facts files.
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut node = schema;
    for segment in path.split('.') {
        let (name, suffix) = segment.split_at(segment.find(['[', '{']).unwrap_or(segment.len()));
        node = &node["properties"][name];
        for marker in suffix.chars() {
            match marker {
                '[' => node = &node["items"],
                '{' => node = &node["additionalProperties"],
                _ => {}
            }
        }
    }
    node
}

#[test]
fn every_flagger_field_path_is_in_the_schema() {
    let crds = crds_by_kind();
    let mut missing = Vec::new();
    let mut checked = 0;
    for line in FIELD_PATHS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let [group_version, kind, path] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("malformed line {line:?}");
        };
        let version = group_version.rsplit('/').next().expect("version");
        let crd = crds.get(kind).unwrap_or_else(|| panic!("no CRD for {kind}"));
        let mut found = BTreeSet::new();
        paths(&schema(crd, version), "", &mut found);
        if !found.contains(path) {
            missing.push(format!("{kind} {path}"));
        }
        checked += 1;
    }
    assert_eq!(checked, 289, "the facts file lists 289 paths");
    assert!(
        missing.is_empty(),
        "{} paths missing from the CRDs:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn enums_match_flagger() {
    let crds = crds_by_kind();
    let mut kind = String::new();
    let mut compared = 0;
    for line in ENUMS_AND_COLUMNS.lines() {
        if let Some(rest) = line.strip_prefix("## ") {
            kind = rest.split(':').next().unwrap_or_default().to_string();
        }
        let Some(rest) = line.strip_prefix("enum ") else {
            continue;
        };
        let (path, values) = rest.split_once(": ").expect("enum line");
        let expected: BTreeSet<&str> = values.split(", ").map(str::trim).collect();
        let expected: BTreeSet<&str> = if values.starts_with(", ") || values == "," {
            expected.into_iter().chain([""]).collect()
        } else {
            expected
        };
        let schema = schema(&crds[&kind], "v1beta1");
        let actual: BTreeSet<&str> = at(&schema, path)["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind} {path} has no enum"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(actual, expected, "{kind} {path}");
        compared += 1;
    }
    assert!(compared >= 15, "only {compared} enums compared");
}

#[test]
fn printer_columns_categories_and_status_subresource_match_flagger() {
    let crds = crds_by_kind();
    let mut kind = String::new();
    let mut expected: BTreeMap<String, Vec<(String, String, String, i32)>> = BTreeMap::new();
    for line in ENUMS_AND_COLUMNS.lines() {
        if let Some(rest) = line.strip_prefix("## ") {
            kind = rest.split(':').next().unwrap_or_default().to_string();
        }
        let Some(rest) = line.strip_prefix("column ") else {
            continue;
        };
        let field = |key: &str| {
            rest.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .expect("column field")
                .to_string()
        };
        let name = rest.split_whitespace().next().expect("name").to_string();
        let priority = field("priority=").parse().expect("priority");
        expected
            .entry(kind.clone())
            .or_default()
            .push((name, field("type="), field("jsonPath="), priority));
    }
    assert_eq!(expected.len(), 3);
    for (kind, columns) in expected {
        let crd = &crds[&kind];
        assert_eq!(crd.spec.names.categories, Some(vec!["all".to_string()]), "{kind}");
        for version in &crd.spec.versions {
            let actual: Vec<(String, String, String, i32)> = version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.type_.clone(),
                        c.json_path.clone(),
                        c.priority.unwrap_or(0),
                    )
                })
                .collect();
            assert_eq!(actual, columns, "{kind} {}", version.name);
            assert!(
                version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
                "{kind} status subresource"
            );
        }
    }
}

#[test]
fn v1alpha3_is_served_deprecated_with_the_v1beta1_schema() {
    let canary = serin_api::crd::canary();
    let names: Vec<(&str, bool, bool)> = canary
        .spec
        .versions
        .iter()
        .map(|v| (v.name.as_str(), v.served, v.storage))
        .collect();
    assert_eq!(names, vec![("v1beta1", true, true), ("v1alpha3", true, false)]);
    let legacy = &canary.spec.versions[1];
    assert_eq!(legacy.deprecated, Some(true));
    assert!(
        legacy
            .deprecation_warning
            .as_deref()
            .is_some_and(|w| w.contains("v1beta1"))
    );
    assert_eq!(schema(&canary, "v1alpha3"), schema(&canary, "v1beta1"));
    let mut legacy_paths = BTreeSet::new();
    paths(&schema(&canary, "v1alpha3"), "", &mut legacy_paths);
    assert!(
        legacy_paths.contains("spec.canaryAnalysis.stepWeights"),
        "canaryAnalysis must not be pruned"
    );
}

#[test]
fn committed_crds_are_up_to_date() {
    let committed = include_str!("../../../deploy/crds/crds.yaml");
    let generated = serin_api::crd::to_yaml().expect("CRDs serialize");
    assert!(
        committed == generated,
        "deploy/crds/crds.yaml is stale: run `cargo run -p serin -- crds > deploy/crds/crds.yaml`"
    );
}
