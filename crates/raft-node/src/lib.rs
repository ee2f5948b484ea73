//! raft-node (skeleton; see the issues).
