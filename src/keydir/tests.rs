//! Tests run with tiny node limits (see the `cfg(test)` constants) so that a few
//! thousand keys already build a tree several levels deep, split on bytes as well as
//! on counts, and exercise merges and root collapse.

use super::*;
use std::collections::BTreeMap;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn loc(n: u64) -> Loc {
    Loc {
        file_id: n as u32,
        offset: (n >> 8) as u32,
        rec_len: 7,
        expires: (n >> 32) as u32,
    }
}

/// Keys over a tiny alphabet including 0x00 and 0xFF, so that keys are often
/// prefixes of each other, share long prefixes, and collide.
fn gen_key(r: &mut Rng) -> Vec<u8> {
    const ALPHA: [u8; 6] = [0x00, 0x01, 0x7f, 0xfe, 0xff, b'a'];
    let len = match r.below(20) {
        0 => 30 + r.below(40),
        1 if r.below(10) == 0 => 200 + r.below(800),
        2 => {
            // Longer shared prefixes than a leaf factors out (MAX_PREFIX).
            let mut k = vec![b'p'; 20 + r.below(6)];
            k.extend((0..r.below(4)).map(|_| ALPHA[r.below(ALPHA.len())]));
            return k;
        }
        _ => 1 + r.below(10),
    };
    (0..len).map(|_| ALPHA[r.below(ALPHA.len())]).collect()
}

fn gen_bound(r: &mut Rng, model: &BTreeMap<Vec<u8>, Loc>) -> Option<Vec<u8>> {
    match r.below(8) {
        0 => None,
        1 | 2 if !model.is_empty() => model.keys().nth(r.below(model.len().min(2000))).cloned(),
        3 if !model.is_empty() => {
            // A proper prefix of an existing key.
            let k = model.keys().nth(r.below(model.len().min(2000))).unwrap();
            Some(k[..r.below(k.len() + 1)].to_vec())
        }
        4 => {
            // At the very end of the keyspace.
            Some(vec![0xff; 1 + r.below(12)])
        }
        5 => Some(vec![0x00; r.below(4)]),
        _ => Some(gen_key(r)),
    }
}

fn to_bound(b: &Option<Vec<u8>>, incl: bool) -> Bound<&[u8]> {
    match b {
        None => Bound::Unbounded,
        Some(k) if incl => Bound::Included(k),
        Some(k) => Bound::Excluded(k),
    }
}

fn in_bounds(k: &[u8], lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    let above = match lo {
        Bound::Included(l) => k >= l,
        Bound::Excluded(l) => k > l,
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(u) => k <= u,
        Bound::Excluded(u) => k < u,
        Bound::Unbounded => true,
    };
    above && below
}

fn expected(
    model: &BTreeMap<Vec<u8>, Loc>,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    rev: bool,
    limit: usize,
) -> Vec<(Vec<u8>, Loc)> {
    let it = model.iter().filter(|(k, _)| in_bounds(k, lo, hi));
    let v: Vec<_> = if rev {
        it.rev().take(limit).map(|(k, l)| (k.clone(), *l)).collect()
    } else {
        it.take(limit).map(|(k, l)| (k.clone(), *l)).collect()
    };
    v
}

fn check_all(kd: &KeyDir, model: &BTreeMap<Vec<u8>, Loc>) {
    assert_eq!(kd.len(), model.len());
    assert_eq!(kd.is_empty(), model.is_empty());
    let mut got = Vec::new();
    kd.for_each(|k, l| got.push((k.to_vec(), l)));
    let want: Vec<_> = model.iter().map(|(k, l)| (k.clone(), *l)).collect();
    assert_eq!(got, want);
}

/// Scans everything `limit` entries at a time, resuming from the last key with an
/// Excluded bound, and checks the pages join up into the model's order.
fn check_resume(kd: &KeyDir, model: &BTreeMap<Vec<u8>, Loc>, rev: bool, limit: usize) {
    let mut all = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    loop {
        let mut page = Vec::new();
        let b = match &last {
            None => Bound::Unbounded,
            Some(k) => Bound::Excluded(&k[..]),
        };
        if rev {
            kd.scan(Bound::Unbounded, b, true, limit, &mut page);
        } else {
            kd.scan(b, Bound::Unbounded, false, limit, &mut page);
        }
        assert!(page.len() <= limit);
        if page.is_empty() {
            break;
        }
        last = Some(page.last().unwrap().0.clone());
        all.extend(page);
    }
    let mut want: Vec<_> = model.iter().map(|(k, l)| (k.clone(), *l)).collect();
    if rev {
        want.reverse();
    }
    assert_eq!(all, want);
}

fn depth(n: &Internal) -> usize {
    match &n.kids {
        Kids::Leaves(_) => 1,
        Kids::Nodes(v) => 1 + depth(&v[0]),
    }
}

