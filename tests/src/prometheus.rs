//! Reading the Prometheus text that `/metrics` serves.

/// The value of the unlabelled series `name` (the whole name, e.g. `linegate_edge_forwarded_total`), if
/// the text has it.
pub fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
