//! Crash test: a child process appends, truncates, purges, votes and commits on
//! one log store until it is killed with SIGKILL at a random moment; the parent
//! then reopens the store and checks that every append whose callback fired is
//! there (with its term), every returned vote, commit and purge is there, and the
//! log has no holes. The same directory carries over from round to round, so each
//! round also starts from a store a kill left behind.
//!
//! The child is this test binary run again with `CRASH_CHILD_DIR` set: it runs
//! only `crash_child_runs_until_killed`, which does nothing otherwise. It writes
//! one line per step to `CRASH_CHILD_ACKS` (one `write(2)` each, so a kill
//! leaves whole lines): `A first last term` after an append's callback fired,
//! `T index` before a truncation, `P index` before a purge and `p index` after
//! it, `V term` after a vote was saved, `C index term` after a commit was saved.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcask_openraft::{LogStore, Request, TypeConfig};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};

const DIR_VAR: &str = "CRASH_CHILD_DIR";
const ACKS_VAR: &str = "CRASH_CHILD_ACKS";
const ROUNDS: usize = 12;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Small data files, so that the log rotates files and merges them while it runs.
fn open(dir: &Path) -> LogStore<TypeConfig> {
    let mut opts = bitcask::Options::default();
    opts.max_file_size = 64 << 10;
    LogStore::open(dir, opts).expect("open the log store")
}

/// The child's workload; returns only by being killed.
async fn child(dir: &Path, acks: &Path) {
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(acks)
        .expect("the acks file");
    let mut say = |line: String| {
        // One write per line: a kill leaves whole lines.
        out.write_all(format!("{line}\n").as_bytes()).unwrap();
    };
    let mut store = open(dir);
    let mut rng = Rng::new(seed() ^ u64::from(std::process::id()));
    let state = store.get_log_state().await.unwrap();
    let vote_term = store
        .read_vote()
        .await
        .unwrap()
        .map_or(1, |v| v.leader_id.term);
    let mut term = vote_term.max(state.last_log_id.map_or(1, |l| l.leader_id.term));
    let mut next = state.last_log_id.map_or(0, |l| l.index + 1);
    let mut purged = state.last_purged_log_id.map(|l| l.index);
    loop {
        let first_live = purged.map_or(0, |p| p + 1);
        match rng.below(100) {
            // A conflict at the tail, as a follower meets one.
            0..=1 if next > first_live => {
                let at = next - 1 - rng.below((next - first_live).min(16));
                say(format!("T {at}"));
                store.truncate(log_id(term, at)).await.unwrap();
                next = at;
                term += 1;
                store.save_vote(&Vote::new(term, 1)).await.unwrap();
                say(format!("V {term}"));
            }
            2..=3 if next > first_live + 4 => {
                let upto = first_live + rng.below(next - first_live - 4);
                say(format!("P {upto}"));
                store.purge(log_id(term, upto)).await.unwrap();
                purged = Some(upto);
                say(format!("p {upto}"));
            }
            4..=7 if next > first_live => {
                let at = first_live + rng.below(next - first_live);
                store.save_committed(Some(log_id(term, at))).await.unwrap();
                say(format!("C {at} {term}"));
            }
            _ => {
                let n = 1 + rng.below(8);
                let entries: Vec<Entry<TypeConfig>> = (next..next + n)
                    .map(|i| Entry {
                        log_id: log_id(term, i),
                        payload: EntryPayload::Normal(Request::Set {
                            key: format!("k{i}"),
                            value: "x".repeat(rng.below(300) as usize),
                        }),
                    })
                    .collect();
                store.blocking_append(entries).await.unwrap();
                say(format!("A {next} {} {term}", next + n - 1));
                next += n;
            }
        }
    }
}

