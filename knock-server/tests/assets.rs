//! man/knock-server.8 is what the binary generates. Regenerate with
//! `KNOCK_UPDATE_ASSETS=1 cargo test -p knock-server --test assets`.

use std::path::Path;
use std::process::Command;

#[test]
fn man_page_is_current() {
    let out = Command::new(env!("CARGO_BIN_EXE_knock-server"))
        .arg("--man")
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man/knock-server.8");
    if std::env::var_os("KNOCK_UPDATE_ASSETS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &out.stdout).unwrap();
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == out.stdout,
        "{} is stale: run KNOCK_UPDATE_ASSETS=1 cargo test -p knock-server --test assets",
        path.display()
    );
}