fn run_model(seed: u64, ops: usize) {
    let mut r = Rng(seed);
    let mut kd = KeyDir::new();
    let mut model = BTreeMap::new();
    let mut max_depth = 0;
    for op in 0..ops {
        max_depth = max_depth.max(depth(&kd.root));
        // Phases: mostly grow, then mostly shrink, so trees both deepen and collapse.
        let shrinking = (op / 3000) % 2 == 1;
        match r.below(20) {
            0..=8 if !shrinking || r.below(3) == 0 => {
                let k = gen_key(&mut r);
                let l = loc(r.next());
                assert_eq!(kd.insert(&k, l), model.insert(k, l));
            }
            0..=11 => {
                let k = if !model.is_empty() && r.below(4) != 0 {
                    model.keys().nth(r.below(model.len())).unwrap().clone()
                } else {
                    gen_key(&mut r)
                };
                assert_eq!(kd.remove(&k), model.remove(&k));
            }
            12..=14 => {
                let k = if !model.is_empty() && r.below(2) == 0 {
                    model.keys().nth(r.below(model.len())).unwrap().clone()
                } else {
                    gen_key(&mut r)
                };
                assert_eq!(kd.get(&k), model.get(&k).copied(), "get {k:?}");
                if let Some(l) = model.get_mut(&k) {
                    // Overwrite an existing key.
                    *l = loc(r.next());
                    assert!(kd.insert(&k, *l).is_some());
                }
            }
            _ => {
                let lo = gen_bound(&mut r, &model);
                let hi = if r.below(3) == 0 {
                    // Single-key and empty ranges.
                    lo.clone()
                } else {
                    gen_bound(&mut r, &model)
                };
                let (li, hi_incl) = (r.below(2) == 0, r.below(2) == 0);
                let rev = r.below(2) == 0;
                let limit = [0, 1, 3, 17, usize::MAX][r.below(5)];
                let (lb, ub) = (to_bound(&lo, li), to_bound(&hi, hi_incl));
                let mut out = vec![(b"sentinel".to_vec(), loc(0))];
                kd.scan(lb, ub, rev, limit, &mut out);
                assert_eq!(out.remove(0).0, b"sentinel", "scan must append");
                assert_eq!(
                    out,
                    expected(&model, lb, ub, rev, limit),
                    "{lb:?} {ub:?} {rev}"
                );
            }
        }
        if op % 500 == 0 {
            check_all(&kd, &model);
        }
    }
    if ops >= 40_000 {
        assert!(max_depth >= 4, "tree only reached depth {max_depth}");
    }
    check_all(&kd, &model);
    check_resume(&kd, &model, false, 7);
    check_resume(&kd, &model, true, 5);
    check_resume(&kd, &model, false, 1);
}

#[test]
fn model_seed_1() {
    run_model(1, 40_000);
}

#[test]
fn model_seed_2() {
    run_model(2, 40_000);
}

#[test]
fn model_many_small_seeds() {
    for seed in 10..60 {
        run_model(seed, 1500);
    }
}

