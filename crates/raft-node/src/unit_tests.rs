//! Unit tests of the node's pieces that need no cluster: what the node's connection adds
//! to raft-wire's framed one, the event log's line format.

use crate::conn::{Conn, Kind, ReadOutcome};
use crate::eventlog::{EventLog, LogTarget};
use mio::net::UnixStream;
use raft_wire::{ClientRequest, Request};
use std::io::Read;

/// The framing, the output bound and the read budget are raft-wire's
/// (`raft_wire::conn`, tested there); what the node adds is that nothing is written
/// while an outbound connect is still in progress.
#[test]
fn nothing_is_flushed_while_connecting() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let mut tx = Conn::new(raft_transport::Stream::Unix(UnixStream::from_std(a)), Kind::PeerOut(2));
    let mut rx = Conn::new(raft_transport::Stream::Unix(UnixStream::from_std(b)), Kind::Client);
    tx.connecting = true;
    tx.queue(&ClientRequest { id: 1, body: Request::Status }).unwrap();
    tx.flush().unwrap();
    assert!(tx.queued_bytes() > 0, "held back while connecting");
    tx.connecting = false;
    tx.flush().unwrap();
    assert_eq!(tx.queued_bytes(), 0);
    assert_eq!(rx.read_available(&mut [0u8; 64], usize::MAX).unwrap(), ReadOutcome::Open);
    assert_eq!(rx.reader.next_frame::<ClientRequest>().unwrap().map(|r| r.id), Some(1));
}

#[test]
fn event_lines_carry_time_node_and_term() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.log");
    let mut log = EventLog::open(3, &LogTarget::File(path.clone())).unwrap();
    log.line(7, format_args!("became leader term=7"));
    let mut text = String::new();
    std::fs::File::open(&path).unwrap().read_to_string(&mut text).unwrap();
    let fields: Vec<&str> = text.trim_end().splitn(4, ' ').collect();
    assert_eq!(fields.len(), 4, "{text}");
    let t = fields[0];
    assert_eq!(t.len(), "YYYY-MM-DDTHH:MM:SS.uuuuuuZ".len(), "{t}");
    assert_eq!((&t[4..5], &t[10..11], &t[13..14], &t[19..20], &t[26..]), ("-", "T", ":", ".", "Z"));
    assert_eq!(&fields[1..], ["n3", "t7", "became leader term=7"]);
}

#[test]
fn timestamps_are_rfc3339_utc_with_microseconds() {
    use crate::eventlog::format_timestamp;
    assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
    // 2024-02-29 (a leap day) 23:59:59.999999, and the microsecond after it.
    assert_eq!(format_timestamp(1_709_251_199_999_999), "2024-02-29T23:59:59.999999Z");
    assert_eq!(format_timestamp(1_709_251_200_000_000), "2024-03-01T00:00:00.000000Z");
    assert_eq!(format_timestamp(1_796_083_200_000_123), "2026-12-01T00:00:00.000123Z");
}
