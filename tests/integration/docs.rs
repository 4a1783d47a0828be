use std::path::Path;

use crate::harness::*;

/// Generate into a temp dir and compare byte for byte with what is committed.
fn assert_no_drift(kind: &str, committed: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgbackup"))
        .env_clear()
        .args(["generate", kind])
        .arg(tmp.path())
        .output()
        .unwrap();
    Run::from(out).expect_code(0);
    let mut n = 0;
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let fresh = std::fs::read(e.path()).unwrap();
        let old = std::fs::read(committed.join(&name)).unwrap_or_else(|_| {
            panic!(
                "{} is not committed: run `pgbackup generate {kind} {}`",
                name.to_string_lossy(),
                committed.display()
            )
        });
        assert!(
            fresh == old,
            "{} drifted from the CLI: run `cargo run -- generate {kind} {}` and commit",
            name.to_string_lossy(),
            committed.display()
        );
        n += 1;
    }
    assert!(n >= 3, "too few generated files: {n}");
}

#[test]
fn man_pages_match_the_cli() {
    assert_no_drift("man", &repo().join("man"));
}

#[test]
fn completions_match_the_cli() {
    assert_no_drift("completions", &repo().join("packaging/completions"));
}

#[test]
fn man_pages_are_mandoc_lint_clean() {
    let mut pages = 0;
    for e in std::fs::read_dir(repo().join("man")).unwrap() {
        let p = e.unwrap().path();
        let out = std::process::Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&p)
            .output()
            .expect(
                "mandoc (Debian package mandoc) must be installed: scripts/test.sh installs it",
            );
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        pages += 1;
    }
    assert!(pages >= 10, "{pages} pages");
}

/// What README holds between `<!-- NAME ... -->` (the rest of that line is a comment) and
/// `<!-- /NAME -->`.
fn readme_section(name: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let open = format!("<!-- {name}");
    let start = readme
        .find(&open)
        .and_then(|i| readme[i..].find('\n').map(|n| i + n + 1))
        .unwrap_or_else(|| panic!("README has no {open} marker"));
    let end = readme
        .find(&format!("<!-- /{name} -->"))
        .unwrap_or_else(|| panic!("README has no <!-- /{name} --> marker"));
    readme[start..end].to_string()
}

/// README's exit-code table is the one in src/exit.rs (which also renders --help and the man
/// pages): one table, written once.
#[test]
fn readme_exit_codes_are_the_table() {
    assert_eq!(
        readme_section("exit-codes"),
        pgbackup::exit::markdown(),
        "README's exit codes drifted from src/exit.rs"
    );
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_pgbackup"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for row in pgbackup::exit::TABLE {
        assert!(help.contains(row.code), "--help lacks {}", row.code);
    }
}

/// README's environment-variable table is the one in src/config/env.rs.
#[test]
fn readme_environment_variables_are_the_table() {
    assert_eq!(
        readme_section("env"),
        pgbackup::config::env::markdown(),
        "README's environment table drifted from src/config/env.rs (paste the markdown() output)"
    );
}
