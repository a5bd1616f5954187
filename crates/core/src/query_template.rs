//! MetricTemplate queries are Go `text/template`s. Flagger renders them with no data and one
//! function per value (`name`, `namespace`, `target`, `service`, `ingress`, `route`, `interval`,
//! `variables`; pkg/apis/flagger/v1beta1/metric.go) and `missingkey=error`. This renders the
//! part of the language such queries use, with Go's semantics:
//!
//! - actions `{{ … }}` with the trim markers `{{- ` and ` -}}`, and comments `{{/* … */}}`;
//! - the value functions above, `variables.key` (an error when the key is missing), and, as a
//!   courtesy Flagger does not extend, the same names with a leading dot (`{{ .target }}`);
//! - string, raw-string and integer literals, parentheses and pipes (`{{ target | printf "%s-.*" }}`);
//! - the builtins `index`, `printf` (verbs `%s`, `%v`, `%d`, `%q`, `%%`), `print`, `len`, `not`,
//!   `and`, `or`, `eq`, `ne`;
//! - `if` / `else if` / `else` / `end`.
//!
//! Anything else (`range`, `with`, `define`, variables `$x`, …) is refused with an error that names it.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown function {0:?} in the query template; use name, namespace, target, service, ingress, route, interval, variables.<key> or a builtin (index, printf, print, len, not, and, or, eq, ne)"
    )]
    Unknown(String),
    #[error("the query template uses variables.{0}, which the metric's templateVariables do not set")]
    MissingVariable(String),
    #[error("unclosed {{{{ in the query template")]
    Unclosed,
    #[error("{{{{ {0} }}}} is not supported in query templates; serin supports values, pipes, builtins and if/else")]
    Unsupported(String),
    #[error("query template: {0}")]
    Syntax(String),
}

/// The values a query template can use.
#[derive(Debug, Clone, Default)]
pub struct TemplateValues<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub target: &'a str,
    pub service: &'a str,
    pub ingress: &'a str,
    pub route: &'a str,
    pub interval: &'a str,
    pub variables: BTreeMap<String, String>,
}

/// Renders `template` as Go's text/template would with Flagger's functions.
pub fn render(template: &str, values: &TemplateValues) -> Result<String, TemplateError> {
    let pieces = split(template)?;
    let mut position = 0;
    let nodes = parse_block(&pieces, &mut position)?;
    if let Some(piece) = pieces.get(position) {
        return Err(TemplateError::Syntax(format!(
            "unexpected {{{{ {} }}}}",
            piece.action_text()
        )));
    }
    let mut out = String::with_capacity(template.len());
    execute(&nodes, values, &mut out)?;
    Ok(out)
}

enum Piece {
    Text(String),
    Action(String),
}

impl Piece {
    fn action_text(&self) -> &str {
        match self {
            Piece::Text(text) | Piece::Action(text) => text,
        }
    }
}

/// Text and action bodies, with the trim markers applied to the surrounding text.
fn split(template: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let mut body = &after[..end];
        if let Some(trimmed) = body.strip_prefix('-').filter(|b| b.starts_with(char::is_whitespace)) {
            text = text.trim_end();
            body = trimmed;
        }
        trim_next = false;
        if let Some(trimmed) = body.strip_suffix('-').filter(|b| b.ends_with(char::is_whitespace)) {
            trim_next = true;
            body = trimmed;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_string()));
        }
        let body = body.trim();
        if !(body.starts_with("/*") && body.ends_with("*/")) {
            pieces.push(Piece::Action(body.to_string()));
        }
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        pieces.push(Piece::Text(text.to_string()));
    }
    Ok(pieces)
}

