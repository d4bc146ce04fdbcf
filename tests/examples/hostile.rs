//! Writes every hostile profile of `pprofhouse_tests::hostile` into a directory (for
//! `tests/benches/hostile.sh`): `cargo run --release -p pprofhouse-tests --example hostile DIR`.
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: hostile DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes, limit) in pprofhouse_tests::hostile::all() {
        let path = dir.join(format!("{name}.pb.gz"));
        std::fs::write(&path, bytes).unwrap();
        println!("{}\t{limit}", path.display());
    }
}
