//! raft-kv (skeleton; see the issues).
