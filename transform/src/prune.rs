//! pprof's frame filters: the profile's own `drop_frames` and `keep_frames`.
//!
//! Right after symbolizing, `go tool pprof` prunes every profile it reads with the two regular
//! expressions the profile carries (google/pprof `profile/prune.go`, `RemoveUninteresting`, called
//! from `internal/driver/fetch.go`). Runtime/pprof never sets them; profiles converted from the
//! legacy formats do (`pprof -proto` of a gperftools heap, CPU or contention profile keeps the
//! allocator, signal-handler or lock frames it named), and so may any writer that wants its own
//! plumbing out of the report. When `drop_frames` is set:
//!
//! - each pattern is matched as `^(pattern)$` against a function's name as the symbolizer left
//!   it ([`crate::symbolize::pprof_name`]), after a leading `.` and everything from the first `(`
//!   are cut ([`simplify`]);
//! - a location whose outermost matching line (dropped, and not kept) is its last line is
//!   *pruned*; one whose match is further in keeps only the lines outside the match (for every
//!   sample that has it) and is *pruned beneath*;
//! - each sample is scanned from its root: frames before the first frame that is neither stay;
//!   at the first pruned location after that, it and every frame beneath it go; at the first
//!   pruned-beneath location, every frame beneath it goes.
//!
//! A pattern that does not compile (for Go's `regexp`: here, one `regex` rejects or one that
//! compiles past [`REGEX_SIZE_LIMIT`]) means no pruning at all, as pprof ignores the error. How
//! long a pattern may be is [`crate::pprof::Limits::max_frame_filter_bytes`], checked when
//! decoding. Two differences with Go's `regexp` remain: `\w`, `\d`, `\s` and `\b` are Unicode
//! classes here and ASCII in Go, and `\Q…\E` is not supported (such a pattern prunes nothing);
//! they matter only to patterns that use them on names beyond ASCII.

use regex::bytes::{Regex, RegexBuilder};

use crate::pprof::Profile;

/// The most memory one compiled pattern may take (`regex`'s size limit), in bytes.
pub const REGEX_SIZE_LIMIT: usize = 4 << 20;

/// A profile's `drop_frames` / `keep_frames`, compiled.
#[derive(Debug)]
pub(crate) struct FrameFilter {
    drop: Regex,
    keep: Option<Regex>,
}

impl FrameFilter {
    /// The profile's filter; `None` when it has none (`drop_frames` empty) or when either
    /// pattern does not compile.
    pub(crate) fn of(profile: &Profile) -> Option<FrameFilter> {
        let (drop, keep) = profile.frame_filters();
        if drop.is_empty() {
            return None;
        }
        let drop = compile(drop)?;
        let keep = if keep.is_empty() { None } else { Some(compile(keep)?) };
        Some(FrameFilter { drop, keep })
    }

    /// Whether a function of this (symbolized, non-empty) name is dropped.
    pub(crate) fn drops(&self, name: &[u8]) -> bool {
        let name = simplify(name);
        self.drop.is_match(name) && !self.keep.as_ref().is_some_and(|k| k.is_match(name))
    }
}

fn compile(pattern: &[u8]) -> Option<Regex> {
    // Go refuses a pattern that is not UTF-8 (`ErrInvalidUTF8`).
    let pattern = std::str::from_utf8(pattern).ok()?;
    RegexBuilder::new(&format!("^({pattern})$")).size_limit(REGEX_SIZE_LIMIT).build().ok()
}

/// The name a pattern is matched against (pprof's `simplifyFunc`): without a leading `.` (PPC64
/// ELFv1 function descriptors), cut at the first `(` that does not begin `(anonymous namespace)`
/// or belong to `operator()`.
///
/// This is the rule of the `go tool pprof` the oracles come from (Go 1.19's vendored pprof,
/// which finds `\(anonymous namespace\)|operator\(\)|\(` left to right). Current google/pprof
/// cuts at the first `(` past the name's first byte unless the text from it begins
/// `(anonymous namespace)`: the two differ only on names with `operator()`, or with an
/// anonymous-namespace marker after an earlier `(`.
pub(crate) fn simplify(name: &[u8]) -> &[u8] {
    const RESERVED: [&[u8]; 2] = [b"(anonymous namespace)", b"operator()"];
    let name = name.strip_prefix(b".").unwrap_or(name);
    let mut i = 0;
    while i < name.len() {
        if let Some(r) = RESERVED.iter().find(|r| name[i..].starts_with(r)) {
            i += r.len();
        } else if name[i] == b'(' {
            return &name[..i];
        } else {
            i += 1;
        }
    }
    name
}

