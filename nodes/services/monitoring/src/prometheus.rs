//! The Prometheus text format: reading a service's `/metrics` (what the
//! evospike-http kit writes) and writing every series monitoring holds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// The samples of a text exposition; comment and malformed lines are skipped.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (head, BTreeMap::new()),
    };
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.trim().trim_start_matches(',').trim().to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',').trim();
    }
    Some(labels)
}

/// A metric name as Prometheus allows it: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn metric_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one sample line.
pub(crate) fn write_sample(
    out: &mut String,
    name: &str,
    labels: &BTreeMap<String, String>,
    value: f64,
) {
    let _ = write!(out, "{}", metric_name(name));
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}=\"{}\"", metric_name(k), escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_kit_writes_and_writes_what_it_reads() {
        let text = "# HELP x y\nhttp_requests_total{service=\"registry\",method=\"GET\",route=\"/models/{id}\",status=\"200\"} 7\nup 1\nbad line\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].name, "http_requests_total");
        assert_eq!(samples[0].labels["route"], "/models/{id}");
        assert_eq!(samples[0].labels["status"], "200");
        assert_eq!(samples[0].value, 7.0);
        let mut out = String::new();
        write_sample(&mut out, "steps-per s", &samples[0].labels, 2.5);
        assert!(out.starts_with("steps_per_s{method=\"GET\""), "{out}");
        assert_eq!(parse(&out)[0].labels, samples[0].labels);
        let quoted = parse("m{a=\"x\\\"y\",b=\"z\"} 1");
        assert_eq!(quoted[0].labels["a"], "x\"y");
        assert_eq!(quoted[0].labels["b"], "z");
    }
}
