//! raft-config (skeleton; see the issues).
