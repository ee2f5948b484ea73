//! raft-cli (skeleton; see the issues).
