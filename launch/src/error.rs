//! Errors of loading a launch file and of supervising its nodes.
//!
//! A [`LoadError`] always says *where*: the file, the line when one is known,
//! and the key path inside the document (`nodes[2].respawn`), so that a user can
//! jump straight to the mistake. Its [`LoadErrorKind`] says *what*.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A launch file (or a file it refers to) is unreadable or invalid.
///
/// Displays as `FILE:LINE: KEY: MESSAGE`, leaving out the parts that are not known.
#[derive(Debug, thiserror::Error)]
pub struct LoadError {
    /// The file the mistake is in, as the user (or the including file) named it.
    pub file: PathBuf,
    /// 1-based line of the mistake, when known.
    pub line: Option<usize>,
    /// Key path of the mistake inside the document, e.g. `nodes[2].respawn`.
    pub key: Option<String>,
    /// What is wrong. (Already part of the message, so not reported as a source.)
    pub kind: LoadErrorKind,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl LoadError {
    pub(crate) fn new(file: impl Into<PathBuf>, kind: LoadErrorKind) -> Self {
        LoadError {
            file: file.into(),
            line: None,
            key: None,
            kind,
        }
    }

    pub(crate) fn at(mut self, line: Option<usize>, key: impl Into<String>) -> Self {
        self.line = line;
        let key = key.into();
        self.key = (!key.is_empty()).then_some(key);
        self
    }
}

/// Everything [`load`](crate::load) found wrong with a launch: the first problem
/// with its structure, or every problem with the parameters of its `kind:` nodes.
///
/// Displays one [`LoadError`] per line.
#[derive(Debug, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl LoadErrors {
    /// The first problem.
    pub fn first(&self) -> Option<&LoadError> {
        self.0.first()
    }

    /// Every problem.
    pub fn iter(&self) -> impl Iterator<Item = &LoadError> {
        self.0.iter()
    }
}

impl From<LoadError> for LoadErrors {
    fn from(error: LoadError) -> Self {
        LoadErrors(vec![error])
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// What is wrong with a launch file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Io(#[source] io::Error),
    /// The text is not YAML (or breaks one of the loader's rules, e.g. uses anchors).
    #[error("invalid YAML: {0}")]
    Syntax(String),
    /// A key, a type or a value does not fit the launch-file schema.
    #[error("{0}")]
    Schema(String),
    /// A `$(...)` substitution is malformed or names an unknown command.
    #[error("bad substitution: {0}")]
    Substitution(#[from] SubstError),
    /// `--arg`/`include.args` set an argument the file does not declare.
    #[error("unknown arg `{name}` (declared args: {declared})")]
    UnknownArg {
        /// The argument given.
        name: String,
        /// The args the file declares, comma-separated.
        declared: String,
    },
    /// An argument without a default was not given a value.
    #[error("arg `{name}` has no default and was not given (pass --arg {name}=VALUE)")]
    MissingArg {
        /// The argument's name.
        name: String,
    },
    /// A file includes itself, directly or through others.
    #[error("include cycle: {chain}")]
    IncludeCycle {
        /// The chain of files, `a.yaml -> b.yaml -> a.yaml`.
        chain: String,
    },
    /// Two nodes share a name.
    #[error("duplicate node name `{name}` (first defined at {first})")]
    DuplicateNode {
        /// The name.
        name: String,
        /// `file:line` of the first definition.
        first: String,
    },
    /// `depends_on` names a node that does not exist.
    #[error("unknown node `{name}` in depends_on (nodes: {known})")]
    UnknownDependency {
        /// The missing name.
        name: String,
        /// Known node names, comma-separated.
        known: String,
    },
    /// `depends_on` forms a cycle.
    #[error("depends_on cycle: {chain}")]
    DependencyCycle {
        /// The chain of nodes, `a -> b -> a`.
        chain: String,
    },
    /// An `exec:` program does not exist or is not executable.
    #[error("executable `{program}` not found (looked in: {searched})")]
    ExecutableNotFound {
        /// The program as written.
        program: String,
        /// Where it was looked for.
        searched: String,
    },
    /// A `kind:` node needs the evospike executable, and none was given.
    #[error(
        "node kind `{kind}` is started as `evospike run {kind}`, but the evospike executable is \
         unknown (the launching program gives it in LoadOptions::evospike_exe)"
    )]
    NoEvospikeExe {
        /// The node kind.
        kind: String,
    },
    /// `kind:` names no node kind the launching program knows.
    #[error("unknown node kind `{kind}` (kinds: {known})")]
    UnknownKind {
        /// The kind as written.
        kind: String,
        /// The kinds there are, comma-separated.
        known: String,
    },
    /// A `kind:` node's parameters break the kind's rules (the message names
    /// node, key and value).
    #[error("{0}")]
    NodeParams(Box<dyn std::error::Error + Send + Sync>),
    /// `--machine M` selects no node.
    #[error("no node is labelled with machine `{machine}` (labels in this launch: {known})")]
    UnknownMachine {
        /// The machine asked for.
        machine: String,
        /// Labels present, comma-separated.
        known: String,
    },
}

/// A `$(...)` substitution could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubstError {
    /// `$(` without a closing `)`.
    #[error("unterminated `$(` in `{text}`")]
    Unterminated {
        /// The whole text.
        text: String,
    },
    /// A command other than arg, env, dirname, find-exe.
    #[error("unknown substitution `$({command})` (expected one of: arg, env, dirname, find-exe)")]
    UnknownCommand {
        /// The command word.
        command: String,
    },
    /// A command with the wrong number of words.
    #[error("`$({text})`: {usage}")]
    Usage {
        /// The text inside `$( )`.
        text: String,
        /// How the command is used.
        usage: &'static str,
    },
    /// `$(arg x)` for an undeclared or not-yet-defined argument.
    #[error("undefined arg `{name}` in `$(arg {name})`")]
    UndefinedArg {
        /// The name.
        name: String,
    },
    /// `$(env X)` for an unset variable without default.
    #[error("environment variable `{name}` is not set and `$(env {name})` has no default")]
    UnsetEnv {
        /// The variable.
        name: String,
    },
    /// `$(find-exe NAME)` found nothing on PATH.
    #[error("`$(find-exe {name})`: no executable `{name}` on PATH")]
    ExeNotFound {
        /// The name.
        name: String,
    },
}

/// The supervisor could not run at all (as opposed to nodes failing, which is
/// reported in the [`Outcome`](crate::Outcome)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuperviseError {
    /// The log directory could not be created.
    #[error("cannot create log directory {path}: {source}")]
    LogDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The async runtime or a signal handler could not be set up.
    #[error("cannot set up the supervisor runtime: {0}")]
    Runtime(#[source] io::Error),
}