enum Node {
    Text(String),
    Output(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
}

/// Parses nodes until `end`, `else` or the end of the pieces (left for the caller to consume).
fn parse_block(pieces: &[Piece], position: &mut usize) -> Result<Vec<Node>, TemplateError> {
    let mut nodes = Vec::new();
    while let Some(piece) = pieces.get(*position) {
        match piece {
            Piece::Text(text) => nodes.push(Node::Text(text.clone())),
            Piece::Action(body) => {
                let keyword = body.split_whitespace().next().unwrap_or_default();
                match keyword {
                    "end" | "else" => return Ok(nodes),
                    "if" => {
                        *position += 1;
                        nodes.push(parse_if(&body[2..], pieces, position)?);
                        continue;
                    }
                    "range" | "with" | "define" | "template" | "block" | "break" | "continue" => {
                        return Err(TemplateError::Unsupported(keyword.to_string()));
                    }
                    _ => nodes.push(Node::Output(parse_pipeline(body)?)),
                }
            }
        }
        *position += 1;
    }
    Ok(nodes)
}

/// `if` after its keyword: branches until `end`.
fn parse_if(condition: &str, pieces: &[Piece], position: &mut usize) -> Result<Node, TemplateError> {
    let mut branches = vec![(parse_pipeline(condition)?, parse_block(pieces, position)?)];
    loop {
        let Some(Piece::Action(body)) = pieces.get(*position) else {
            return Err(TemplateError::Syntax("an if has no {{ end }}".into()));
        };
        *position += 1;
        if body == "end" {
            return Ok(Node::If {
                branches,
                otherwise: vec![],
            });
        }
        match body.strip_prefix("else").map(str::trim) {
            Some("") => {
                let otherwise = parse_block(pieces, position)?;
                match pieces.get(*position) {
                    Some(Piece::Action(end)) if end == "end" => {
                        *position += 1;
                        return Ok(Node::If { branches, otherwise });
                    }
                    _ => return Err(TemplateError::Syntax("an else has no {{ end }}".into())),
                }
            }
            Some(rest) if rest.starts_with("if ") => {
                branches.push((parse_pipeline(&rest[3..])?, parse_block(pieces, position)?));
            }
            _ => return Err(TemplateError::Syntax(format!("unexpected {{{{ {body} }}}} in an if"))),
        }
    }
}

type Pipeline = Vec<Command>;
type Command = Vec<Operand>;

#[derive(Debug, Clone)]
enum Operand {
    Literal(Value),
    /// A function name, possibly followed by map keys (`variables.key`).
    Name(String, Vec<String>),
    Nested(Pipeline),
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Number(i64),
    Bool(bool),
    Map(BTreeMap<String, String>),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Text(text) => !text.is_empty(),
            Value::Number(n) => *n != 0,
            Value::Bool(b) => *b,
            Value::Map(map) => !map.is_empty(),
        }
    }

    fn text(&self) -> Result<String, TemplateError> {
        match self {
            Value::Text(text) => Ok(text.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Map(_) => Err(TemplateError::Syntax(
                "variables is a map; write variables.<key> to use one of them".into(),
            )),
        }
    }
}

enum Token {
    Word(String),
    Literal(Value),
    Pipe,
    Open,
    Close,
}

fn tokens(body: &str) -> Result<Vec<Token>, TemplateError> {
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '|' => {
                chars.next();
                out.push(Token::Pipe);
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err(TemplateError::Syntax("unterminated string".into())),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => text.push('\n'),
                            Some('t') => text.push('\t'),
                            Some(other @ ('"' | '\\')) => text.push(other),
                            other => {
                                return Err(TemplateError::Syntax(format!(
                                    "unknown escape \\{}",
                                    other.unwrap_or(' ')
                                )));
                            }
                        },
                        Some(other) => text.push(other),
                    }
                }
                out.push(Token::Literal(Value::Text(text)));
            }
            '`' => {
                chars.next();
                let text: String = chars.by_ref().take_while(|c| *c != '`').collect();
                out.push(Token::Literal(Value::Text(text)));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "|()\"`".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                match word.parse::<i64>() {
                    Ok(number) => out.push(Token::Literal(Value::Number(number))),
                    Err(_) if word == "true" || word == "false" => {
                        out.push(Token::Literal(Value::Bool(word == "true")))
                    }
                    Err(_) => out.push(Token::Word(word)),
                }
            }
        }
    }
    Ok(out)
}

fn parse_pipeline(body: &str) -> Result<Pipeline, TemplateError> {
    let tokens = tokens(body)?;
    let mut position = 0;
    let pipeline = pipeline_of(&tokens, &mut position)?;
    if position < tokens.len() {
        return Err(TemplateError::Syntax(format!("unexpected ) in {{{{ {body} }}}}")));
    }
    Ok(pipeline)
}

fn pipeline_of(tokens: &[Token], position: &mut usize) -> Result<Pipeline, TemplateError> {
    let mut pipeline = vec![Vec::new()];
    while let Some(token) = tokens.get(*position) {
        let command = pipeline
            .last_mut()
            .ok_or_else(|| TemplateError::Syntax("empty pipeline".into()))?;
        match token {
            Token::Close => break,
            Token::Pipe => pipeline.push(Vec::new()),
            Token::Literal(value) => command.push(Operand::Literal(value.clone())),
            Token::Open => {
                *position += 1;
                let nested = pipeline_of(tokens, position)?;
                if !matches!(tokens.get(*position), Some(Token::Close)) {
                    return Err(TemplateError::Syntax("unclosed (".into()));
                }
                command.push(Operand::Nested(nested));
            }
            Token::Word(word) => command.push(name_operand(word)?),
        }
        *position += 1;
    }
    if pipeline.iter().any(Vec::is_empty) {
        return Err(TemplateError::Syntax("an empty command in a pipeline".into()));
    }
    Ok(pipeline)
}

