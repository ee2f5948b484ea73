//! Snapshot files: `snap/<index>-<term>.snap`, written under `<name>.tmp`, fsynced, renamed.
//!
//! ```text
//!   magic "RAFTSNP1" | meta_len u32 LE | meta (bincode SnapshotMeta) | data ...
//!   | data_len u64 LE | crc u32 LE (CRC32 of meta_len, meta and data)
//! ```
//!
//! The trailer comes last so the data can be streamed in without knowing its length.

use crate::error::{IoContext, StorageError};
use crate::fsync_dir;
use raft_core::{Index, Snapshot, SnapshotMeta, Term};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RAFTSNP1";
/// Bytes of `data_len` + `crc` at the end of the file.
const TRAILER_BYTES: usize = 12;
/// The metadata as written before learners existed (index, term, voters): read as a
/// configuration without learners, so a cluster directory from then still starts.
#[derive(serde::Deserialize)]
struct MetaWithoutLearners {
    index: Index,
    term: Term,
    voters: Vec<raft_core::NodeId>,
}

/// Decodes a snapshot's metadata of either layout; returns it and the bytes it used.
fn decode_meta(bytes: &[u8]) -> Result<(SnapshotMeta, usize), bincode::error::DecodeError> {
    match bincode::serde::decode_from_slice::<SnapshotMeta, _>(bytes, config()) {
        Ok(decoded) => Ok(decoded),
        Err(e) => match bincode::serde::decode_from_slice::<MetaWithoutLearners, _>(bytes, config()) {
            Ok((old, used)) if used == bytes.len() => {
                Ok((SnapshotMeta { index: old.index, term: old.term, voters: old.voters, learners: Vec::new() }, used))
            }
            _ => Err(e),
        },
    }
}

/// Largest encoded [`SnapshotMeta`] (a voter list), checked before allocating: a
/// membership of a thousand nodes still fits many times over.
const MAX_META_BYTES: usize = 64 * 1024;
/// Buffer of the streaming writer: memory stays bounded however large the snapshot.
pub(crate) const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// The background writer syncs its file every this many bytes (Redis's
/// `rdb-save-incremental-fsync`, 32 MB there): one large final fsync would hold the disk
/// (and, on ext4, the journal every WAL fdatasync waits for) for as long as it takes to
/// flush the whole snapshot, stalling every node's log writes.
pub(crate) const INCREMENTAL_SYNC_BYTES: u64 = 4 << 20;

/// Buffer of a [`SnapshotReader`]: restoring reads big sequential blocks.
const READ_BUFFER_BYTES: usize = 256 * 1024;

pub(crate) const SUFFIX: &str = ".snap";
/// Every temporary ends so; recovery removes them (never data: a crash left them).
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// A local snapshot being written (by the forked writer, or in-process).
pub(crate) const WRITING_SUFFIX: &str = ".tmp";
/// A snapshot arriving from the leader, chunk by chunk.
pub(crate) const INCOMING_SUFFIX: &str = ".incoming.tmp";

pub(crate) fn file_name(index: Index, term: Term) -> String {
    format!("{index:020}-{term:020}{SUFFIX}")
}

/// Parses `<index>-<term>.snap`.
pub(crate) fn parse_name(name: &str) -> Option<(Index, Term)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (i, t) = stem.split_once('-')?;
    if i.len() != 20 || t.len() != 20 {
        return None;
    }
    Some((i.parse().ok()?, t.parse().ok()?))
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_META_BYTES>()
}

/// A snapshot file being written under its temporary name. Dropping it unfinished
/// removes the temporary file.
pub(crate) struct FileWriter {
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    hasher: crc32fast::Hasher,
    data_len: u64,
    /// Sync every this many bytes (0: only at the end), and the bytes since the last.
    sync_every: u64,
    unsynced: u64,
}

/// A snapshot file written and fsynced under its temporary name, not yet in place.
pub(crate) struct Sealed {
    pub(crate) tmp: PathBuf,
    pub(crate) path: PathBuf,
}

impl Sealed {
    /// Renames the file into place and fsyncs the directory; returns the final path.
    pub(crate) fn commit(self, dir: &File, dir_path: &Path) -> Result<PathBuf, StorageError> {
        fs::rename(&self.tmp, &self.path).at(&self.path)?;
        fsync_dir(dir, dir_path)?;
        Ok(self.path)
    }
}