/// What the filter does to one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Nothing.
    Keep,
    /// Pruned beneath: the location stays, with the lines outside the match.
    Beneath,
    /// Pruned: its outermost line matched.
    Whole,
}

/// The position of a location's outermost dropped line, and what that makes of the location;
/// `dropped(line)` says whether the line at that position (innermost first) is dropped.
pub(crate) fn location_cut(lines: usize, mut dropped: impl FnMut(usize) -> bool) -> (Cut, usize) {
    match (0..lines).rev().find(|&i| dropped(i)) {
        None => (Cut::Keep, 0),
        Some(i) if i == lines - 1 => (Cut::Whole, i),
        Some(i) => (Cut::Beneath, i),
    }
}

/// The part of a stack (location positions, leaf first) that stays, given each location's cut.
pub(crate) fn pruned_stack<'a>(stack: &'a [u32], cut: &[Cut]) -> &'a [u32] {
    let mut found_user = false;
    for i in (0..stack.len()).rev() {
        match cut[stack[i] as usize] {
            Cut::Keep => found_user = true,
            _ if !found_user => {}
            Cut::Whole => return &stack[i + 1..],
            Cut::Beneath => return &stack[i..],
        }
    }
    stack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplify_is_pprofs_simplify_func() {
        for (name, want) in [
            ("main.(*T).Method", "main."),
            ("foo(int)", "foo"),
            (".foo", "foo"),
            ("..foo", ".foo"),
            ("(anonymous namespace)::f(int)", "(anonymous namespace)::f"),
            ("a::operator()(int)", "a::operator()"),
            ("a::operator()", "a::operator()"),
            ("(x)", ""),
            ("plain", "plain"),
            ("", ""),
            ("f(anonymous namespace)", "f(anonymous namespace)"),
            ("operator(", "operator"),
        ] {
            assert_eq!(simplify(name.as_bytes()), want.as_bytes(), "{name}");
        }
    }

    #[test]
    fn location_cuts_at_the_outermost_match() {
        let cut = |dropped: &[bool]| location_cut(dropped.len(), |i| dropped[i]);
        assert_eq!(cut(&[]), (Cut::Keep, 0));
        assert_eq!(cut(&[false, false]), (Cut::Keep, 0));
        assert_eq!(cut(&[true]), (Cut::Whole, 0));
        assert_eq!(cut(&[true, false, true]), (Cut::Whole, 2));
        assert_eq!(cut(&[true, true, false]), (Cut::Beneath, 1));
    }

    #[test]
    fn stacks_keep_what_is_above_the_first_cut_after_a_user_frame() {
        use Cut::*;
        // Locations 0..: their cuts.
        let cut = [Keep, Whole, Beneath, Keep, Whole];
        // Leaf first.
        assert_eq!(pruned_stack(&[1, 0, 3], &cut), &[0, 3]);
        assert_eq!(pruned_stack(&[3, 2, 0], &cut), &[2, 0]);
        // Root frames that match stay, and so does the stack below them until a user frame.
        assert_eq!(pruned_stack(&[1, 4], &cut), &[1, 4]);
        assert_eq!(pruned_stack(&[1, 0, 4], &cut), &[0, 4]);
        // The first cut from the root wins.
        assert_eq!(pruned_stack(&[1, 0, 2, 3], &cut), &[2, 3]);
        assert_eq!(pruned_stack(&[], &cut), &[] as &[u32]);
    }

    #[test]
    fn patterns_match_whole_names_and_bad_ones_filter_nothing() {
        let f = |drop: &str, keep: &str, name: &str| {
            let filter = FrameFilter {
                drop: compile(drop.as_bytes()).unwrap(),
                keep: (!keep.is_empty()).then(|| compile(keep.as_bytes()).unwrap()),
            };
            filter.drops(name.as_bytes())
        };
        assert!(f("malloc|free", "", "malloc"));
        assert!(!f("malloc|free", "", "xmalloc"), "anchored on both ends");
        assert!(!f("mall", "", "malloc"));
        assert!(f("runtime\\..*", "", "runtime.mallocgc"));
        assert!(!f("runtime\\..*", "runtime\\.panic.*", "runtime.panicmem"));
        assert!(f("main\\.", "", "main.(*T).Method"), "matched after the cut at `(`");
        assert!(f("foo", "", ".foo"));
        assert!(compile(b"(").is_none());
        assert!(compile(b"\xff").is_none());
        assert!(compile(b"(a{1000}){1000}").is_none(), "over the size limit");
    }
}
