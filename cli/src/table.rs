//! Plain-text tables for a terminal: the first column left-aligned, the others right-aligned.

use std::fmt::Write as _;

/// `headers` over `rows`, each column as wide as its widest cell, two spaces between.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .filter_map(|row| row.get(i).map(String::len))
                .chain([headers[i].len()])
                .max()
                .unwrap_or_default()
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let table = super::render(&["stop", "in"], &[vec!["sink".into(), "1200".into()]]);
        assert_eq!(table, "stop    in\nsink  1200\n");
    }
}