impl FileWriter {
    pub(crate) fn create(dir: &Path, meta: &SnapshotMeta, tmp_suffix: &str) -> Result<FileWriter, StorageError> {
        let name = file_name(meta.index, meta.term);
        let path = dir.join(&name);
        let tmp = dir.join(format!("{name}{tmp_suffix}"));
        let file = File::create(&tmp).at(&tmp)?;
        let mut w = FileWriter {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file)),
            tmp,
            path,
            hasher: crc32fast::Hasher::new(),
            data_len: 0,
            sync_every: 0,
            unsynced: 0,
        };
        let meta_bytes =
            bincode::serde::encode_to_vec(meta, config()).expect("bincode encodes a SnapshotMeta into a Vec");
        assert!(meta_bytes.len() <= MAX_META_BYTES, "snapshot meta of {} bytes is over the limit", meta_bytes.len());
        let len = (meta_bytes.len() as u32).to_le_bytes();
        w.raw_write(MAGIC)?;
        w.hasher.update(&len);
        w.raw_write(&len)?;
        w.hasher.update(&meta_bytes);
        w.raw_write(&meta_bytes)?;
        Ok(w)
    }

    fn raw_write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let f = self.file.as_mut().expect("writer used after finish");
        f.write_all(bytes).at(&self.tmp)
    }

    pub(crate) fn write_data(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.hasher.update(data);
        self.data_len += data.len() as u64;
        self.raw_write(data)
    }

    /// Syncs the file every [`INCREMENTAL_SYNC_BYTES`] as it is written (the background
    /// writer: a large snapshot then never floods the disk with dirty pages at once).
    pub(crate) fn sync_incrementally(&mut self) {
        self.sync_every = INCREMENTAL_SYNC_BYTES;
    }

    /// Bytes of data written so far.
    pub(crate) fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Writes the trailer and fsyncs, leaving the file under its temporary name.
    pub(crate) fn seal(mut self) -> Result<Sealed, StorageError> {
        let crc = self.hasher.clone().finalize();
        self.raw_write(&self.data_len.to_le_bytes())?;
        self.raw_write(&crc.to_le_bytes())?;
        let file = self.file.take().expect("seal called once");
        let file = file.into_inner().map_err(|e| StorageError::io(&self.tmp, e.into_error()))?;
        file.sync_all().at(&self.tmp)?;
        Ok(Sealed { tmp: self.tmp.clone(), path: self.path.clone() })
    }

    /// Writes the trailer, fsyncs, renames into place and fsyncs the directory.
    /// Returns the final path.
    pub(crate) fn finish(self, dir: &File, dir_path: &Path) -> Result<PathBuf, StorageError> {
        self.seal()?.commit(dir, dir_path)
    }
}

/// The state machine streams its image into the file through this.
impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self.file.as_mut().expect("writer used after finish");
        f.write_all(buf)?;
        self.hasher.update(buf);
        self.data_len += buf.len() as u64;
        self.unsynced += buf.len() as u64;
        if self.sync_every > 0 && self.unsynced >= self.sync_every {
            self.unsynced = 0;
            f.flush()?;
            f.get_ref().sync_data()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Unfinished: best effort, recovery removes leftovers anyway.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a complete snapshot durably; returns its path.
pub(crate) fn write(dir: &File, dir_path: &Path, snap: &Snapshot) -> Result<PathBuf, StorageError> {
    let mut w = FileWriter::create(dir_path, &snap.meta, WRITING_SUFFIX)?;
    w.write_data(&snap.data)?;
    w.finish(dir, dir_path)
}

/// Where a checked snapshot file keeps its data, and the checksum it must have.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) meta: SnapshotMeta,
    pub(crate) data_start: u64,
    pub(crate) data_len: u64,
    crc: u32,
    /// The CRC state after the header (the checksum covers `meta_len`, meta and data).
    header_hash: crc32fast::Hasher,
}

