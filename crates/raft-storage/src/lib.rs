//! raft-storage (skeleton; see the issues).