fn name_operand(word: &str) -> Result<Operand, TemplateError> {
    if word.starts_with('$') {
        return Err(TemplateError::Unsupported(word.to_string()));
    }
    let mut parts = word.trim_start_matches('.').split('.');
    let name = parts.next().unwrap_or_default().to_string();
    if name.is_empty() {
        return Err(TemplateError::Unknown(word.to_string()));
    }
    Ok(Operand::Name(name, parts.map(String::from).collect()))
}

fn execute(nodes: &[Node], values: &TemplateValues, out: &mut String) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Output(pipeline) => out.push_str(&evaluate(pipeline, values)?.text()?),
            Node::If { branches, otherwise } => {
                let mut chosen = otherwise;
                for (condition, body) in branches {
                    if evaluate(condition, values)?.truthy() {
                        chosen = body;
                        break;
                    }
                }
                execute(chosen, values, out)?;
            }
        }
    }
    Ok(())
}

fn evaluate(pipeline: &Pipeline, values: &TemplateValues) -> Result<Value, TemplateError> {
    let mut piped: Option<Value> = None;
    for command in pipeline {
        piped = Some(call(command, piped.take(), values)?);
    }
    piped.ok_or_else(|| TemplateError::Syntax("an empty action".into()))
}

fn operand(operand: &Operand, values: &TemplateValues) -> Result<Value, TemplateError> {
    match operand {
        Operand::Literal(value) => Ok(value.clone()),
        Operand::Nested(pipeline) => evaluate(pipeline, values),
        Operand::Name(name, keys) => {
            let mut value = value_of(name, values)?;
            for key in keys {
                value = match value {
                    Value::Map(map) => Value::Text(
                        map.get(key)
                            .cloned()
                            .ok_or_else(|| TemplateError::MissingVariable(key.clone()))?,
                    ),
                    _ => return Err(TemplateError::Syntax(format!("{name} has no field {key}"))),
                };
            }
            Ok(value)
        }
    }
}

fn value_of(name: &str, values: &TemplateValues) -> Result<Value, TemplateError> {
    let text = match name {
        "name" => values.name,
        "namespace" => values.namespace,
        "target" => values.target,
        "service" => values.service,
        "ingress" => values.ingress,
        "route" => values.route,
        "interval" => values.interval,
        "variables" => return Ok(Value::Map(values.variables.clone())),
        other => return Err(TemplateError::Unknown(other.to_string())),
    };
    Ok(Value::Text(text.to_string()))
}

const BUILTINS: [&str; 9] = ["index", "printf", "print", "len", "not", "and", "or", "eq", "ne"];

fn call(command: &Command, piped: Option<Value>, values: &TemplateValues) -> Result<Value, TemplateError> {
    let (first, rest) = command
        .split_first()
        .ok_or_else(|| TemplateError::Syntax("an empty command".into()))?;
    let builtin = match first {
        Operand::Name(name, keys) if keys.is_empty() && BUILTINS.contains(&name.as_str()) => Some(name.as_str()),
        _ => None,
    };
    let Some(builtin) = builtin else {
        if !rest.is_empty() || piped.is_some() {
            return Err(TemplateError::Syntax("only functions take arguments".into()));
        }
        return operand(first, values);
    };
    let mut args = rest
        .iter()
        .map(|arg| operand(arg, values))
        .collect::<Result<Vec<_>, _>>()?;
    args.extend(piped);
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(TemplateError::Syntax(format!(
                "{builtin} takes {n} arguments, got {}",
                args.len()
            )))
        }
    };
    match builtin {
        "index" => {
            arity(2)?;
            match (&args[0], args[1].text()?) {
                // Go's index returns the zero value for a missing key, even with missingkey=error.
                (Value::Map(map), key) => Ok(Value::Text(map.get(&key).cloned().unwrap_or_default())),
                _ => Err(TemplateError::Syntax("index needs variables and a key".into())),
            }
        }
        "printf" => {
            let (format, rest) = args
                .split_first()
                .ok_or_else(|| TemplateError::Syntax("printf needs a format".into()))?;
            printf(&format.text()?, rest).map(Value::Text)
        }
        "print" => Ok(Value::Text(
            args.iter().map(Value::text).collect::<Result<Vec<_>, _>>()?.concat(),
        )),
        "len" => {
            arity(1)?;
            let length = match &args[0] {
                Value::Map(map) => map.len(),
                other => other.text()?.len(),
            };
            Ok(Value::Number(i64::try_from(length).unwrap_or(i64::MAX)))
        }
        "not" => {
            arity(1)?;
            Ok(Value::Bool(!args[0].truthy()))
        }
        "and" => Ok(args
            .iter()
            .find(|v| !v.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Bool(true))),
        "or" => Ok(args
            .iter()
            .find(|v| v.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Bool(false))),
        "eq" | "ne" => {
            arity(2)?;
            let equal = args[0] == args[1];
            Ok(Value::Bool(if builtin == "eq" { equal } else { !equal }))
        }
        other => Err(TemplateError::Unknown(other.to_string())),
    }
}

