//! Shared, immutable strings for the process table, and the interner that deduplicates them.
//!
//! Thousands of processes usually share a handful of executables, working directories and
//! command lines: a host with 10,000 workers of one service holds the same few strings 10,000
//! times if every process owns its copies. A [`SharedStr`] is a reference-counted string, so a
//! forked child (which starts as a copy of its parent) and a copy-on-write update of a process
//! snapshot share the text instead of copying it, and the [`Interner`] makes processes loaded
//! from /proc or updated by exec share one copy per distinct text.

use std::{
    borrow::Borrow,
    collections::HashSet,
    fmt,
    hash::Hash,
    ops::Deref,
    sync::{Arc, LazyLock},
};

/// An immutable, cheaply cloned string: clones share one allocation.
///
/// Reads like a `String` (`&*s`, [`SharedStr::as_str`], `Display`, comparisons with `str` and
/// `String`) and serialises as a plain string, so it can stand where the state used to keep
/// `String`s.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both are the same copy (not merely equal texts).
    pub fn ptr_eq(this: &SharedStr, other: &SharedStr) -> bool {
        Arc::ptr_eq(&this.0, &other.0)
    }
}

impl Default for SharedStr {
    /// The empty string. Every empty `SharedStr` shares one allocation, so defaulted fields
    /// (a process known only from an event has no path or cwd) cost nothing each.
    fn default() -> SharedStr {
        static EMPTY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));
        SharedStr(Arc::clone(&EMPTY))
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for SharedStr {
    /// Like a `String`'s: the quoted text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for SharedStr {
    fn from(text: &str) -> SharedStr {
        SharedStr(Arc::from(text))
    }
}

