//! TEMPORARY in-memory stand-in; the durable store replaces this file.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A stored message.
pub struct Mail {
    /// Sender.
    pub from: String,
    /// Text.
    pub text: String,
}
/// Outcome of compose.
pub enum Composed {
    /// Stored.
    Stored,
    /// Mailbox full.
    Full,
}
/// Stand-in store.
#[derive(Clone)]
pub struct MailStore {
    boxes: Arc<Mutex<HashMap<String, VecDeque<Mail>>>>,
    cap: usize,
}
impl MailStore {
    /// Opens.
    pub fn open(_dir: &std::path::Path, cap: usize) -> std::io::Result<MailStore> {
        Ok(MailStore { boxes: Arc::default(), cap })
    }
    /// Count.
    pub fn count(&self, user: &str) -> usize {
        self.boxes.lock().map(|b| b.get(user).map_or(0, |q| q.len())).unwrap_or(0)
    }
    /// Compose.
    pub async fn compose(&self, to: &str, from: &str, text: &str) -> std::io::Result<Composed> {
        let mut b = self.boxes.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let q = b.entry(to.to_owned()).or_default();
        if q.len() >= self.cap {
            return Ok(Composed::Full);
        }
        q.push_back(Mail { from: from.into(), text: text.into() });
        Ok(Composed::Stored)
    }
    /// Read.
    pub async fn read(&self, user: &str) -> std::io::Result<Option<Mail>> {
        let mut b = self.boxes.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        Ok(b.get_mut(user).and_then(|q| q.pop_front()))
    }
    /// Close.
    pub fn close(&self) {}
}
