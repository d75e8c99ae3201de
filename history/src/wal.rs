//! Write-ahead log: framed, checksummed records in size-rotated segments,
//! written by one thread with group commit.
//!
//! Segment file `wal/<first_seq:020>.wal`:
//! ```text
//! header : b"MWWAL" 0x00 0x00 <segment format version u8 = 1>      (8 bytes)
//! record : [len u32 LE][crc32c(payload) u32 LE][payload; len bytes]  (repeated)
//! payload: [format version u8 = 2][seq u64 LE][table count u32 LE]
//!          { [name len u16 LE][name utf-8][form u8] rows }*
//! rows   : form 0 (whole rows):  [ipc len u32 LE][Arrow IPC stream]
//!          form 1 (series form): [ipc len u32 LE][series IPC stream]
//!                                [ipc len u32 LE][points IPC stream]
//! ```
//! Version 1 payloads (written before the series form) have no form byte:
//! every table entry is `[name len][name][ipc len][Arrow IPC stream]` of
//! whole rows. They still replay; this build writes version 2 only.
//!
//! One record is one write; it may carry batches for several tables, and is
//! applied all-or-nothing. Sequence numbers increase by one per record and
//! never repeat, across segments and restarts.

use std::fs::{File, OpenOptions};
use std::io::{Cursor, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::series::{SeriesBatch, TableRows};
use crate::store::Shared;
use crate::table::TableDef;

/// Version of the segment header.
pub const WAL_SEGMENT_VERSION: u8 = 1;
/// Version byte at the start of each record payload this build writes.
pub const WAL_RECORD_VERSION: u8 = 2;
/// The first record format (whole rows only), still replayed.
pub const WAL_RECORD_VERSION_ROWS_ONLY: u8 = 1;
const FORM_ROWS: u8 = 0;
const FORM_SERIES: u8 = 1;
const SEGMENT_MAGIC: [u8; 8] = [b'M', b'W', b'W', b'A', b'L', 0, 0, WAL_SEGMENT_VERSION];
const FRAME_HEADER: usize = 8;
/// Records above this size are garbage, whatever the configuration.
pub(crate) const MAX_RECORD_BYTES: usize = 1 << 30;

fn put_ipc(out: &mut Vec<u8>, batch: &RecordBatch) -> Result<()> {
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    {
        let mut w = StreamWriter::try_new(&mut *out, batch.schema_ref())?;
        w.write(batch)?;
        w.finish()?;
    }
    let len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Encode the table part of a payload (everything after version and seq).
pub(crate) fn encode_body(entries: &[(usize, TableRows)], defs: &[TableDef]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (idx, rows) in entries {
        let name = defs[*idx].name.as_bytes();
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        match rows {
            TableRows::Rows(batch) => {
                out.push(FORM_ROWS);
                put_ipc(&mut out, batch)?;
            }
            TableRows::Series(s) => {
                out.push(FORM_SERIES);
                put_ipc(&mut out, s.series())?;
                put_ipc(&mut out, s.points())?;
            }
        }
    }
    Ok(out)
}

/// Build a full frame for `body` with sequence number `seq`.
pub(crate) fn encode_frame(seq: u64, body: &[u8], out: &mut Vec<u8>) {
    let len = 1 + 8 + body.len();
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(WAL_RECORD_VERSION);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A decoded record.
#[derive(Debug)]
pub(crate) struct Record {
    pub seq: u64,
    /// (table index, rows)
    pub entries: Vec<(usize, TableRows)>,
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (a, b) = buf.split_at(n);
    *buf = b;
    Some(a)
}

/// Decode a payload whose checksum was verified. Errors here mean the record
/// was written by an incompatible version or for an undeclared table.
pub(crate) fn decode_payload(payload: &[u8], defs: &[TableDef]) -> Result<Record> {
    let corrupt = |detail: String| Error::WalTableMismatch {
        seq: 0,
        table: String::new(),
        detail,
    };
    let mut p = payload;
    let version = take(&mut p, 1).ok_or_else(|| corrupt("empty payload".into()))?[0];
    if version != WAL_RECORD_VERSION && version != WAL_RECORD_VERSION_ROWS_ONLY {
        return Err(corrupt(format!(
            "record format version {version} is not supported (this build reads \
             {WAL_RECORD_VERSION_ROWS_ONLY} and {WAL_RECORD_VERSION}); run the build that wrote it"
        )));
    }
    let seq = u64::from_le_bytes(
        take(&mut p, 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("short payload".into()))?,
    );
    let short = || Error::WalTableMismatch {
        seq,
        table: String::new(),
        detail: "payload shorter than its declared contents".into(),
    };
    let n = u32::from_le_bytes(
        take(&mut p, 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(short)?,
    );
    let ipc = |p: &mut &'_ [u8]| -> Result<Vec<RecordBatch>> {
        let il = u32::from_le_bytes(
            take(p, 4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(short)?,
        );
        let bytes = take(p, il as usize).ok_or_else(short)?;
        StreamReader::try_new(Cursor::new(bytes), None)?
            .map(|b| b.map_err(Error::from))
            .collect()
    };
    let mut entries = Vec::with_capacity(n.min(1024) as usize);
    for _ in 0..n {
        let nl = u16::from_le_bytes(
            take(&mut p, 2)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(short)?,
        );
        let name =
            String::from_utf8_lossy(take(&mut p, nl as usize).ok_or_else(short)?).into_owned();
        let Some(idx) = defs.iter().position(|d| d.name == name) else {
            return Err(Error::WalTableMismatch {
                seq,
                table: name,
                detail: "the table is not declared".into(),
            });
        };
        let def = &defs[idx];
        let mismatch = |e: Error| Error::WalTableMismatch {
            seq,
            table: name.clone(),
            detail: e.to_string(),
        };
        let form = if version == WAL_RECORD_VERSION_ROWS_ONLY {
            FORM_ROWS
        } else {
            take(&mut p, 1).ok_or_else(short)?[0]
        };
        match form {
            FORM_ROWS => {
                for batch in ipc(&mut p)? {
                    let rows = def
                        .upgrade_rows(TableRows::Rows(batch))
                        .and_then(|rows| def.check_rows(rows))
                        .map_err(mismatch)?;
                    entries.push((idx, rows));
                }
            }
            FORM_SERIES => {
                let (series, points) = (ipc(&mut p)?, ipc(&mut p)?);
                let [series] = <[RecordBatch; 1]>::try_from(series).map_err(|_| short())?;
                let [points] = <[RecordBatch; 1]>::try_from(points).map_err(|_| short())?;
                let rows = def
                    .upgrade_rows(TableRows::Series(SeriesBatch::new(series, points)))
                    .and_then(|rows| def.check_rows(rows))
                    .map_err(mismatch)?;
                entries.push((idx, rows));
            }
            other => {
                return Err(mismatch(Error::InvalidBatch {
                    table: name.clone(),
                    detail: format!("unknown rows form {other}"),
                }));
            }
        }
    }
    Ok(Record { seq, entries })
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

/// Fsync a directory so a created, renamed or removed entry is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// A segment known to the writer.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub first_seq: u64,
    /// Last sequence number in the segment; `first_seq - 1` when empty.
    pub last_seq: u64,
    pub path: PathBuf,
    pub bytes: u64,
}

/// What replay found.
#[derive(Debug)]
pub(crate) struct Replay {
    pub segments: Vec<Segment>,
    pub last_seq: u64,
    pub torn_tails: u64,
}

/// List segment files in order.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("list WAL directory", dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("list WAL directory", dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".wal") else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            out.push((seq, ent.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Read every segment, call `apply` for each valid record, and repair a torn
/// tail of the last segment (truncating it with a warning).
pub(crate) fn replay(
    dir: &Path,
    defs: &[TableDef],
    mut apply: impl FnMut(Record) -> Result<()>,
) -> Result<Replay> {
    let files = list_segments(dir)?;
    let mut segments = Vec::with_capacity(files.len());
    let mut last_seq = 0u64;
    let mut torn_tails = 0;
    let count = files.len();
    for (i, (first_seq, path)) in files.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let data = std::fs::read(&path).map_err(|e| Error::io("read WAL segment", &path, e))?;
        let mut off = 0usize;
        let mut seg_last = first_seq.saturating_sub(1);
        let mut bad: Option<String> = None;
        if data.len() < SEGMENT_MAGIC.len() || data[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
            if data.len() >= SEGMENT_MAGIC.len() && data[..5] == SEGMENT_MAGIC[..5] {
                bad = Some(format!(
                    "segment format version {} is not supported (this build reads {WAL_SEGMENT_VERSION})",
                    data[7]
                ));
                // A newer format is never a torn tail: refuse.
                return Err(Error::WalCorrupt {
                    path,
                    offset: 0,
                    detail: bad.unwrap_or_default(),
                });
            }
            bad = Some("missing or partial segment header".into());
        } else {
            off = SEGMENT_MAGIC.len();
            while off < data.len() {
                if data.len() - off < FRAME_HEADER {
                    bad = Some(format!(
                        "{} trailing bytes, shorter than a record header",
                        data.len() - off
                    ));
                    break;
                }
                let len =
                    u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
                        as usize;
                let crc = u32::from_le_bytes([
                    data[off + 4],
                    data[off + 5],
                    data[off + 6],
                    data[off + 7],
                ]);
                if len == 0 || len > MAX_RECORD_BYTES || len > data.len() - off - FRAME_HEADER {
                    bad = Some(format!(
                        "record length {len} does not fit in the {} remaining bytes",
                        data.len() - off - FRAME_HEADER
                    ));
                    break;
                }
                let payload = &data[off + FRAME_HEADER..off + FRAME_HEADER + len];
                if crc32c::crc32c(payload) != crc {
                    bad = Some("checksum mismatch".into());
                    break;
                }
                let rec = decode_payload(payload, defs)?;
                if rec.seq <= last_seq && last_seq != 0 {
                    return Err(Error::WalCorrupt {
                        path,
                        offset: off as u64,
                        detail: format!("sequence {} does not follow {last_seq}", rec.seq),
                    });
                }
                last_seq = rec.seq;
                seg_last = rec.seq;
                apply(rec)?;
                off += FRAME_HEADER + len;
            }
        }
        if let Some(detail) = bad {
            if !is_last {
                return Err(Error::WalCorrupt {
                    path,
                    offset: off as u64,
                    detail,
                });
            }
            tracing::warn!(
                segment = %path.display(),
                offset = off,
                dropped_bytes = data.len() - off,
                %detail,
                "dropping torn WAL tail (a write that was never acknowledged)"
            );
            torn_tails += 1;
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("open WAL segment to truncate torn tail", &path, e))?;
            f.set_len(off as u64)
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io("truncate torn WAL tail", &path, e))?;
        }
        segments.push(Segment {
            first_seq,
            last_seq: seg_last,
            path,
            bytes: off as u64,
        });
    }
    Ok(Replay {
        segments,
        last_seq,
        torn_tails,
    })
}

/// A write waiting for the fsync: body, batches, bytes, reply.
type PendingWrite = (
    Vec<u8>,
    Vec<(usize, TableRows)>,
    u64,
    oneshot::Sender<Result<u64>>,
);

/// A command to the writer thread.
pub(crate) enum WalCmd {
    Write {
        body: Vec<u8>,
        entries: Vec<(usize, TableRows)>,
        bytes: u64,
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Rotate if needed and delete segments whose records are all `<= upto`.
    Truncate {
        upto: u64,
        reply: oneshot::Sender<Result<()>>,
    },
}

pub(crate) struct WalWriter {
    dir: PathBuf,
    segment_max_bytes: u64,
    max_group_bytes: usize,
    closed: Vec<Segment>,
    active: Segment,
    file: File,
    next_seq: u64,
    failed: Option<String>,
    shared: Arc<Shared>,
}

impl WalWriter {
    /// Open the writer with a fresh segment starting at `next_seq`.
    pub(crate) fn new(
        dir: PathBuf,
        segment_max_bytes: u64,
        max_group_bytes: usize,
        mut closed: Vec<Segment>,
        next_seq: u64,
        shared: Arc<Shared>,
    ) -> Result<Self> {
        // Segments holding no record (e.g. a torn header) are removed, so a
        // later replay never finds a header-less segment before the tail.
        let mut removed = false;
        for s in closed.iter().filter(|s| s.last_seq < s.first_seq) {
            std::fs::remove_file(&s.path)
                .map_err(|e| Error::io("delete empty WAL segment", &s.path, e))?;
            removed = true;
        }
        closed.retain(|s| s.last_seq >= s.first_seq);
        if removed {
            sync_dir(&dir)?;
        }
        let (file, active) = create_segment(&dir, next_seq)?;
        let w = Self {
            dir,
            segment_max_bytes,
            max_group_bytes,
            closed,
            active,
            file,
            next_seq,
            failed: None,
            shared,
        };
        w.publish_stats();
        Ok(w)
    }

    fn publish_stats(&self) {
        let bytes: u64 = self.closed.iter().map(|s| s.bytes).sum::<u64>() + self.active.bytes;
        self.shared.stats.wal_bytes.store(bytes, Ordering::Relaxed);
        self.shared
            .stats
            .wal_segments
            .store(self.closed.len() as u64 + 1, Ordering::Relaxed);
    }

    /// Run until every sender is dropped.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<WalCmd>) {
        let mut pending: Option<WalCmd> = None;
        loop {
            let cmd = match pending.take() {
                Some(c) => c,
                None => match rx.blocking_recv() {
                    Some(c) => c,
                    None => break,
                },
            };
            match cmd {
                WalCmd::Truncate { upto, reply } => {
                    let r = self.truncate(upto);
                    let _ = reply.send(r);
                }
                first @ WalCmd::Write { .. } => {
                    // Tests hold this gate to make writes queue up behind the
                    // writer deterministically; uncontended otherwise.
                    drop(
                        self.shared
                            .test_gate
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()),
                    );
                    let mut group = vec![first];
                    let mut size = 0usize;
                    while size < self.max_group_bytes {
                        match rx.try_recv() {
                            Ok(c @ WalCmd::Write { .. }) => {
                                if let WalCmd::Write { body, .. } = &c {
                                    size += body.len();
                                }
                                group.push(c);
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(group);
                }
            }
        }
        tracing::debug!("WAL writer stopped");
    }

    fn commit(&mut self, group: Vec<WalCmd>) {
        let mut writes = Vec::with_capacity(group.len());
        for c in group {
            if let WalCmd::Write {
                body,
                entries,
                bytes,
                reply,
            } = c
            {
                writes.push((body, entries, bytes, reply));
            }
        }
        let fail_all = |writes: Vec<PendingWrite>, cause: &str, shared: &Shared| {
            for (_, _, bytes, reply) in writes {
                shared
                    .stats
                    .inflight_bytes
                    .fetch_sub(bytes, Ordering::AcqRel);
                let _ = reply.send(Err(Error::WalFailed {
                    cause: cause.to_string(),
                }));
            }
        };
        if let Some(cause) = self.failed.clone() {
            fail_all(writes, &cause, &self.shared);
            return;
        }
        let mut buf = Vec::with_capacity(writes.iter().map(|w| w.0.len() + 32).sum());
        let first = self.next_seq;
        for (i, w) in writes.iter().enumerate() {
            encode_frame(first + i as u64, &w.0, &mut buf);
        }
        let result = (|| -> Result<()> {
            if self.active.last_seq >= self.active.first_seq
                && self.active.bytes + buf.len() as u64 > self.segment_max_bytes
            {
                self.rotate()?;
            }
            let start = Instant::now();
            self.file
                .write_all(&buf)
                .and_then(|_| self.file.sync_data())
                .map_err(|e| Error::io("append to WAL segment", &self.active.path, e))?;
            let micros = start.elapsed().as_micros() as u64;
            self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.shared
                .stats
                .fsync_micros_total
                .fetch_add(micros, Ordering::Relaxed);
            self.shared
                .stats
                .last_fsync_micros
                .store(micros, Ordering::Relaxed);
            Ok(())
        })();
        if let Err(e) = result {
            let cause = e.to_string();
            tracing::error!(error = %cause, "WAL write failed; refusing further writes");
            self.failed = Some(cause.clone());
            fail_all(writes, &cause, &self.shared);
            return;
        }
        let n = writes.len() as u64;
        self.next_seq += n;
        self.active.last_seq = self.next_seq - 1;
        self.active.bytes += buf.len() as u64;
        self.shared
            .stats
            .wal_records
            .fetch_add(n, Ordering::Relaxed);
        self.publish_stats();
        // Apply to the buffer, in order, before acknowledging, so a reader
        // sees every acknowledged write.
        let now = self.shared.clock.now_micros();
        {
            let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
            for (i, (_, entries, _, _)) in writes.iter_mut().enumerate() {
                state.buffer.apply(
                    first + i as u64,
                    std::mem::take(entries),
                    now,
                    &self.shared.defs,
                );
            }
            // Publish the buffer before releasing the in-flight bytes, so the
            // admission check never undercounts.
            self.shared.publish_buffer_stats(&state.buffer);
            let done: u64 = writes.iter().map(|w| w.2).sum();
            self.shared
                .stats
                .inflight_bytes
                .fetch_sub(done, Ordering::AcqRel);
        }
        self.shared.maybe_wake_persister();
        for (i, (_, _, _, reply)) in writes.into_iter().enumerate() {
            let _ = reply.send(Ok(first + i as u64));
        }
    }

    fn rotate(&mut self) -> Result<()> {
        let (file, seg) = create_segment(&self.dir, self.next_seq)?;
        let old = std::mem::replace(&mut self.active, seg);
        self.file = file;
        self.closed.push(old);
        self.publish_stats();
        Ok(())
    }

    fn truncate(&mut self, upto: u64) -> Result<()> {
        if let Some(cause) = &self.failed {
            return Err(Error::WalFailed {
                cause: cause.clone(),
            });
        }
        if self.active.last_seq >= self.active.first_seq && self.active.last_seq <= upto {
            self.rotate()?;
        }
        let mut removed = false;
        while let Some(seg) = self.closed.first() {
            if seg.last_seq > upto {
                break;
            }
            std::fs::remove_file(&seg.path)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| Error::io("delete persisted WAL segment", &seg.path, e))?;
            self.closed.remove(0);
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        self.publish_stats();
        Ok(())
    }
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<(File, Segment)> {
    let path = segment_path(dir, first_seq);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("create WAL segment", &path, e))?;
    f.write_all(&SEGMENT_MAGIC)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("write WAL segment header", &path, e))?;
    sync_dir(dir)?;
    Ok((
        f,
        Segment {
            first_seq,
            last_seq: first_seq.saturating_sub(1),
            path,
            bytes: SEGMENT_MAGIC.len() as u64,
        },
    ))
}
