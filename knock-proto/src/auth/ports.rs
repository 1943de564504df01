//! The set of ports a rotating door draws its knocks from: `"1024-65535"`, or ranges and single
//! ports separated by commas (`"1024-2221,2223-65535"`), as a door's `ports` says and
//! `knock-server pair` prints it.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::sequence::Port;

/// A non-empty set of ports, kept as sorted, disjoint, non-adjacent ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortSet {
    ranges: Vec<RangeInclusive<u16>>,
}

/// The default `ports` of a rotating door.
pub const DEFAULT_PORTS: &str = "1024-65535";

/// Why a port set's text is not a port set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortSetError {
    /// An item is not `PORT` or `LOW-HIGH`.
    #[error("`{0}` is not a port or a range like 1024-65535")]
    BadItem(String),
    /// A range runs backwards.
    #[error("the range `{0}` runs backwards: write the lower port first")]
    Backwards(String),
    /// Nothing left (empty text, or every port taken out).
    #[error("no ports to knock on")]
    Empty,
}

impl PortSet {
    /// The set of these ranges (any order, overlaps allowed); `None` when empty.
    pub fn from_ranges(ranges: impl IntoIterator<Item = RangeInclusive<u16>>) -> Option<PortSet> {
        let mut ranges: Vec<_> = ranges
            .into_iter()
            .map(|r| (*r.start()).max(1)..=*r.end())
            .filter(|r| !r.is_empty())
            .collect();
        ranges.sort_by_key(|r| *r.start());
        let mut merged: Vec<RangeInclusive<u16>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(*r.start()) <= u32::from(*last.end()) + 1 => {
                    *last = *last.start()..=(*last.end()).max(*r.end());
                }
                _ => merged.push(r),
            }
        }
        (!merged.is_empty()).then_some(PortSet { ranges: merged })
    }

    /// This set less `excluded`; `None` if nothing is left.
    pub fn without(&self, excluded: impl IntoIterator<Item = Port>) -> Option<PortSet> {
        let mut out = self.ranges.clone();
        for port in excluded {
            let p = port.get();
            out = out
                .into_iter()
                .flat_map(|r| {
                    if !r.contains(&p) {
                        return vec![r];
                    }
                    let below = (p > *r.start()).then(|| *r.start()..=p - 1);
                    let above = (p < *r.end()).then(|| p + 1..=*r.end());
                    below.into_iter().chain(above).collect()
                })
                .collect();
        }
        PortSet::from_ranges(out)
    }

    /// How many ports the set holds (1..=65535).
    pub fn len(&self) -> u32 {
        self.ranges
            .iter()
            .map(|r| u32::from(*r.end()) - u32::from(*r.start()) + 1)
            .sum()
    }

    /// Never true: an empty set is not representable. Here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: Port) -> bool {
        self.ranges.iter().any(|r| r.contains(&port.get()))
    }

    /// The `index`-th port in ascending order (0-based), `None` past the end.
    pub fn nth(&self, mut index: u32) -> Option<Port> {
        for r in &self.ranges {
            let len = u32::from(*r.end()) - u32::from(*r.start()) + 1;
            if index < len {
                return u16::try_from(u32::from(*r.start()) + index)
                    .ok()
                    .and_then(Port::new);
            }
            index -= len;
        }
        None
    }
}

impl Default for PortSet {
    fn default() -> PortSet {
        PortSet {
            ranges: vec![1024..=65535],
        }
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

impl FromStr for PortSet {
    type Err = PortSetError;

    fn from_str(s: &str) -> Result<PortSet, PortSetError> {
        let mut ranges = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || PortSetError::BadItem(item.to_owned());
            let port = |p: &str| p.trim().parse::<Port>().map_err(|_| bad());
            let (low, high) = match item.split_once('-') {
                Some((low, high)) => (port(low)?, port(high)?),
                None => (port(item)?, port(item)?),
            };
            if low > high {
                return Err(PortSetError::Backwards(item.to_owned()));
            }
            ranges.push(low.get()..=high.get());
        }
        PortSet::from_ranges(ranges).ok_or(PortSetError::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> PortSet {
        s.parse().unwrap()
    }

    #[test]
    fn parses_merges_and_prints() {
        assert_eq!(set(DEFAULT_PORTS), PortSet::default());
        assert_eq!(set("9,1-3, 4 ,10-12").to_string(), "1-4,9-12");
        assert_eq!(set("7").len(), 1);
        assert_eq!(PortSet::default().len(), 64512);
    }

    #[test]
    fn bad_text_says_why() {
        assert_eq!("".parse::<PortSet>(), Err(PortSetError::Empty));
        assert_eq!(
            "0-9".parse::<PortSet>(),
            Err(PortSetError::BadItem("0-9".into()))
        );
        assert_eq!(
            "9-1".parse::<PortSet>(),
            Err(PortSetError::Backwards("9-1".into()))
        );
        assert_eq!(
            "x".parse::<PortSet>(),
            Err(PortSetError::BadItem("x".into()))
        );
    }

    #[test]
    fn without_cuts_holes_and_nth_walks_the_ranges() {
        let p = |n| Port::new(n).unwrap();
        let s = set("10-14").without([p(10), p(12), p(99)]).unwrap();
        assert_eq!(s.to_string(), "11,13-14");
        assert_eq!(
            (0..4).map(|i| s.nth(i)).collect::<Vec<_>>(),
            [Some(p(11)), Some(p(13)), Some(p(14)), None]
        );
        assert!(s.contains(p(13)) && !s.contains(p(12)));
        assert_eq!(set("5").without([p(5)]), None);
    }
}
