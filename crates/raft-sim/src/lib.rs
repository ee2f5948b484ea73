//! raft-sim (skeleton; see the issues).
