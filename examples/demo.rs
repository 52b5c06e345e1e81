//! `make demo`: open a database in a fresh folder, write, read, delete, reopen, and
//! print what was found.

use bitcask::{Bitcask, Options};

fn main() -> Result<(), bitcask::Error> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo-db");
    let _ = std::fs::remove_dir_all(&dir);
    println!("opening {}", dir.display());
    let db = Bitcask::open(&dir, Options::default())?;
    for (k, v) in [
        ("apple", "red"),
        ("banana", "yellow"),
        ("cherry", "dark red"),
    ] {
        db.put(k.as_bytes(), v.as_bytes())?;
        println!("put    {k} = {v}");
    }
    db.put(b"apple", b"green")?;
    println!("put    apple = green (overwrite)");
    db.delete(b"banana")?;
    println!("delete banana");
    let got = db
        .get(b"apple")?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    println!("get    apple -> {got:?}");
    db.close()?;

    println!("reopening");
    let db = Bitcask::open(&dir, Options::default())?;
    println!("{} keys after reopen:", db.len()?);
    for kv in db.iter()? {
        let (k, v) = kv?;
        println!(
            "  {} = {}",
            String::from_utf8_lossy(&k),
            String::from_utf8_lossy(&v)
        );
    }
    let banana = db.get(b"banana")?;
    println!("banana after reopen: {banana:?}");
    let s = db.stats()?;
    println!(
        "stats: {} keys, {} data files, {} bytes on disk",
        s.keys,
        s.files.len(),
        s.disk_bytes
    );
    Ok(())
}
