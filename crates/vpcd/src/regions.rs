//! Regions: one namespace for both protocols.
//!
//! v2 requests name a region by its short code (`gz`), API 3.0 requests by
//! its name (`ap-guangzhou`); both denote the same region, and every
//! resource is stored under ONE canonical value: the short code, which is
//! what v2 callers stored before 3.0 existed (so no stored row changes).
//! Either spelling is accepted by either protocol. Anything outside the
//! configured list (`vpcd serve --regions`) is refused.
//!
//! The default list pairs the public 3.0 names with the short codes that
//! Tencent's own `RegionCode` field uses (reference `tencent-api3.md`,
//! "Regions"). A private deployment names its own regions: an entry without
//! `=` is one name used by both protocols.

use std::fmt;
use std::str::FromStr;

/// The default list: `3.0 name=short code`.
const DEFAULT: &[(&str, &str)] = &[
    ("ap-guangzhou", "gz"),
    ("ap-shanghai", "sh"),
    ("ap-beijing", "bj"),
    ("ap-chengdu", "cd"),
    ("ap-chongqing", "cq"),
    ("ap-nanjing", "nj"),
    ("ap-hongkong", "hk"),
    ("ap-singapore", "sg"),
    ("ap-shanghai-fsi", "shjr"),
    ("ap-shenzhen-fsi", "szjr"),
    ("ap-seoul", "kr"),
    ("ap-tokyo", "jp"),
    ("ap-bangkok", "th"),
    ("ap-mumbai", "in"),
    ("na-siliconvalley", "usw"),
    ("na-ashburn", "use"),
    ("na-toronto", "ca"),
    ("eu-frankfurt", "de"),
];

/// Longest region name or code.
const NAME_MAX: usize = 32;

/// One region: its 3.0 name and its short code (the stored, canonical value;
/// equal to the name for a region with one spelling).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Region {
    name: String,
    code: String,
}

/// The regions a vpcd serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    list: Vec<Region>,
}

impl Default for Regions {
    fn default() -> Self {
        Regions {
            list: DEFAULT
                .iter()
                .map(|(name, code)| Region {
                    name: (*name).to_owned(),
                    code: (*code).to_owned(),
                })
                .collect(),
        }
    }
}

fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= NAME_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "region {s:?}: expected 1-{NAME_MAX} lower-case letters, digits or '-'"
        ))
    }
}

impl FromStr for Regions {
    type Err = String;

    /// `name=code,name=code,...`; an entry without `=` is one name for both.
    /// Every spelling must be unique across the list.
    fn from_str(spec: &str) -> Result<Self, String> {
        let mut list: Vec<Region> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, code) = entry.split_once('=').unwrap_or((entry, entry));
            let (name, code) = (name.trim(), code.trim());
            check_name(name)?;
            check_name(code)?;
            for r in &list {
                for s in [name, code] {
                    if s == r.name || s == r.code {
                        return Err(format!("region {s:?} is listed twice"));
                    }
                }
            }
            list.push(Region {
                name: name.to_owned(),
                code: code.to_owned(),
            });
        }
        if list.is_empty() {
            return Err("the region list is empty".to_owned());
        }
        Ok(Regions { list })
    }
}

impl fmt::Display for Regions {
    /// The list in `--regions` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.name == r.code {
                f.write_str(&r.name)?;
            } else {
                write!(f, "{}={}", r.name, r.code)?;
            }
        }
        Ok(())
    }
}

impl Regions {
    /// The stored (canonical) value of a region given in either spelling, or
    /// `None` when it is not served.
    pub fn canonical(&self, given: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|r| r.name == given || r.code == given)
            .map(|r| r.code.as_str())
    }

    /// Every region served, as (name, code), in the configured order.
    pub(crate) fn list(&self) -> Vec<(String, String)> {
        self.list
            .iter()
            .map(|r| (r.name.clone(), r.code.clone()))
            .collect()
    }

    /// Why `given` is refused: a few of the served regions, for the message.
    pub(crate) fn refusal(&self) -> String {
        const SHOWN: usize = 4;
        let shown: Vec<String> = self
            .list
            .iter()
            .take(SHOWN)
            .map(|r| {
                if r.name == r.code {
                    r.name.clone()
                } else {
                    format!("{} ({})", r.name, r.code)
                }
            })
            .collect();
        let more = if self.list.len() > SHOWN { ", ..." } else { "" };
        format!(
            "not a region this vpcd serves (it serves {}{more})",
            shown.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_are_one_region() {
        let r = Regions::default();
        assert_eq!(r.canonical("ap-guangzhou"), Some("gz"));
        assert_eq!(r.canonical("gz"), Some("gz"));
        assert_eq!(r.canonical("eu-frankfurt"), Some("de"));
        assert_eq!(r.canonical("ap-mars"), None);
        assert_eq!(r.canonical("GZ"), None);
        assert!(r.refusal().contains("ap-guangzhou (gz)"));
    }

    #[test]
    fn lists_parse_and_print_back() {
        let r: Regions = "ap-guangzhou=gz, lab-1".parse().unwrap();
        assert_eq!(r.canonical("lab-1"), Some("lab-1"));
        assert_eq!(r.canonical("ap-guangzhou"), Some("gz"));
        assert_eq!(r.to_string(), "ap-guangzhou=gz,lab-1");
        assert_eq!(
            Regions::default().to_string().parse::<Regions>().unwrap(),
            Regions::default()
        );
        for bad in [
            "",
            "gz,gz",
            "a=gz,gz",
            "Upper",
            "a=b=c",
            "x=",
            &"x".repeat(33),
        ] {
            assert!(bad.parse::<Regions>().is_err(), "{bad:?}");
        }
    }
}
