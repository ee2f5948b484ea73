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
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RAFTSNP1";
/// Bytes of `data_len` + `crc` at the end of the file.
const TRAILER_BYTES: usize = 12;
/// Largest encoded [`SnapshotMeta`] (a voter list), checked before allocating: a
/// membership of a thousand nodes still fits many times over.
const MAX_META_BYTES: usize = 64 * 1024;
/// Buffer of the streaming writer: memory stays bounded however large the snapshot.
pub(crate) const WRITE_BUFFER_BYTES: usize = 256 * 1024;

pub(crate) const SUFFIX: &str = ".snap";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

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
}

impl FileWriter {
    pub(crate) fn create(dir: &Path, meta: &SnapshotMeta) -> Result<FileWriter, StorageError> {
        let name = file_name(meta.index, meta.term);
        let path = dir.join(&name);
        let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
        let file = File::create(&tmp).at(&tmp)?;
        let mut w = FileWriter {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file)),
            tmp,
            path,
            hasher: crc32fast::Hasher::new(),
            data_len: 0,
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

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.hasher.update(data);
        self.data_len += data.len() as u64;
        self.raw_write(data)
    }

    /// Writes the trailer, fsyncs, renames into place and fsyncs the directory.
    /// Returns the final path.
    pub(crate) fn finish(mut self, dir: &File, dir_path: &Path) -> Result<PathBuf, StorageError> {
        let crc = self.hasher.clone().finalize();
        self.raw_write(&self.data_len.to_le_bytes())?;
        self.raw_write(&crc.to_le_bytes())?;
        let file = self.file.take().expect("finish called once");
        let file = file.into_inner().map_err(|e| StorageError::io(&self.tmp, e.into_error()))?;
        file.sync_all().at(&self.tmp)?;
        drop(file);
        fs::rename(&self.tmp, &self.path).at(&self.path)?;
        fsync_dir(dir, dir_path)?;
        Ok(self.path.clone())
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
    let mut w = FileWriter::create(dir_path, &snap.meta)?;
    w.write(&snap.data)?;
    w.finish(dir, dir_path)
}

/// Reads and checks a snapshot file whose name said `(index, term)`.
pub(crate) fn read(path: &Path, index: Index, term: Term) -> Result<Snapshot, StorageError> {
    let bytes = fs::read(path).at(path)?;
    parse(bytes, path, index, term)
}

/// Checks and splits the bytes of a snapshot file read from `path` (named for errors).
pub(crate) fn parse(bytes: Vec<u8>, path: &Path, index: Index, term: Term) -> Result<Snapshot, StorageError> {
    let corrupt = |offset: usize, why: String| StorageError::corrupt(path, offset as u64, why);
    let header = MAGIC.len() + 4;
    if bytes.len() < header + TRAILER_BYTES {
        return Err(corrupt(0, format!("snapshot file of {} bytes is too short", bytes.len())));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(0, "not a snapshot file (bad magic)".into()));
    }
    let meta_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if meta_len > MAX_META_BYTES || header + meta_len + TRAILER_BYTES > bytes.len() {
        return Err(corrupt(8, format!("metadata length {meta_len} does not fit the file")));
    }
    let trailer = bytes.len() - TRAILER_BYTES;
    let data_len = u64::from_le_bytes(bytes[trailer..trailer + 8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[trailer + 8..].try_into().expect("4 bytes"));
    let data_start = header + meta_len;
    if data_len != (trailer - data_start) as u64 {
        return Err(corrupt(
            trailer,
            format!("trailer says {data_len} data bytes, the file holds {}", trailer - data_start),
        ));
    }
    if crc32fast::hash(&bytes[MAGIC.len()..trailer]) != crc {
        return Err(corrupt(trailer + 8, "checksum mismatch".into()));
    }
    let (meta, used): (SnapshotMeta, usize) = bincode::serde::decode_from_slice(&bytes[header..data_start], config())
        .map_err(|e| corrupt(header, format!("undecodable metadata: {e}")))?;
    if used != meta_len {
        return Err(corrupt(header, "stray bytes after the metadata".into()));
    }
    if meta.index != index || meta.term != term {
        return Err(corrupt(
            header,
            format!("the file name says index {index} term {term}, the contents say {} and {}", meta.index, meta.term),
        ));
    }
    let mut bytes = bytes;
    bytes.truncate(trailer);
    let data = bytes.split_off(data_start);
    Ok(Snapshot { meta, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name(&file_name(7, 3)), Some((7, 3)));
        assert_eq!(parse_name("00000000000000000007-00000000000000000003.snap.tmp"), None);
        assert_eq!(parse_name("7-3.snap"), None);
    }
}
