//! `$(...)` substitutions inside launch-file values.
//!
//! | text                   | becomes                                                   |
//! |------------------------|-----------------------------------------------------------|
//! | `$(arg x)`             | the value of launch argument `x` (error if undefined)     |
//! | `$(env X)`             | environment variable `X` (error if unset)                 |
//! | `$(env X some text)`   | `X`, or `some text` when `X` is unset                     |
//! | `$(dirname)`           | absolute folder of the file being read                    |
//! | `$(find-exe NAME)`     | absolute path of `NAME` found on `PATH` (error if absent) |
//! | `$$(`                  | a literal `$(`                                            |
//!
//! Substitutions do not nest; the result of one is not expanded again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::SubstError;

/// Everything a substitution may look at.
pub(crate) struct SubstContext<'a> {
    /// Launch arguments defined so far.
    pub(crate) args: &'a BTreeMap<String, String>,
    /// Absolute folder of the file being read.
    pub(crate) dir: &'a Path,
    /// Environment lookup (a function so that tests need not touch the process env).
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
}

/// Expands every `$(...)` in `text`.
pub(crate) fn substitute(text: &str, ctx: &SubstContext<'_>) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("$(") {
        if rest[..pos].ends_with('$') {
            // `$$(` is an escaped literal `$(`.
            out.push_str(&rest[..pos - 1]);
            out.push_str("$(");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after.find(')').ok_or_else(|| SubstError::Unterminated {
            text: text.to_owned(),
        })?;
        out.push_str(&expand_one(&after[..end], ctx)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn expand_one(inner: &str, ctx: &SubstContext<'_>) -> Result<String, SubstError> {
    let words: Vec<&str> = inner.split_whitespace().collect();
    let usage = |usage| SubstError::Usage {
        text: inner.to_owned(),
        usage,
    };
    match words.as_slice() {
        ["arg", name] => ctx
            .args
            .get(*name)
            .cloned()
            .ok_or_else(|| SubstError::UndefinedArg {
                name: (*name).to_owned(),
            }),
        ["arg", ..] => Err(usage("use `$(arg NAME)`")),
        ["env", name] => (ctx.env)(name).ok_or_else(|| SubstError::UnsetEnv {
            name: (*name).to_owned(),
        }),
        ["env", name, ..] => {
            // The default is everything after the name, with its inner spacing kept.
            let default = inner
                .trim_start()
                .strip_prefix("env")
                .map(str::trim_start)
                .and_then(|s| s.strip_prefix(*name))
                .map(str::trim)
                .unwrap_or_default();
            Ok((ctx.env)(name).unwrap_or_else(|| default.to_owned()))
        }
        ["env"] => Err(usage("use `$(env NAME)` or `$(env NAME DEFAULT)`")),
        ["dirname"] => Ok(ctx.dir.display().to_string()),
        ["dirname", ..] => Err(usage("`$(dirname)` takes no argument")),
        ["find-exe", name] => find_on_path(name, ctx)
            .map(|p| p.display().to_string())
            .ok_or_else(|| SubstError::ExeNotFound {
                name: (*name).to_owned(),
            }),
        ["find-exe", ..] => Err(usage("use `$(find-exe NAME)`")),
        [command, ..] => Err(SubstError::UnknownCommand {
            command: (*command).to_owned(),
        }),
        [] => Err(SubstError::UnknownCommand {
            command: String::new(),
        }),
    }
}

fn find_on_path(name: &str, ctx: &SubstContext<'_>) -> Option<PathBuf> {
    let path = (ctx.env)("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file with an execute bit set.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, SubstError> {
        let args = BTreeMap::from([("rate".to_owned(), "100".to_owned())]);
        let env = |name: &str| match name {
            "HOME" => Some("/home/me".to_owned()),
            "PATH" => Some("/bin:/usr/bin".to_owned()),
            _ => None,
        };
        let ctx = SubstContext {
            args: &args,
            dir: Path::new("/etc/launch"),
            env: &env,
        };
        substitute(text, &ctx)
    }

    #[test]
    fn expands_arg_env_and_dirname() {
        assert_eq!(run("r=$(arg rate)Hz").unwrap(), "r=100Hz");
        assert_eq!(run("$(env HOME)/x").unwrap(), "/home/me/x");
        assert_eq!(run("$(dirname)/a.yaml").unwrap(), "/etc/launch/a.yaml");
        assert_eq!(run("no substitution").unwrap(), "no substitution");
    }

    #[test]
    fn env_default_keeps_inner_spacing() {
        assert_eq!(
            run("$(env NOPE tcp/127.0.0.1:7447)").unwrap(),
            "tcp/127.0.0.1:7447"
        );
        assert_eq!(run("$(env NOPE a  b)").unwrap(), "a  b");
        assert_eq!(run("$(env HOME fallback)").unwrap(), "/home/me");
    }

    #[test]
    fn escaped_dollar_is_literal() {
        assert_eq!(run("$$(arg rate) $(arg rate)").unwrap(), "$(arg rate) 100");
    }

    #[test]
    fn find_exe_searches_path() {
        assert_eq!(run("$(find-exe sh)").unwrap(), "/bin/sh");
        assert_eq!(
            run("$(find-exe surely-not-a-program-xyz)"),
            Err(SubstError::ExeNotFound {
                name: "surely-not-a-program-xyz".into()
            })
        );
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(
            run("$(arg nope)"),
            Err(SubstError::UndefinedArg {
                name: "nope".into()
            })
        );
        assert_eq!(
            run("$(env NOPE)"),
            Err(SubstError::UnsetEnv {
                name: "NOPE".into()
            })
        );
        assert_eq!(
            run("$(argh x)"),
            Err(SubstError::UnknownCommand {
                command: "argh".into()
            })
        );
        assert!(matches!(
            run("x $(arg rate"),
            Err(SubstError::Unterminated { .. })
        ));
        assert!(matches!(run("$(arg a b)"), Err(SubstError::Usage { .. })));
        assert!(matches!(run("$(dirname x)"), Err(SubstError::Usage { .. })));
        assert!(matches!(run("$()"), Err(SubstError::UnknownCommand { .. })));
    }
}
