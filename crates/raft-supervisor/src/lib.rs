//! raft-supervisor (skeleton; see the issues).
