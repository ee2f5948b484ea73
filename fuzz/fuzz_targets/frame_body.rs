//! One frame body decoded as every top-level type (hello, client request/response, raft-core Message, node status, supervisor request/response).
//! A thin wrapper: the proptests of the crate run the same function on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    raft_wire::fuzz::body(data);
});