#[test]
fn crash_child_runs_until_killed() {
    let (Some(dir), Some(acks)) = (std::env::var_os(DIR_VAR), std::env::var_os(ACKS_VAR)) else {
        return; // Not a child: nothing to do.
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(child(Path::new(&dir), Path::new(&acks)));
}

/// What the acknowledged steps require of the reopened store.
#[derive(Default)]
struct Model {
    /// index -> term of every entry that must be present.
    entries: BTreeMap<u64, u64>,
    vote: u64,
    committed: Option<(u64, u64)>,
    purged: Option<u64>,
    appends: usize,
}

impl Model {
    fn apply(&mut self, line: &str) {
        let f: Vec<u64> = line[2..]
            .split(' ')
            .map(|x| x.parse().expect("a number"))
            .collect();
        match &line[..1] {
            "A" => {
                for i in f[0]..=f[1] {
                    self.entries.insert(i, f[2]);
                }
                self.appends += 1;
            }
            // Announced before the call: from then on those entries may be gone.
            "T" => self.entries.retain(|&i, _| i < f[0]),
            "P" => self.entries.retain(|&i, _| i > f[0]),
            "p" => self.purged = self.purged.max(Some(f[0])),
            "V" => self.vote = f[0],
            "C" => self.committed = Some((f[0], f[1])),
            other => panic!("unknown line kind {other:?}"),
        }
    }
}

async fn check(dir: &Path, model: &Model, round: usize) {
    let mut store = open(dir);
    let ctx = |what: &str| format!("round {round}: {what}");

    let vote = store.read_vote().await.unwrap();
    assert!(
        vote.map_or(0, |v| v.leader_id.term) >= model.vote,
        "{}",
        ctx(&format!(
            "vote {vote:?} older than the saved term {}",
            model.vote
        ))
    );
    if let Some((index, term)) = model.committed {
        let c = store.read_committed().await.unwrap();
        assert!(
            c.is_some_and(|c| (c.leader_id.term, c.index) >= (term, index)),
            "{}",
            ctx(&format!(
                "committed {c:?} older than the saved {index}@{term}"
            ))
        );
    }

    let state = store.get_log_state().await.unwrap();
    let purged = state.last_purged_log_id.map(|l| l.index);
    assert!(
        purged >= model.purged,
        "{}",
        ctx("a returned purge was lost")
    );

    let entries = store.try_get_log_entries(..).await.unwrap();
    let first = purged.map_or(0, |p| p + 1);
    for (n, e) in entries.iter().enumerate() {
        assert_eq!(
            e.log_id.index,
            first + n as u64,
            "{}",
            ctx("a hole in the log (or an entry at or below the purged one)")
        );
    }
    let last = entries
        .last()
        .map(|e| e.log_id)
        .or(state.last_purged_log_id);
    assert_eq!(
        last,
        state.last_log_id,
        "{}",
        ctx("get_log_state's last log id")
    );

    for (&index, &term) in model.entries.range(first..) {
        let e = entries.get((index - first) as usize).unwrap_or_else(|| {
            panic!("{}", ctx(&format!("acknowledged entry {index} is missing")))
        });
        assert_eq!(
            e.log_id.leader_id.term,
            term,
            "{}",
            ctx(&format!("entry {index} has the wrong term"))
        );
    }
}

#[test]
fn acknowledged_appends_survive_sigkill_and_the_log_has_no_holes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let exe = std::env::current_exe().unwrap();
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut model = Model::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let acks = tmp.path().join(format!("acks-{round}"));
        std::fs::File::create(&acks).unwrap();
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_runs_until_killed", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(DIR_VAR, &dir)
            .env(ACKS_VAR, &acks)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(60 + rng.below(340)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child exited by itself: {status}"
        );
        let text = std::fs::read_to_string(&acks).unwrap();
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            model.apply(line.trim_end());
        }
        rt.block_on(check(&dir, &model, round));
    }
    eprintln!(
        "{ROUNDS} kills (seed {seed}): {} appends acknowledged, {} entries required at the end, {:?}",
        model.appends,
        model.entries.len(),
        started.elapsed()
    );
    assert!(
        model.appends >= 20,
        "too few appends to mean anything: {}",
        model.appends
    );
}
