//! TEMPORARY in-memory stand-in; the durable registry replaces this file.
/// Stand-in registry.
pub struct Registry {
    names: Vec<String>,
}
impl Registry {
    /// Loads.
    pub fn load(_dir: &std::path::Path) -> std::io::Result<(Registry, Vec<String>)> {
        Ok((Registry { names: Vec::new() }, Vec::new()))
    }
    /// Contains.
    pub fn contains(&self, m: &str) -> bool {
        self.names.iter().any(|n| n == m)
    }
    /// Insert.
    pub fn insert(&mut self, m: &protocol::Name<'_>) -> std::io::Result<bool> {
        if self.contains(m.as_str()) {
            return Ok(false);
        }
        self.names.push(m.as_str().to_owned());
        Ok(true)
    }
    /// Remove.
    pub fn remove(&mut self, m: &str) -> std::io::Result<bool> {
        let before = self.names.len();
        self.names.retain(|n| n != m);
        Ok(before != self.names.len())
    }
    /// Names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|s| s.as_str())
    }
}
