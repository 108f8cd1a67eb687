use super::*;

/// The tag of every block in these tests.
const T: [u8; TAG_LEN] = [7; TAG_LEN];

/// A store dir with one (empty) segment file `n` and its path.
fn segment(dir: &Path, n: u64) -> PathBuf {
    let p = segment::segment_path(dir, n, 1_700_000_000_000_000_000);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, segment::segment_header()).unwrap();
    p
}

fn column(users: &[&str]) -> Vec<u8> {
    let mut b = ColumnBuilder::new();
    for u in users {
        b.str("user.name", u);
        b.u64("source.port", 22);
        b.end_row();
    }
    let mut out = Vec::new();
    b.finish(&mut out);
    out
}

fn users(c: &Column) -> Vec<String> {
    let k = c.key_id("user.name").unwrap();
    (0..c.len())
        .map(|i| match c.get(i, k) {
            Some(ValueRef::Str(s)) => s.to_string(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn columns_roundtrip_and_covered_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segment(dir.path(), 0);
    let mut w = FieldsWriter::new(dir.path());
    assert!(!w.covered(0, 16, &T).unwrap());
    w.append(0, 16, &T, 2, &column(&["alice", "bob"])).unwrap();
    w.append(0, 500, &T, 1, &column(&["carol"])).unwrap();
    w.sync().unwrap();
    drop(w);
    let mut idx = SidecarIndex::open(&seg).unwrap();
    assert_eq!(
        users(&idx.column(16, &T, 2, 1 << 20).unwrap()),
        ["alice", "bob"]
    );
    assert_eq!(users(&idx.column(500, &T, 1, 1 << 20).unwrap()), ["carol"]);
    assert!(
        idx.column(16, &T, 3, 1 << 20).is_none(),
        "another record count"
    );
    assert!(idx.column(17, &T, 2, 1 << 20).is_none(), "no such block");
    // Another block at the same offset (recovery cut the first one) never gets its column.
    assert!(idx.column(16, &[8; TAG_LEN], 2, 1 << 20).is_none());
    let mut w = FieldsWriter::new(dir.path());
    assert!(w.covered(0, 16, &T).unwrap());
    assert!(w.covered(0, 500, &T).unwrap());
    assert!(!w.covered(0, 900, &T).unwrap());
    assert!(
        !w.covered(0, 16, &[8; TAG_LEN]).unwrap(),
        "another block at a used offset"
    );
    // A segment that does not exist (removed) gets nothing and counts as covered.
    assert!(w.covered(7, 16, &T).unwrap());
    w.append(7, 16, &T, 1, &column(&["x"])).unwrap();
    assert!(
        !segment::segment_path(dir.path(), 7, 1_700_000_000_000_000_000)
            .with_extension("fld")
            .try_exists()
            .unwrap()
    );
}

#[test]
fn a_torn_tail_is_ignored_by_readers_and_cut_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segment(dir.path(), 0);
    let mut w = FieldsWriter::new(dir.path());
    w.append(0, 16, &T, 1, &column(&["alice"])).unwrap();
    w.append(0, 100, &T, 1, &column(&["bob"])).unwrap();
    drop(w);
    let p = sidecar_path(&seg);
    let good = std::fs::metadata(&p).unwrap().len();
    // Half of a third entry: a crash in the middle of an append.
    let mut b = ColumnBuilder::new();
    b.str("user.name", "carol");
    b.end_row();
    let mut c = Vec::new();
    b.finish(&mut c);
    let mut w = FieldsWriter::new(dir.path());
    w.append(0, 200, &T, 1, &c).unwrap();
    drop(w);
    let full = std::fs::read(&p).unwrap();
    std::fs::write(&p, &full[..full.len() - 3]).unwrap();
    let mut idx = SidecarIndex::open(&seg).unwrap();
    assert_eq!(idx.entries().len(), 2);
    assert!(idx.column(200, &T, 1, 1 << 20).is_none());
    assert_eq!(users(&idx.column(100, &T, 1, 1 << 20).unwrap()), ["bob"]);
    let mut w = FieldsWriter::new(dir.path());
    assert!(!w.covered(0, 200, &T).unwrap(), "the torn block is redone");
    assert_eq!(std::fs::metadata(&p).unwrap().len(), good, "cut on reopen");
    w.append(0, 200, &T, 1, &c).unwrap();
    w.sync().unwrap();
    let mut idx = SidecarIndex::open(&seg).unwrap();
    assert_eq!(users(&idx.column(200, &T, 1, 1 << 20).unwrap()), ["carol"]);
}

#[test]
fn a_flipped_byte_anywhere_never_yields_wrong_fields() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segment(dir.path(), 0);
    let mut w = FieldsWriter::new(dir.path());
    w.append(0, 16, &T, 2, &column(&["alice", "bob"])).unwrap();
    w.append(0, 100, &T, 1, &column(&["carol"])).unwrap();
    drop(w);
    let p = sidecar_path(&seg);
    let bytes = std::fs::read(&p).unwrap();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x20;
        std::fs::write(&p, &b).unwrap();
        // Every column a reader hands out is exactly the one written.
        if let Some(mut idx) = SidecarIndex::open(&seg) {
            if let Some(c) = idx.column(16, &T, 2, 1 << 20) {
                assert_eq!(users(&c), ["alice", "bob"], "byte {i}");
            }
            if let Some(c) = idx.column(100, &T, 1, 1 << 20) {
                assert_eq!(users(&c), ["carol"], "byte {i}");
            }
        }
        // The writer keeps only what checks, and covers exactly that.
        let mut w = FieldsWriter::new(dir.path());
        let first = w.covered(0, 16, &T).unwrap();
        let second = w.covered(0, 100, &T).unwrap();
        drop(w);
        let mut idx = SidecarIndex::open(&seg);
        let got = |idx: &mut Option<SidecarIndex>, o, n| {
            idx.as_mut()
                .and_then(|x| x.column(o, &T, n, 1 << 20))
                .is_some()
        };
        assert_eq!(got(&mut idx, 16, 2), first, "byte {i}");
        assert_eq!(got(&mut idx, 100, 1), second, "byte {i}");
    }
}

#[test]
fn orphans_of_removed_segments_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segment(dir.path(), 0);
    let mut w = FieldsWriter::new(dir.path());
    w.append(0, 16, &T, 1, &column(&["alice"])).unwrap();
    drop(w);
    std::fs::remove_file(&seg).unwrap();
    assert!(sidecar_path(&seg).try_exists().unwrap());
    let _w = FieldsWriter::new(dir.path());
    assert!(!sidecar_path(&seg).try_exists().unwrap());
}