#[test]
fn head_order_matches_byte_order() {
    let mut r = Rng(7);
    for _ in 0..100_000 {
        let a = gen_key(&mut r);
        let b = gen_key(&mut r);
        let (ha, hb) = (head_of(&a), head_of(&b));
        if ha != hb {
            assert_eq!(ha.cmp(&hb), a.cmp(&b), "{a:?} {b:?}");
        } else if a.len() < 8 || b.len() < 8 {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn remove_from_empty() {
    let mut kd = KeyDir::new();
    assert_eq!(kd.remove(b"x"), None);
    assert_eq!(kd.get(b"x"), None);
    let mut out = Vec::new();
    kd.scan(Bound::Unbounded, Bound::Unbounded, false, 10, &mut out);
    kd.scan(Bound::Unbounded, Bound::Unbounded, true, 10, &mut out);
    assert!(out.is_empty());
    assert!(kd.is_empty());
    assert_eq!(KeyDir::default().len(), 0);
}

#[test]
fn remove_until_empty_and_refill() {
    let mut kd = KeyDir::new();
    for round in 0..3u64 {
        let keys: Vec<Vec<u8>> = (0..5000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(kd.insert(k, loc(i as u64 + round)), None);
        }
        assert_eq!(kd.len(), 5000);
        // Remove in an order that is neither ascending nor descending.
        for i in 0..5000usize {
            let k = &keys[(i * 7919) % 5000];
            assert!(kd.remove(k).is_some());
        }
        assert!(kd.is_empty());
        assert_eq!(kd.get(&keys[0]), None);
        assert!(matches!(&kd.root.kids, Kids::Leaves(v) if v.is_empty()));
    }
}

#[test]
fn sequential_inserts_fill_leaves() {
    for rev in [false, true] {
        let mut kd = KeyDir::new();
        let n = 1000u32;
        for i in 0..n {
            let i = if rev { n - 1 - i } else { i };
            kd.insert(&i.to_be_bytes(), loc(u64::from(i)));
        }
        let mut leaves = 0;
        fn count(n: &Internal, c: &mut usize) {
            match &n.kids {
                Kids::Leaves(v) => *c += v.len(),
                Kids::Nodes(v) => v.iter().for_each(|x| count(x, c)),
            }
        }
        count(&kd.root, &mut leaves);
        assert!(
            leaves <= (n as usize).div_ceil(LEAF_MAX) + 1,
            "{leaves} leaves"
        );
    }
}

#[test]
fn very_long_keys() {
    let mut kd = KeyDir::new();
    let mut model = BTreeMap::new();
    let mut r = Rng(3);
    for i in 0..60u64 {
        let len = match i % 4 {
            0 => MAX_KEY_LEN,
            1 => MAX_KEY_LEN - r.below(100),
            2 => 1 + r.below(40),
            _ => 1000 + r.below(20000),
        };
        let fill = [0x00, 0xff, 0x41][r.below(3)];
        let mut k = vec![fill; len];
        let p = r.below(len);
        k[p] = r.next() as u8;
        assert_eq!(kd.insert(&k, loc(i)), model.insert(k, loc(i)));
    }
    check_all(&kd, &model);
    check_resume(&kd, &model, true, 3);
    for k in model.keys().step_by(2) {
        assert!(kd.remove(k).is_some());
    }
    model = model.into_iter().skip(1).step_by(2).collect();
    check_all(&kd, &model);
}

#[test]
#[should_panic(expected = "MAX_KEY_LEN")]
fn too_long_key_panics() {
    KeyDir::new().insert(&vec![1; MAX_KEY_LEN + 1], loc(0));
}

#[test]
fn send_sync() {
    fn assert<T: Send + Sync>() {}
    assert::<KeyDir>();
    assert_eq!(mem::size_of::<Loc>(), 16);
    assert_eq!(mem::size_of::<Leaf>(), 24);
}

#[test]
fn sampled_count_matches_naive() {
    let mut r = Rng(11);
    for _ in 0..3000 {
        let n = r.below(200);
        // Few distinct top halves, so samples often tie with the probe.
        let mut heads: Vec<u64> = (0..n)
            .map(|_| ((r.below(4) as u64) << 32) | r.below(6) as u64)
            .collect();
        heads.sort_unstable();
        let samples: Vec<u32> = heads.iter().step_by(8).map(|h| (h >> 32) as u32).collect();
        for _ in 0..20 {
            let th = ((r.below(5) as u64) << 32) | r.below(7) as u64;
            let want = heads.iter().filter(|&&h| h < th).count();
            let got = sampled_count(n, th, |j| samples[j], |j| heads[j]);
            assert_eq!(got, want, "{heads:?} {th}");
        }
    }
}

#[test]
fn sorted_builder_in_parts_matches_the_model_and_stays_editable() {
    for (seed, n) in [
        (1u64, 0usize),
        (2, 1),
        (3, 7),
        (4, 9),
        (5, 33),
        (6, 500),
        (7, 3000),
    ] {
        let mut r = Rng(seed);
        let mut model = BTreeMap::new();
        while model.len() < n {
            model.insert(gen_key(&mut r), loc(r.below(1000) as u64));
        }
        // Built in up to three parts, as open does on several cores; empty
        // parts included.
        let cuts = [r.below(n + 1), r.below(n + 1)];
        let (c1, c2) = (cuts[0].min(cuts[1]), cuts[0].max(cuts[1]));
        let mut parts: Vec<SortedBuilder> = (0..3).map(|_| SortedBuilder::default()).collect();
        for (i, (k, l)) in model.iter().enumerate() {
            parts[usize::from(i >= c1) + usize::from(i >= c2)].push(k, *l);
        }
        let mut b = SortedBuilder::default();
        for p in parts {
            b.append(p);
        }
        let mut kd = b.finish();
        check_all(&kd, &model);
        for (k, l) in &model {
            assert_eq!(kd.get(k), Some(*l));
        }
        for _ in 0..50 {
            let k = gen_key(&mut r);
            assert_eq!(kd.get(&k), model.get(&k).copied());
        }
        for rev in [false, true] {
            check_resume(&kd, &model, rev, 3);
        }
        // The built tree takes ordinary edits afterwards.
        for i in 0..n.min(400) {
            let k = gen_key(&mut r);
            if i % 3 == 0 {
                assert_eq!(kd.remove(&k), model.remove(&k));
            } else {
                let l = loc(i as u64);
                assert_eq!(kd.insert(&k, l), model.insert(k, l));
            }
        }
        check_all(&kd, &model);
        for (k, l) in &model {
            assert_eq!(kd.get(k), Some(*l));
        }
    }
}
