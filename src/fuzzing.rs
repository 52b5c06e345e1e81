//! The bodies of the fuzz targets in `fuzz/`, here so that the committed seeds
//! and every crash found replay as ordinary tests on stable Rust
//! (`tests/hostile.rs`). Each panics when the property it checks fails. Not a
//! stable API.

/// Decodes records from the start of `b` the way a scan does, one after the
/// other, until the first that is not valid, as format 1 and as format 2.
/// Returns how many were valid in all. Every valid format 2 record must encode
/// back to exactly its bytes: one record, one byte string.
pub fn decode_records(b: &[u8]) -> usize {
    let mut n = 0;
    for version in [1, 2] {
        let mut rest = b;
        while let Ok(h) = crate::record::decode(version, rest) {
            n += 1;
            let len = h.record_len() as usize;
            if version == 2 {
                let (key, value) = crate::record::key_value(&h, rest);
                let mut again = Vec::new();
                crate::record::encode(&mut again, &crate::record::Fields::of(&h), key, value);
                assert_eq!(
                    again,
                    &rest[..len],
                    "a valid record that does not re-encode to itself"
                );
            }
            rest = &rest[len..];
        }
    }
    n
}

/// The first 8 bytes are a data file length, the rest a hint file for it;
/// returns the number of entries when the hint would be used.
pub fn decode_hint(data: &[u8]) -> Option<usize> {
    let data_len = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    crate::hint::count_verified(&data[8..], data_len)
}

#[cfg(feature = "fault-injection")]
pub use with_faults::*;

#[cfg(feature = "fault-injection")]
mod with_faults {
    use crate::fs::memfs::{Crash, Fault, MemFs, ALL_OPS, EIO, ENOSPC};
    use crate::{Bitcask, Options, SyncPolicy, WriteBatch};
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    /// File names `open_dir` fills, in input order.
    pub const OPEN_DIR_NAMES: [&str; 5] = [
        "0000000001.data",
        "0000000001.hint",
        "0000000002.data",
        "0000000002.hint",
        "0000000003.data",
    ];

    /// Opens a directory of arbitrary files: the input is a sequence of (u16
    /// length, bytes) pairs, one per file of `OPEN_DIR_NAMES`. Open (writable,
    /// salvage, read-only) may fail with an error but must not panic, hang or
    /// allocate what a hostile length claims; what opens must read back.
    pub fn open_dir(data: &[u8]) {
        const NAMES: [&str; 5] = OPEN_DIR_NAMES;
        let fs = MemFs::new();
        let dir = Path::new("/db");
        let mut rest = data;
        for name in NAMES {
            if rest.len() < 2 {
                break;
            }
            let len = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            fs.write_file(&dir.join(name), &rest[2..2 + len]);
            rest = &rest[2 + len..];
        }
        for mode in 0..3 {
            let o = Options {
                auto_merge: false,
                max_file_size: 4096,
                salvage: mode == 1,
                read_only: mode == 2,
                ..Options::default()
            };
            let Ok(db) = Bitcask::open_with_fs(dir, o, Arc::new(fs.process())) else {
                continue;
            };
            let keys = db.keys().unwrap();
            for k in &keys {
                // A value may fail its checksum now (salvage, hint files): an error, not a panic.
                let _ = db.get(k);
            }
            let n = db.iter().unwrap().count();
            assert!(n <= keys.len());
            if mode == 0 {
                let _ = db.put(b"fuzz", b"value");
                let _ = db.merge();
            }
            drop(db);
        }
    }

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;
    type Write = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    fn apply(m: &mut Model, w: &Write) {
        for (k, v) in w {
            match v {
                Some(v) => m.insert(k.clone(), v.clone()),
                None => m.remove(k),
            };
        }
    }

    fn opts() -> Options {
        Options {
            max_file_size: 1024,
            auto_merge: false,
            sync: SyncPolicy::Always,
            ..Options::default()
        }
    }

    fn open(fs: &MemFs) -> crate::Result<Bitcask> {
        Bitcask::open_with_fs("/db", opts(), Arc::new(fs.process()))
    }

    /// Random operations against a model on a filesystem that fails one operation
    /// and then loses power: after a reopen the database must hold the
    /// acknowledged state, or that plus the one write that failed, whole.
    pub fn ops_model(data: &[u8]) {
        if data.len() < 4 {
            return;
        }
        let fs = MemFs::new();
        fs.inject(Fault {
            op: ALL_OPS[data[0] as usize % ALL_OPS.len()],
            nth: 1 + data[1] as u64 % 64,
            errno: if data[2] & 1 == 0 { EIO } else { ENOSPC },
            sticky: data[2] & 2 != 0,
            short: data[2] & 4 != 0,
        });
        let crash = if data[2] & 8 == 0 {
            Crash::DropUnsynced
        } else {
            Crash::Torn(data[3] as u64)
        };
        let mut acked = Model::new();
        let mut in_flight: Option<Write> = None;
        let mut db = open(&fs).ok();
        let mut bytes = data[4..].iter().copied();
        while let (Some(d), Some(op)) = (db.as_ref(), bytes.next()) {
            let key = vec![b'k', bytes.next().unwrap_or(0) % 16];
            let val = vec![op; bytes.next().unwrap_or(0) as usize % 100];
            let write: Write = match op % 8 {
                0..=2 => vec![(key, Some(val))],
                3 => vec![(key, None)],
                4 => vec![(key.clone(), Some(val)), (vec![b'b', key[1]], None)],
                5 => {
                    let _ = d.merge();
                    continue;
                }
                6 => {
                    let old = db.take().unwrap();
                    db = old.close().and_then(|_| open(&fs)).ok();
                    continue;
                }
                _ => {
                    if let Ok(got) = d.get(&key) {
                        assert_eq!(got.as_ref(), acked.get(&key));
                    }
                    continue;
                }
            };
            let mut b = WriteBatch::new();
            for (k, v) in &write {
                match v {
                    Some(v) => b.put(k, v),
                    None => b.delete(k),
                };
            }
            match d.write(&b) {
                Ok(_) => apply(&mut acked, &write),
                Err(_) => {
                    in_flight = Some(write);
                    break;
                }
            }
        }
        fs.crash(crash);
        fs.clear_faults();
        drop(db);
        let db = open(&fs).expect("reopen after power loss");
        let got: Model = db.iter().unwrap().map(|kv| kv.unwrap()).collect();
        let mut with = acked.clone();
        if let Some(w) = &in_flight {
            apply(&mut with, w);
        }
        assert!(got == acked || got == with, "state after power loss");
    }
}
