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

/// The faults switched on, one bit per fault: `F as u32` (through `Into<u32>`) is its bit.
pub(crate) struct Set<F>(u64, std::marker::PhantomData<F>);

impl<F: Copy + Into<u32>> Set<F> {
    /// The faults named in `text` (as [`parse_names`] reads it).
    pub(crate) fn parse(text: &str, table: &[(&str, F)]) -> Result<Set<F>, String> {
        let bits = parse_names(text, table)?.into_iter().fold(0u64, |bits, f| bits | 1 << f.into());
        Ok(Set(bits, std::marker::PhantomData))
    }

    /// Whether `fault` is on.
    pub(crate) fn has(self, fault: F) -> bool {
        self.0 & (1 << fault.into()) != 0
    }
}

// By hand: derived impls would ask the same of `F`, which only names the bits.
impl<F> Clone for Set<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for Set<F> {}
impl<F> Default for Set<F> {
    fn default() -> Self {
        Set(0, std::marker::PhantomData)
    }
}
impl<F> PartialEq for Set<F> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<F> Eq for Set<F> {}
impl<F> std::fmt::Debug for Set<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faults({:#x})", self.0)
    }
}
