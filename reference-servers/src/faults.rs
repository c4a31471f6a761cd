//! What the reference servers' and clients' `fault` options share: reading a list of fault names.

/// The faults named in `text` (comma-separated, spaces around names allowed), looked up in
/// `table`; an unknown name is refused with every name the table knows.
pub(crate) fn parse_names<F: Copy>(text: &str, table: &[(&str, F)]) -> Result<Vec<F>, String> {
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
        match table.iter().find(|(known, _)| *known == name) {
            Some(&(_, fault)) => out.push(fault),
            None => {
                let known: Vec<&str> = table.iter().map(|(known, _)| *known).collect();
                return Err(format!("unknown fault {name:?}; the faults are {}", known.join(", ")));
            }
        }
    }
    Ok(out)
}
