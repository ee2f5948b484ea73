//! Unit tests of the node's pieces that need no cluster: the
//! connection's framing and bounded output, the event log's line format.

use crate::conn::{Conn, Kind, ReadOutcome};
use crate::eventlog::{EventLog, LogTarget};
use mio::net::UnixStream;
use raft_wire::{ClientRequest, Request};
use std::io::Read;

#[test]
fn queued_frames_arrive_whole_and_in_order() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let mut tx = Conn::new(UnixStream::from_std(a), Kind::Client);
    let mut rx = Conn::new(UnixStream::from_std(b), Kind::Client);
    for id in 0..100u64 {
        tx.queue(&ClientRequest { id, body: Request::Status }).unwrap();
    }
    assert!(tx.queued_bytes() > 0);
    let mut scratch = vec![0u8; 7]; // tiny reads: frames arrive in pieces
    let mut got = Vec::new();
    while got.len() < 100 {
        tx.flush().unwrap();
        assert!(matches!(rx.read_available(&mut scratch, usize::MAX).unwrap(), ReadOutcome::Open));
        while let Some(req) = rx.reader.next_frame::<ClientRequest>().unwrap() {
            got.push(req.id);
        }
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(tx.queued_bytes(), 0);
}

#[test]
fn a_closed_peer_reads_as_closed() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    drop(a);
    let mut rx = Conn::new(UnixStream::from_std(b), Kind::Client);
    assert!(matches!(rx.read_available(&mut [0u8; 64], usize::MAX).unwrap(), ReadOutcome::Closed));
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
    assert_eq!(t.len(), "HH:MM:SS.mmm".len(), "{t}");
    assert_eq!((&t[2..3], &t[5..6], &t[8..9]), (":", ":", "."));
    assert_eq!(&fields[1..], ["n3", "t7", "became leader term=7"]);
}

#[test]
fn reads_stop_at_the_budget_and_say_there_is_more() {
    use std::io::Write;
    let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    a.write_all(&[7u8; 10_000]).unwrap();
    let mut rx = Conn::new(UnixStream::from_std(b), Kind::Client);
    let mut scratch = vec![0u8; 1000];
    assert!(matches!(rx.read_available(&mut scratch, 3000).unwrap(), ReadOutcome::More));
    assert_eq!(rx.reader.buffered(), 3000);
    assert!(matches!(rx.read_available(&mut scratch, usize::MAX).unwrap(), ReadOutcome::Open));
    assert_eq!(rx.reader.buffered(), 10_000);
}
