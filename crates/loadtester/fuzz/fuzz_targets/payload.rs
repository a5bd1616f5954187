//! Every way a webhook payload reaches the load tester's parsers: the body as JSON, a task's
//! metadata (keys drawn from those the parsers read, values arbitrary), a hey line and a shell
//! script. Each input must be accepted or refused with an error; none may panic.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serin_loadtester::tasks::{Payload, parse};

const KEYS: [&str; 24] = [
    "type",
    "cmd",
    "url",
    "method",
    "rate",
    "concurrency",
    "duration",
    "headers",
    "body",
    "http2",
    "returnCmdOutput",
    "server",
    "clone",
    "username",
    "passwd",
    "pollInterval",
    "pollTimeout",
    "org",
    "project",
    "repo",
    "entrypoint",
    "endpoint",
    "apiKeyPath",
    "arguments.users",
];
const TYPES: [&str; 9] = [
    "cmd", "bash", "helm", "helmv3", "kubectl", "load", "ngrinder", "concord", "gatling",
];

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    body: &'a [u8],
    kind: u8,
    fields: Vec<(u8, &'a str)>,
    line: &'a str,
}

fuzz_target!(|input: Input| {
    if let Ok(payload) = serde_json::from_slice::<Payload>(input.body) {
        let _ = parse(&payload);
    }
    let mut metadata: BTreeMap<String, String> = input
        .fields
        .iter()
        .map(|(key, value)| (KEYS[usize::from(*key) % KEYS.len()].to_string(), value.to_string()))
        .collect();
    metadata.insert("type".into(), TYPES[usize::from(input.kind) % TYPES.len()].into());
    let payload = Payload {
        name: "podinfo".into(),
        namespace: "test".into(),
        phase: "Progressing".into(),
        checksum: String::new(),
        metadata,
    };
    let _ = parse(&payload);
    let words: Vec<String> = input.line.split_whitespace().map(String::from).collect();
    let _ = serin_loadtester::load::from_hey(&words);
    let allowed: BTreeSet<String> = ["curl", "grep", "hey"].iter().map(|p| p.to_string()).collect();
    let _ = serin_loadtester::shell::screen(input.line, &allowed);
    let _ = serin_loadtester::shell::needs_shell(input.line);
});
