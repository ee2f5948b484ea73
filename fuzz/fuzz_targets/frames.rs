//! A connection's bytes through next_frame, FrameReader and FramedConn, each frame decoded as every top-level type.
//! A thin wrapper: the proptests of the crate run the same function on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    raft_wire::fuzz::frames(data);
});
