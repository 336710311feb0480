//! Sorting a screen's rows by one of its columns (shift + the column's first letter, as
//! in k9s, or `>` for the next column): sizes, counts and durations by their value,
//! the rest by their text; empty cells (`-`) last either way. Group headings keep
//! their place: the rows under each are sorted among themselves.

use std::cmp::Ordering;

use crate::app::Row;

/// How a screen's rows are sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: usize,
    pub descending: bool,
}

/// A cell's value for sorting: a number (sizes in bytes, durations in seconds, the
/// first number of `2/3`), or its text in lower case.
#[derive(Debug, PartialEq)]
enum Key {
    Number(f64),
    Text(String),
    Empty,
}

fn key(cell: &str) -> Key {
    let c = cell.trim().trim_end_matches(['+', '…']);
    if c.is_empty() || c == "-" || c == "—" {
        return Key::Empty;
    }
    let digits = c
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(c.len());
    let Ok(n) = c[..digits].parse::<f64>() else {
        return Key::Text(c.to_lowercase());
    };
    let rest = c[digits..].trim_start();
    let unit = rest.split(['/', ' ', ',']).next().unwrap_or("");
    let scale = match unit {
        "" => 1.0,
        "B" | "s" => 1.0,
        "K" | "Ki" | "KiB" | "k" => 1024.0,
        "M" | "Mi" | "MiB" => 1024f64.powi(2),
        "G" | "Gi" | "GiB" => 1024f64.powi(3),
        "T" | "Ti" | "TiB" => 1024f64.powi(4),
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        // `1h02m`, `3m05s`: the leading part is enough to order them.
        u if u.starts_with('h') => 3600.0,
        u if u.starts_with('m') && u.ends_with('s') => 60.0,
        // A version, a date, a name that starts with a digit: text.
        _ => return Key::Text(c.to_lowercase()),
    };
    Key::Number(n * scale)
}

fn compare(a: &Key, b: &Key) -> Ordering {
    match (a, b) {
        (Key::Number(x), Key::Number(y)) => x.total_cmp(y),
        (Key::Text(x), Key::Text(y)) => x.cmp(y),
        (Key::Number(_), Key::Text(_)) => Ordering::Less,
        (Key::Text(_), Key::Number(_)) => Ordering::Greater,
        (Key::Empty, Key::Empty) => Ordering::Equal,
        (Key::Empty, _) => Ordering::Greater,
        (_, Key::Empty) => Ordering::Less,
    }
}

/// `rows` sorted by `sort` (stable: equal cells keep their order), each group's rows
/// among themselves under their heading.
pub fn sorted(rows: &[Row], sort: Sort) -> Vec<Row> {
    let mut out = Vec::with_capacity(rows.len());
    let mut run: Vec<(Key, &Row)> = Vec::new();
    let flush = |run: &mut Vec<(Key, &Row)>, out: &mut Vec<Row>| {
        run.sort_by(|(a, _), (b, _)| {
            let empty = matches!(a, Key::Empty) || matches!(b, Key::Empty);
            let o = compare(a, b);
            // Empty cells stay last, whichever the direction.
            if sort.descending && !empty {
                o.reverse()
            } else {
                o
            }
        });
        out.extend(run.drain(..).map(|(_, r)| r.clone()));
    };
    for r in rows {
        if r.group {
            flush(&mut run, &mut out);
            out.push(r.clone());
        } else {
            let cell = r.cells.get(sort.column).map_or("", String::as_str);
            run.push((key(cell), r));
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.key.as_str()).collect()
    }

    #[test]
    fn sizes_counts_and_durations_sort_by_value_and_empty_cells_last() {
        assert_eq!(key("1.0 GiB"), Key::Number(1024f64.powi(3)));
        assert_eq!(key("512Mi"), Key::Number(512.0 * 1024f64.powi(2)));
        assert_eq!(key("2/3"), Key::Number(2.0));
        assert_eq!(key("4m48s"), Key::Number(4.0 * 60.0));
        assert_eq!(key("v1.33.0"), Key::Text("v1.33.0".into()));
        assert_eq!(
            key("2026-12-05 10:09:00"),
            Key::Text("2026-12-05 10:09:00".into())
        );
        assert_eq!(key("-"), Key::Empty);
        let rows = vec![
            Row::new("a", vec!["a".into(), "1.0 GiB".into()]),
            Row::new("b", vec!["b".into(), "-".into()]),
            Row::new("c", vec!["c".into(), "512.0 MiB".into()]),
            Row::new("d", vec!["d".into(), "3.0 GiB".into()]),
        ];
        let up = sorted(
            &rows,
            Sort {
                column: 1,
                descending: false,
            },
        );
        assert_eq!(names(&up), ["c", "a", "d", "b"]);
        let down = sorted(
            &rows,
            Sort {
                column: 1,
                descending: true,
            },
        );
        assert_eq!(names(&down), ["d", "a", "c", "b"]);
    }

    #[test]
    fn rows_are_sorted_within_their_group() {
        let rows = vec![
            Row::group("kubeconfig a".into()),
            Row::new("z", vec!["z".into()]),
            Row::new("y", vec!["y".into()]),
            Row::group("aws work".into()),
            Row::new("x", vec!["x".into()]),
            Row::new("w", vec!["w".into()]),
        ];
        let s = sorted(
            &rows,
            Sort {
                column: 0,
                descending: false,
            },
        );
        assert_eq!(
            names(&s),
            ["#group:kubeconfig a", "y", "z", "#group:aws work", "w", "x"]
        );
    }
}
