//! Plain text tables with aligned columns (the last column is never padded).

/// Renders `rows` under `headers`, columns separated by two spaces.
pub(crate) fn render(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            text.push_str(cell);
            if i < last {
                text.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        text
    };
    let mut lines = vec![line(headers.to_vec())];
    lines.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    lines
}

/// `a, b, c`, or `-` for none.
pub(crate) fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let joined = items
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if joined.is_empty() {
        "-".to_string()
    } else {
        joined
    }
}

/// A duration for humans: `4.2s`, `3m07s`, `2h05m`, `3d04h`.
pub(crate) fn duration(seconds: f64) -> String {
    let whole = seconds.max(0.0) as u64;
    match whole {
        0..60 => format!("{:.1}s", seconds.max(0.0)),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        3600..86400 => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
        _ => format!("{}d{:02}h", whole / 86400, whole % 86400 / 3600),
    }
}

/// A byte count for humans: `512 B`, `12.50 KB`, `3.10 MB` (powers of 1000, like `ros2 topic bw`).
pub(crate) fn bytes(value: f64) -> String {
    match value {
        v if v < 1e3 => format!("{v:.0} B"),
        v if v < 1e6 => format!("{:.2} KB", v / 1e3),
        v if v < 1e9 => format!("{:.2} MB", v / 1e6),
        v => format!("{:.2} GB", v / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let rows = vec![
            vec!["layer1/spikes".to_string(), "layer1".to_string()],
            vec!["x".to_string(), "-".to_string()],
        ];
        assert_eq!(
            render(&["TOPIC", "PUBLISHERS"], &rows),
            vec![
                "TOPIC          PUBLISHERS",
                "layer1/spikes  layer1",
                "x              -"
            ]
        );
    }

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(duration(4.25), "4.2s");
        assert_eq!(duration(187.0), "3m07s");
        assert_eq!(duration(7500.0), "2h05m");
        assert_eq!(duration(3.0 * 86400.0 + 4.0 * 3600.0), "3d04h");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(12_500.0), "12.50 KB");
        assert_eq!(bytes(3_100_000.0), "3.10 MB");
        assert_eq!(list(Vec::<String>::new()), "-");
        assert_eq!(list(["a", "b"]), "a, b");
    }
}