impl From<String> for SharedStr {
    fn from(text: String) -> SharedStr {
        SharedStr(Arc::from(text))
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(text: Arc<str>) -> SharedStr {
        SharedStr(text)
    }
}

impl From<SharedStr> for Arc<str> {
    fn from(text: SharedStr) -> Arc<str> {
        text.0
    }
}

impl From<SharedStr> for serde_json::Value {
    /// A JSON string, as a `String` converts.
    fn from(text: SharedStr) -> serde_json::Value {
        serde_json::Value::String(text.to_string())
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        self == &*other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

/// The empty list. All empty lists share one allocation: most processes have no captured
/// environment, and processes known only from events have no arguments.
pub fn empty_list() -> Arc<[String]> {
    static EMPTY: LazyLock<Arc<[String]>> = LazyLock::new(|| Arc::from(Vec::new()));
    Arc::clone(&EMPTY)
}

/// An immutable, cheaply cloned list of strings (a process's arguments): clones share one
/// allocation.
///
/// Reads like a `Vec<String>` (it dereferences to `[String]`, iterates, and compares with
/// vectors, arrays and slices of anything a `String` compares with) and serialises as a plain
/// list.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SharedList(Arc<[String]>);

impl SharedList {
    /// Whether both are the same copy (not merely equal lists).
    pub fn ptr_eq(this: &SharedList, other: &SharedList) -> bool {
        Arc::ptr_eq(&this.0, &other.0)
    }
}

impl Default for SharedList {
    /// The empty list, shared (see [`empty_list`]).
    fn default() -> SharedList {
        SharedList(empty_list())
    }
}

impl Deref for SharedList {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Debug for SharedList {
    /// Like a `Vec<String>`'s: the bracketed, quoted items.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<'a> IntoIterator for &'a SharedList {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Vec<String>> for SharedList {
    fn from(items: Vec<String>) -> SharedList {
        SharedList(Arc::from(items))
    }
}

impl From<Arc<[String]>> for SharedList {
    fn from(items: Arc<[String]>) -> SharedList {
        SharedList(items)
    }
}

impl<T> PartialEq<Vec<T>> for SharedList
where
    String: PartialEq<T>,
{
    fn eq(&self, other: &Vec<T>) -> bool {
        self.0[..] == other[..]
    }
}

impl<T> PartialEq<[T]> for SharedList
where
    String: PartialEq<T>,
{
    fn eq(&self, other: &[T]) -> bool {
        self.0[..] == *other
    }
}

impl<T, const N: usize> PartialEq<[T; N]> for SharedList
where
    String: PartialEq<T>,
{
    fn eq(&self, other: &[T; N]) -> bool {
        self.0[..] == other[..]
    }
}

/// Smallest number of distinct values kept before unused ones are swept out.
const MIN_SWEEP_AT: usize = 1024;

/// Longest value (in bytes of text) worth interning. Longer ones (long command lines) are rarely
/// shared but by forks, which share them anyway; keeping them out of the set bounds what it can
/// hold for values nothing uses any more between two sweeps.
const MAX_INTERNED_BYTES: usize = 1024;

/// Deduplicates values (strings, argument lists) so that equal ones share one allocation.
///
/// The set only ever holds values that are also held elsewhere, apart from those whose last
/// holder went away since the last sweep: sweeps run when the set has doubled since the
/// previous one, so the cost is amortised constant per insert and the set never holds more than
/// about twice the live distinct values.
#[derive(Debug)]
pub struct Interner<T: ?Sized> {
    values: HashSet<Arc<T>>,
    sweep_at: usize,
}

impl<T: ?Sized> Default for Interner<T> {
    fn default() -> Interner<T> {
        Interner {
            values: HashSet::new(),
            sweep_at: MIN_SWEEP_AT,
        }
    }
}

impl<T: ?Sized + Hash + Eq> Interner<T> {
    /// The shared copy of `value`, if there is one.
    fn find(&self, value: &T) -> Option<Arc<T>> {
        self.values.get(value).map(Arc::clone)
    }

    /// Adds `shared` (not held yet), sweeping out unused values first when the set has doubled.
    fn add(&mut self, shared: &Arc<T>) {
        if self.values.len() >= self.sweep_at {
            // Only the set holds these: nothing uses the value any more.
            self.values.retain(|held| Arc::strong_count(held) > 1);
            self.values.shrink_to_fit();
            self.sweep_at = (self.values.len() * 2).max(MIN_SWEEP_AT);
        }
        self.values.insert(Arc::clone(shared));
    }

    /// Number of distinct values held (including any not yet swept).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl Interner<str> {
    /// The shared copy of `text`.
    pub fn intern(&mut self, text: &str) -> SharedStr {
        if text.len() > MAX_INTERNED_BYTES {
            return SharedStr::from(text);
        }
        if let Some(shared) = self.find(text) {
            return SharedStr(shared);
        }
        let shared = Arc::from(text);
        self.add(&shared);
        SharedStr(shared)
    }
}

impl Interner<[String]> {
    /// The shared copy of the list `items`, every string in it exactly sized.
    pub fn intern_list(&mut self, items: Vec<String>) -> SharedList {
        SharedList(self.intern_slice(items))
    }

    fn intern_slice(&mut self, items: Vec<String>) -> Arc<[String]> {
        if items.is_empty() {
            return empty_list();
        }
        let bytes: usize = items.iter().map(String::len).sum();
        let interned = bytes <= MAX_INTERNED_BYTES;
        if interned && let Some(shared) = self.find(&items) {
            return shared;
        }
        let shared: Arc<[String]> = items
            .into_iter()
            .map(|mut item| {
                item.shrink_to_fit();
                item
            })
            .collect();
        if interned {
            self.add(&shared);
        }
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_str_reads_like_a_string() {
        let text = SharedStr::from("/usr/bin/bash");
        assert_eq!(text, "/usr/bin/bash");
        assert_eq!("/usr/bin/bash", text);
        assert_eq!(text, String::from("/usr/bin/bash"));
        assert_eq!(text.as_str().rsplit('/').next(), Some("bash"));
        assert_eq!(
            format!("{text} {text:?}"),
            "/usr/bin/bash \"/usr/bin/bash\""
        );
        assert_eq!(
            serde_json::to_string(&text).unwrap(),
            "\"/usr/bin/bash\"",
            "serialised like a String"
        );
        let back: SharedStr = serde_json::from_str("\"/usr/bin/bash\"").unwrap();
        assert_eq!(back, text);
        assert_eq!(SharedStr::default(), "");
    }

    #[test]
    fn equal_texts_share_one_allocation() {
        let mut interner = Interner::<str>::default();
        let a = interner.intern("/usr/bin/sleep");
        let b = interner.intern(&String::from("/usr/bin/sleep"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(interner.len(), 1);

        let mut lists = Interner::<[String]>::default();
        let x = lists.intern_list(vec!["hold".into(), "--count".into()]);
        let y = lists.intern_list(vec!["hold".into(), "--count".into()]);
        assert!(SharedList::ptr_eq(&x, &y));
        assert_eq!(x, ["hold", "--count"]);
        assert_eq!(x, vec!["hold", "--count"]);
        assert_eq!(format!("{x:?}"), r#"["hold", "--count"]"#);
        assert_eq!(serde_json::to_string(&x).unwrap(), r#"["hold","--count"]"#);

        // Long values are not kept in the set (but still shared by clones).
        let long = "x".repeat(MAX_INTERNED_BYTES + 1);
        let before = interner.len();
        assert_eq!(interner.intern(&long), long.as_str());
        assert_eq!(interner.len(), before);
        assert_eq!(lists.intern_list(vec![long.clone()]), [long]);
        assert_eq!(lists.len(), 1);
    }

    #[test]
    fn unused_values_are_swept() {
        let mut interner = Interner::<str>::default();
        let kept = interner.intern("kept");
        for n in 0..10 * MIN_SWEEP_AT {
            drop(interner.intern(&n.to_string()));
        }
        assert!(interner.len() <= 2 * MIN_SWEEP_AT, "{}", interner.len());
        // What is still in use stays shared.
        assert!(Arc::ptr_eq(&interner.intern("kept").0, &kept.0));
    }
}
