//! Flagger's flags are written with one dash (`-mesh-provider=istio`); clap wants two for long
//! flags. Rewriting `-name...` to `--name...` lets existing Flagger deployments pass their
//! arguments unchanged, while one-letter short flags (`-h`, `-V`) keep working.

use std::ffi::OsString;

pub fn with_double_dashes(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| match arg.to_str() {
            Some(text) if is_single_dash_long_flag(text) => OsString::from(format!("-{text}")),
            _ => arg,
        })
        .collect()
}

fn is_single_dash_long_flag(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix('-') else {
        return false;
    };
    let name = rest.split('=').next().unwrap_or_default();
    !rest.starts_with('-') && name.len() > 1 && name.starts_with(|c: char| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_single_dash_long_flags_only() {
        let args = [
            "serin",
            "operator",
            "-mesh-provider=istio",
            "--log-level",
            "debug",
            "-h",
            "-namespace",
            "test",
            "-1",
        ];
        let rewritten: Vec<String> = with_double_dashes(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            rewritten,
            [
                "serin",
                "operator",
                "--mesh-provider=istio",
                "--log-level",
                "debug",
                "-h",
                "--namespace",
                "test",
                "-1"
            ]
        );
    }
}
