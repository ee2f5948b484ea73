//! The operations clients ask of the state machine, their replies, and the limits that
//! make an operation valid. They live here, with the state machine that executes them;
//! `raft-wire` carries them in its requests and re-exports them.

use serde::{Deserialize, Serialize};

/// Writes, replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    Set {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Set `key` to `new` if its current value is `expected` (`None`: the key is absent).
    Cas {
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    },
}

/// Reads, served by the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadOp {
    Get {
        key: String,
    },
    /// Keys starting with `prefix`, sorted, at most `limit`.
    Keys {
        prefix: String,
        limit: u32,
    },
}

/// What the state machine answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A set succeeded.
    Done,
    /// A delete; `existed` says whether the key was there.
    Deleted { existed: bool },
    /// A cas: `ok` if it swapped; `current` is the value it found.
    Cas { ok: bool, current: Option<Vec<u8>> },
    /// A get.
    Value(Option<Vec<u8>>),
    /// A keys listing.
    Keys(Vec<String>),
}

/// Maximum key length in bytes: keeps entries and listings bounded.
pub const MAX_KEY_BYTES: usize = 4096;
/// Maximum value length in bytes: one value must fit comfortably in one append.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;
/// Maximum keys in one listing: one reply must fit in one frame.
pub const MAX_KEYS_PER_LISTING: u32 = 10_000;

impl WriteOp {
    /// The key this write touches.
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Set { key, .. } | WriteOp::Delete { key } | WriteOp::Cas { key, .. } => key,
        }
    }

    /// Checks the key and value limits; the error says what is wrong in one line. Every
    /// node checks a write here before it proposes it, so nothing over a limit reaches
    /// the log.
    pub fn validate(&self) -> Result<(), String> {
        let values: &[usize] = match self {
            WriteOp::Set { value, .. } => &[value.len()],
            WriteOp::Delete { .. } => &[],
            WriteOp::Cas { expected, new, .. } => &[expected.as_ref().map_or(0, Vec::len), new.len()],
        };
        let key = self.key();
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(format!("key must be 1 to {MAX_KEY_BYTES} bytes, got {}", key.len()));
        }
        if let Some(v) = values.iter().copied().find(|&v| v > MAX_VALUE_BYTES) {
            return Err(format!("value of {v} bytes is over the limit of {MAX_VALUE_BYTES}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_over_the_limits_are_refused_with_a_reason() {
        let ok = WriteOp::Set { key: "k".into(), value: vec![0; MAX_VALUE_BYTES] };
        assert!(WriteOp::validate(&ok).is_ok());
        let empty_key = WriteOp::Delete { key: String::new() };
        assert!(WriteOp::validate(&empty_key).unwrap_err().contains("key must be"));
        let long_key = WriteOp::Delete { key: "k".repeat(MAX_KEY_BYTES + 1) };
        assert!(WriteOp::validate(&long_key).is_err());
        let big = WriteOp::Cas { key: "k".into(), expected: None, new: vec![0; MAX_VALUE_BYTES + 1] };
        assert!(WriteOp::validate(&big).unwrap_err().contains("over the limit"));
        let big_expected = WriteOp::Cas { key: "k".into(), expected: Some(vec![0; MAX_VALUE_BYTES + 1]), new: vec![] };
        assert!(WriteOp::validate(&big_expected).is_err());
    }
}
