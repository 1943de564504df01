//! Config errors that point at the place: `file:line:column: what is wrong`, with the source
//! line and a caret under the column, like `toml`'s own errors.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is about the file as a whole.
    pub line: usize,
    /// 1-based column, when a column is meaningful.
    pub column: Option<usize>,
    /// The offending source line, shown under the message.
    pub source_line: Option<String>,
    /// What is wrong and, where we can tell, how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// A problem at `line` (1-based) of `text`, read from `file`.
    pub fn at_line(file: &Path, text: &str, line: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_owned(),
            line,
            column: None,
            source_line: text.lines().nth(line.saturating_sub(1)).map(str::to_owned),
            message: message.into(),
        }
    }

    /// A problem at byte `offset` of `text`: line and column are computed from it.
    pub fn at_offset(
        file: &Path,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Diagnostic {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Diagnostic {
            column: Some(column),
            ..Diagnostic::at_line(file, text, line, message)
        }
    }

    /// A problem with the file as a whole (empty, unreadable, no doors).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_owned(),
            line: 0,
            column: None,
            source_line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(src) = &self.source_line {
            let gutter = self.line.to_string().len();
            write!(f, "\n{:gutter$} |\n{} | {}", "", self.line, src)?;
            if let Some(c) = self.column {
                let pad: String = src
                    .chars()
                    .take(c.saturating_sub(1))
                    .map(|ch| if ch == '\t' { '\t' } else { ' ' })
                    .collect();
                write!(f, "\n{:gutter$} | {pad}^", "")?;
            }
        }
        Ok(())
    }
}

/// Every problem found in one file, in source order. Parsers collect them all rather than
/// stopping at the first, so one run of `--check` shows everything to fix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Puts the problems in source order (whole-file problems first); stable, so problems on
    /// the same spot keep the order they were found in.
    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| (d.line, d.column));
    }

    /// `Ok(value)` when nothing was found, else every problem in source order.
    pub fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            self.sort();
            Err(self)
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The candidate closest to `word`, if it is close enough to be a likely typo
/// (for "unknown key `sequnce`, did you mean `sequence`?").
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_and_caret() {
        let text = "[options]\n  sequnce = 1\n";
        let d = Diagnostic::at_offset(Path::new("k.conf"), text, 12, "unknown key `sequnce`");
        assert_eq!(d.line, 2);
        assert_eq!(d.column, Some(3));
        assert_eq!(
            d.to_string(),
            "k.conf:2:3: unknown key `sequnce`\n  |\n2 |   sequnce = 1\n  |   ^"
        );
    }
}
