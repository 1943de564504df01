//! The documentation's links: every relative link in README.md, the other top-level pages and
//! docs/*.md names a file that exists and, with a `#anchor`, a heading of that file under
//! GitHub's anchor rules; README links every page of docs/; each of those pages has one
//! title. Needs no root:
//! `cargo test -p knock-e2e --test docs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root")
}

/// README.md and the other top-level pages, then docs/*.md.
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages = Vec::new();
    for dir in [root.clone(), root.join("docs")] {
        let mut here: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        here.sort();
        pages.extend(here);
    }
    pages
}

/// The lines of `text` outside fenced code blocks, with their 1-based numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((i + 1, line));
        }
    }
    lines
}

/// `line` without its inline code spans, so that `[a](b)` written as code is not a link.
fn without_code(line: &str) -> String {
    let mut out = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        }
    }
    out
}

/// The targets of the inline links `[text](target)` on `line`.
fn links(line: &str) -> Vec<String> {
    let line = without_code(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split_whitespace().next().unwrap_or("");
        targets.push(target.to_string());
        rest = &rest[end..];
    }
    targets
}

/// GitHub's anchor for a heading: the text as shown (links as their text), lowercase, spaces
/// as `-`, everything but letters, digits, `-` and `_` dropped.
fn slug(heading: &str) -> String {
    let mut shown = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](") else {
            break;
        };
        let Some(close) = rest[open + mid..].find(')') else {
            break;
        };
        shown.push_str(&rest[..open]);
        shown.push_str(&rest[open + 1..open + mid]);
        rest = &rest[open + mid + close + 1..];
    }
    shown.push_str(rest);
    shown
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings; a repeated one gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    anchors
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(
        slug(" Quick start (a fresh Debian machine)"),
        "quick-start-a-fresh-debian-machine"
    );
    assert_eq!(
        slug(" Operator control: status and close"),
        "operator-control-status-and-close"
    );
    assert_eq!(
        slug(" ssh in one step (`--proxy`)"),
        "ssh-in-one-step---proxy"
    );
    assert_eq!(
        slug(" Doors that open ports (`open`) and your existing firewall"),
        "doors-that-open-ports-open-and-your-existing-firewall"
    );
    assert_eq!(
        slug(" Retransmissions: which senders open which doors"),
        "retransmissions-which-senders-open-which-doors"
    );
    assert_eq!(slug(" Using [knock](x.md) here"), "using-knock-here");
    let twice = anchors("# A\n## A\n```\n# not a heading\n```\n#not one either\n");
    assert_eq!(twice, ["a".to_string(), "a-1".to_string()].into());
}

#[test]
fn every_relative_link_names_a_file_and_heading_that_exist() {
    let root = root();
    let mut broken = Vec::new();
    for page in pages() {
        let text = fs::read_to_string(&page).expect("read a page");
        let shown = page
            .strip_prefix(&root)
            .unwrap_or(&page)
            .display()
            .to_string();
        for (n, line) in prose(&text) {
            for target in links(line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let file = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().expect("a page's directory").join(file)
                };
                if !file.exists() {
                    broken.push(format!("{shown}:{n}: {target}: no such file"));
                    continue;
                }
                if anchor.is_empty() {
                    continue;
                }
                let heads = fs::read_to_string(&file)
                    .map(|t| anchors(&t))
                    .unwrap_or_default();
                if !heads.contains(anchor) {
                    broken.push(format!(
                        "{shown}:{n}: {target}: no heading with that anchor"
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn readme_links_every_page_of_docs() {
    let root = root();
    let readme = fs::read_to_string(root.join("README.md")).expect("read README.md");
    let linked: BTreeSet<String> = prose(&readme)
        .into_iter()
        .flat_map(|(_, line)| links(line))
        .map(|t| t.split('#').next().unwrap_or("").to_string())
        .collect();
    let missing: Vec<String> = pages()
        .into_iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("docs")))
        .map(|p| format!("docs/{}", p.file_name().expect("a name").to_string_lossy()))
        .filter(|p| !linked.contains(p))
        .collect();
    assert!(missing.is_empty(), "README.md links none of {missing:?}");
}

#[test]
fn readme_and_each_page_of_docs_have_one_title() {
    let root = root();
    let mut wrong = Vec::new();
    for page in pages() {
        let in_docs = page.parent().is_some_and(|d| d.ends_with("docs"));
        if !in_docs && !page.ends_with("README.md") {
            continue;
        }
        let text = fs::read_to_string(&page).expect("read a page");
        let titles: Vec<usize> = prose(&text)
            .into_iter()
            .filter(|(_, line)| line.starts_with("# "))
            .map(|(n, _)| n)
            .collect();
        if titles.len() != 1 {
            let shown = page.strip_prefix(&root).unwrap_or(&page).display();
            wrong.push(format!("{shown}: `# ` titles on lines {titles:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "one `# ` title per page:\n{}",
        wrong.join("\n")
    );
}
