//! YAML with positions: parsing, `$(...)` expansion in place, and schema errors.

use std::ops::Deref;
use std::path::Path;

use marked_yaml::{LoaderOptions, Node};

use super::line_of;
use crate::error::{LoadError, LoadErrorKind, SubstError};
use crate::subst::{substitute, SubstContext};

/// A serde error of the schema, with its position and key path.
pub(super) fn schema_error(
    path: &Path,
    error: marked_yaml::FromNodeError,
    prefix: &str,
) -> LoadError {
    let line = error.start_mark().map(|m| m.line());
    let key = match (prefix, error.path()) {
        ("", inner) => inner.unwrap_or("").to_owned(),
        (prefix, None | Some("") | Some(".")) => prefix.to_owned(),
        (prefix, Some(inner)) => format!("{prefix}.{inner}"),
    };
    let message = match error.deref() {
        marked_yaml::Error::UnknownFieldError(field, expected, _) => format!(
            "unknown key `{field}` (expected one of: {})",
            expected.join(", ")
        ),
        other => other.to_string(),
    };
    LoadError::new(path, LoadErrorKind::Schema(message)).at(line, key)
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Node, LoadError> {
    use marked_yaml::LoadError as Y;
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| {
        let (line, message) = match &e {
            Y::TopLevelMustBeMapping(m) => {
                (Some(m.line()), "the top level must be a mapping".to_owned())
            }
            Y::TopLevelMustBeSequence(m) => (
                Some(m.line()),
                "the top level must be a sequence".to_owned(),
            ),
            Y::UnexpectedAnchor(m) => (
                Some(m.line()),
                "anchors and aliases are not supported".to_owned(),
            ),
            Y::MappingKeyMustBeScalar(m) => {
                (Some(m.line()), "mapping keys must be scalars".to_owned())
            }
            Y::UnexpectedTag(m) => (Some(m.line()), "YAML tags are not supported".to_owned()),
            Y::ScanError(m, scan) => (Some(m.line()), scan.info().to_owned()),
            Y::DuplicateKey(inner) => (
                line_of(inner.key.span()),
                format!(
                    "duplicate key `{}` (first at line {})",
                    inner.key.as_str(),
                    line_of(inner.prev_key.span()).unwrap_or(0)
                ),
            ),
        };
        LoadError::new(path, LoadErrorKind::Syntax(message)).at(line, "")
    })
}

pub(super) fn walk_substitute(
    node: &mut Node,
    key: &str,
    ctx: &SubstContext<'_>,
) -> Result<(), (Option<usize>, String, SubstError)> {
    match node {
        Node::Scalar(scalar) => {
            if scalar.as_str().contains("$(") {
                let expanded = substitute(scalar.as_str(), ctx)
                    .map_err(|e| (line_of(scalar.span()), key.to_owned(), e))?;
                let may_coerce = scalar.may_coerce();
                let mut replaced =
                    marked_yaml::types::MarkedScalarNode::new(*scalar.span(), expanded);
                replaced.set_coerce(may_coerce);
                *scalar = replaced;
            }
            Ok(())
        }
        Node::Sequence(seq) => seq
            .iter_mut()
            .enumerate()
            .try_for_each(|(i, item)| walk_substitute(item, &format!("{key}[{i}]"), ctx)),
        Node::Mapping(map) => map
            .iter_mut()
            .try_for_each(|(k, v)| walk_substitute(v, &format!("{key}.{}", k.as_str()), ctx)),
    }
}
