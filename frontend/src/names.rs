//! Unique node and tensor names for a frontend: a source name as it is when free, else with
//! `_1`, `_2`, ... appended (exporters leave names empty or repeat them; Paddle variables are
//! written more than once).

use std::collections::HashSet;

#[derive(Default)]
pub(super) struct Names(HashSet<String>);

impl Names {
    /// `base`, or `base_1`, `base_2`, ... when taken; the result is taken from then on.
    pub fn unique(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 0;
        while self.0.contains(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        self.0.insert(name.clone());
        name
    }
}