/// Opens a snapshot file whose name said `(index, term)` and checks everything but the
/// data: magic, lengths, trailer, metadata against the name. Reads only the header and
/// the trailer; [`SnapshotReader`] checks the data's checksum as it streams it.
pub(crate) fn inspect(path: &Path, index: Index, term: Term) -> Result<(File, Layout), StorageError> {
    let corrupt = |offset: u64, why: String| StorageError::corrupt(path, offset, why);
    let file = File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    let header = (MAGIC.len() + 4) as u64;
    if len < header + TRAILER_BYTES as u64 {
        return Err(corrupt(0, format!("snapshot file of {len} bytes is too short")));
    }
    let mut head = [0u8; MAGIC.len() + 4];
    file.read_exact_at(&mut head, 0).at(path)?;
    if &head[..MAGIC.len()] != MAGIC {
        return Err(corrupt(0, "not a snapshot file (bad magic)".into()));
    }
    let meta_len = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as u64;
    if meta_len > MAX_META_BYTES as u64 || header + meta_len + TRAILER_BYTES as u64 > len {
        return Err(corrupt(8, format!("metadata length {meta_len} does not fit the file")));
    }
    let mut meta_bytes = vec![0u8; meta_len as usize];
    file.read_exact_at(&mut meta_bytes, header).at(path)?;
    let trailer = len - TRAILER_BYTES as u64;
    let mut tail = [0u8; TRAILER_BYTES];
    file.read_exact_at(&mut tail, trailer).at(path)?;
    let data_len = u64::from_le_bytes(tail[..8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(tail[8..].try_into().expect("4 bytes"));
    let data_start = header + meta_len;
    if data_len != trailer - data_start {
        return Err(corrupt(
            trailer,
            format!("trailer says {data_len} data bytes, the file holds {}", trailer - data_start),
        ));
    }
    let (meta, used) = decode_meta(&meta_bytes).map_err(|e| corrupt(header, format!("undecodable metadata: {e}")))?;
    if used as u64 != meta_len {
        return Err(corrupt(header, "stray bytes after the metadata".into()));
    }
    if meta.index != index || meta.term != term {
        return Err(corrupt(
            header,
            format!("the file name says index {index} term {term}, the contents say {} and {}", meta.index, meta.term),
        ));
    }
    let mut header_hash = crc32fast::Hasher::new();
    header_hash.update(&head[8..12]);
    header_hash.update(&meta_bytes);
    Ok((file, Layout { meta, data_start, data_len, crc, header_hash }))
}

/// Reads `len` data bytes at `offset` of a snapshot laid out as `layout` (fewer at the
/// end of the data).
pub(crate) fn read_chunk(
    file: &File,
    path: &Path,
    layout: &Layout,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, StorageError> {
    let start = offset.min(layout.data_len);
    let end = start.saturating_add(len as u64).min(layout.data_len);
    let mut buf = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut buf, layout.data_start + start).at(path)?;
    Ok(buf)
}

/// The data of a snapshot file, streamed with bounded memory. Its checksum is checked as
/// the last byte is read: a reader that reads to the end gets an error instead of the
/// last bytes when the file is damaged, so a state machine restored from it is never
/// used.
pub struct SnapshotReader(BufReader<Range>);

struct Range {
    file: File,
    path: PathBuf,
    pos: u64,
    end: u64,
    hasher: crc32fast::Hasher,
    crc: u32,
    /// The checksum was compared (at the end of the data).
    checked: bool,
}

impl SnapshotReader {
    pub(crate) fn new(file: File, path: &Path, layout: &Layout) -> SnapshotReader {
        let range = Range {
            file,
            path: path.to_path_buf(),
            pos: layout.data_start,
            end: layout.data_start + layout.data_len,
            hasher: layout.header_hash.clone(),
            crc: layout.crc,
            checked: false,
        };
        SnapshotReader(BufReader::with_capacity(READ_BUFFER_BYTES, range))
    }
}

impl Range {
    fn check(&self) -> io::Result<()> {
        if self.hasher.clone().finalize() != self.crc {
            let trailer = self.end + 8;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: checksum mismatch (trailer at offset {trailer})", self.path.display()),
            ));
        }
        Ok(())
    }
}

impl Read for Range {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end {
            if !self.checked {
                self.checked = true;
                self.check()?;
            }
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min((self.end - self.pos) as usize);
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: the file ends before its data does", self.path.display()),
            ));
        }
        self.hasher.update(&buf[..got]);
        self.pos += got as u64;
        if self.pos == self.end {
            self.checked = true;
            self.check()?;
        }
        Ok(got)
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// Reads and checks a whole snapshot file into memory (small snapshots: tests, tools).
pub(crate) fn read(path: &Path, index: Index, term: Term) -> Result<Snapshot, StorageError> {
    let (file, layout) = inspect(path, index, term)?;
    let mut data = Vec::with_capacity(layout.data_len.min(1 << 20) as usize);
    SnapshotReader::new(file, path, &layout)
        .read_to_end(&mut data)
        .map_err(|e| StorageError::corrupt(path, layout.data_start, e.to_string()))?;
    Ok(Snapshot { meta: layout.meta, data })
}

/// Streams a whole snapshot file to check its data's checksum, with bounded memory.
pub(crate) fn verify(path: &Path, index: Index, term: Term) -> Result<(File, Layout), StorageError> {
    let (file, layout) = inspect(path, index, term)?;
    let mut r = SnapshotReader::new(file.try_clone().at(path)?, path, &layout);
    io::copy(&mut r, &mut io::sink()).map_err(|e| StorageError::corrupt(path, layout.data_start, e.to_string()))?;
    Ok((file, layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_written_before_learners_existed_still_reads() {
        #[derive(serde::Serialize)]
        struct Old {
            index: Index,
            term: Term,
            voters: Vec<u64>,
        }
        let old = bincode::serde::encode_to_vec(Old { index: 7, term: 2, voters: vec![1, 2, 3] }, config()).unwrap();
        let (meta, used) = decode_meta(&old).unwrap();
        assert_eq!((meta.index, meta.term, meta.voters, meta.learners, used), (7, 2, vec![1, 2, 3], vec![], old.len()));
        let new = SnapshotMeta { index: 7, term: 2, voters: vec![1, 2], learners: vec![3] };
        let bytes = bincode::serde::encode_to_vec(&new, config()).unwrap();
        assert_eq!(decode_meta(&bytes).unwrap(), (new, bytes.len()));
        assert!(decode_meta(&bytes[..3]).is_err(), "a truncated one is refused");
    }

    #[test]
    fn names() {
        assert_eq!(parse_name(&file_name(7, 3)), Some((7, 3)));
        assert_eq!(parse_name("00000000000000000007-00000000000000000003.snap.tmp"), None);
        assert_eq!(parse_name("7-3.snap"), None);
    }
}