fn printf(format: &str, args: &[Value]) -> Result<String, TemplateError> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars.next();
        if verb == Some('%') {
            out.push('%');
            continue;
        }
        let arg = args
            .next()
            .ok_or_else(|| TemplateError::Syntax(format!("printf {format:?} has too few arguments")))?;
        match verb {
            Some('s' | 'v' | 'd') => out.push_str(&arg.text()?),
            Some('q') => out.push_str(&format!("{:?}", arg.text()?)),
            other => {
                return Err(TemplateError::Syntax(format!(
                    "printf verb %{} is not supported; use %s, %v, %d or %q",
                    other.unwrap_or(' ')
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TemplateValues<'static> {
        TemplateValues {
            name: "podinfo",
            namespace: "test",
            target: "podinfo",
            service: "podinfo-svc",
            interval: "1m",
            variables: BTreeMap::from([
                ("quantile".to_string(), "0.99".to_string()),
                ("env".to_string(), "prod".to_string()),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn renders_what_flagger_users_write() {
        let cases = [
            (
                r#"histogram_quantile({{ variables.quantile }}, rate(x{ns="{{ namespace }}",pod=~"{{ target }}-.*"}[{{ interval }}]))"#,
                r#"histogram_quantile(0.99, rate(x{ns="test",pod=~"podinfo-.*"}[1m]))"#,
            ),
            ("a  {{- namespace -}}  b", "atestb"),
            ("a\n  {{- namespace }}\n  b", "atest\n  b"),
            ("{{/* a comment */}}x", "x"),
            ("{{ target | printf \"%s-[0-9a-z]+\" }}", "podinfo-[0-9a-z]+"),
            ("{{ printf \"%s.%s\" service namespace }}", "podinfo-svc.test"),
            (
                "{{ index variables \"env\" }}|{{ index variables \"nope\" }}|",
                "prod||",
            ),
            ("{{ if eq variables.env \"prod\" }}p{{ else }}s{{ end }}", "p"),
            (
                "{{ if eq (index variables \"x\") \"1\" }}a{{ else if ingress }}b{{ else }}c{{ end }}",
                "c",
            ),
            ("{{ if not ingress -}} no ingress {{- end }}", "no ingress"),
            ("{{ .target }}", "podinfo"),
            ("{{ print name \"-\" 3 }}", "podinfo-3"),
            ("{{ len variables }}", "2"),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, &values()).as_deref(), Ok(expected), "{template}");
        }
    }

    #[test]
    fn refuses_the_rest_with_a_message() {
        let cases = [
            ("{{ nope }}", TemplateError::Unknown("nope".into())),
            (
                "{{ variables.missing }}",
                TemplateError::MissingVariable("missing".into()),
            ),
            ("x {{ namespace", TemplateError::Unclosed),
            (
                "{{ range variables }}x{{ end }}",
                TemplateError::Unsupported("range".into()),
            ),
            ("{{ $x := 1 }}", TemplateError::Unsupported("$x".into())),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, &values()), Err(expected), "{template}");
        }
        for broken in [
            "{{ if name }}x",
            "{{ end }}",
            "{{ printf \"%x\" name }}",
            "{{ variables }}",
            "{{ (name }}",
        ] {
            assert!(
                matches!(render(broken, &values()), Err(TemplateError::Syntax(_))),
                "{broken}: {:?}",
                render(broken, &values())
            );
        }
    }
}
