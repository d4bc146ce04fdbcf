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
//! A pattern that does not parse (for Go's `regexp`; here, one `regex-syntax` rejects, or one
//! that is not UTF-8) means no pruning at all, as pprof ignores the error. Each
//! pattern is compiled to a full DFA, so that matching costs one step per byte of a name
//! whatever the pattern (a lazy DFA or an NFA simulation costs up to the pattern's size per byte
//! on a pattern made to defeat its cache: a hostile profile's few kilobytes of pattern and
//! megabytes of names would stall the worker). How long a pattern may be is
//! [`crate::pprof::Limits::max_frame_filter_bytes`], and what its automaton may take (and its
//! construction, and the NFA it is built from) is
//! [`crate::pprof::Limits::max_frame_filter_dfa_bytes`]; a profile over either is refused when
//! decoding, before any of that work.
//!
//! Each profile is pruned with its own filters. `go tool pprof` given several files merges them
//! first and prunes the merge with the first file's filters; SQL over many profiles sums what
//! each profile's filters left, which differs only where files of one query carry different
//! filters (profiles of one writer carry the same ones).
//!
//! Two differences with Go's `regexp` remain: `\w`, `\d` and `\s` are Unicode classes here and
//! ASCII in Go (a `\b` makes names beyond ASCII unmatched), which matters only on names beyond
//! ASCII; and `\Q…\E` is not supported (such a pattern prunes nothing).

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::{Anchored, Input};

use crate::pprof::Profile;

/// A profile's `drop_frames` / `keep_frames`, compiled.
#[derive(Debug, Clone)]
pub(crate) struct FrameFilter {
    drop: dense::DFA<Vec<u32>>,
    keep: Option<dense::DFA<Vec<u32>>>,
}

/// A pattern whose automaton is over the size limit.
#[derive(Debug)]
pub(crate) struct TooComplex;

impl FrameFilter {
    /// The filter of a profile whose `drop_frames` and `keep_frames` are these; `None` when it
    /// has none (`drop_frames` empty) or when either pattern does not parse.
    /// Each automaton may take `dfa_limit` bytes.
    pub(crate) fn compile(drop: &[u8], keep: &[u8], dfa_limit: usize) -> Result<Option<FrameFilter>, TooComplex> {
        if drop.is_empty() {
            return Ok(None);
        }
        let Some(drop) = compile(drop, dfa_limit)? else { return Ok(None) };
        let keep = if keep.is_empty() {
            None
        } else {
            let Some(keep) = compile(keep, dfa_limit)? else { return Ok(None) };
            Some(keep)
        };
        Ok(Some(FrameFilter { drop, keep }))
    }

    /// The profile's filter, as decoding compiled it.
    pub(crate) fn of(profile: &Profile) -> Option<&FrameFilter> {
        profile.frame_filter.as_deref()
    }

    /// Whether a function of this (symbolized, non-empty) name is dropped.
    pub(crate) fn drops(&self, name: &[u8]) -> bool {
        let name = simplify(name);
        matches(&self.drop, name) && !self.keep.as_ref().is_some_and(|k| matches(k, name))
    }
}

/// Whether the whole name matches (the pattern is anchored at both ends). A DFA that gives up
/// (a Unicode word boundary next to a byte beyond ASCII) is no match.
fn matches(dfa: &dense::DFA<Vec<u32>>, name: &[u8]) -> bool {
    matches!(dfa.try_search_fwd(&Input::new(name).anchored(Anchored::Yes).earliest(true)), Ok(Some(_)))
}

/// `Ok(None)`: the pattern does not parse (nothing is pruned).
fn compile(pattern: &[u8], limit: usize) -> Result<Option<dense::DFA<Vec<u32>>>, TooComplex> {
    // Go refuses a pattern that is not UTF-8 (`ErrInvalidUTF8`).
    let Ok(pattern) = std::str::from_utf8(pattern) else { return Ok(None) };
    let anchored = format!("^({pattern})$");
    if regex_automata::util::syntax::parse(&anchored).is_err() {
        return Ok(None);
    }
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .start_kind(StartKind::Anchored)
                .unicode_word_boundary(true)
                .dfa_size_limit(Some(limit))
                .determinize_size_limit(Some(limit)),
        )
        .thompson(thompson::Config::new().nfa_size_limit(Some(limit)))
        .build(&anchored)
        .map(Some)
        .map_err(|_| TooComplex)
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

/// The part of a stack (location positions, leaf first) that stays, given each location's cut:
/// always a suffix (the root side).
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

    const LIMIT: usize = 4 << 20;

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
            FrameFilter::compile(drop.as_bytes(), keep.as_bytes(), LIMIT).unwrap().unwrap().drops(name.as_bytes())
        };
        assert!(f("malloc|free", "", "malloc"));
        assert!(!f("malloc|free", "", "xmalloc"), "anchored on both ends");
        assert!(!f("mall", "", "malloc"));
        assert!(f("runtime\\..*", "", "runtime.mallocgc"));
        assert!(!f("runtime\\..*", "runtime\\.panic.*", "runtime.panicmem"));
        assert!(f("main\\.", "", "main.(*T).Method"), "matched after the cut at `(`");
        assert!(f("foo", "", ".foo"));
        assert!(f("a.b", "", "a\u{e9}b"), "`.` is a character, as in Go");
        assert!(f("\\bx\\b", "", "x"));
        assert!(!f("x\\b.*", "", "x\u{e9}"), "a word boundary beside a non-ASCII byte: no match");
        let none = |drop: &[u8], keep: &[u8]| matches!(FrameFilter::compile(drop, keep, LIMIT), Ok(None));
        assert!(none(b"", b"x"), "keep_frames alone");
        assert!(none(b"(", b""));
        assert!(none(b"x", b"("), "a keep_frames that does not parse: nothing at all");
        assert!(none(b"\xff", b""));
        assert!(none(b"\\Qa\\E", b""));
        assert!(matches!(FrameFilter::compile(b"(a|b)*a(a|b){20}", b"", LIMIT), Err(TooComplex)), "a DFA of millions of states");
    }

    /// pprof's own patterns (those it gives profiles converted from gperftools' formats) fit.
    #[test]
    fn pprofs_legacy_patterns_compile_small() {
        let alloc = "calloc|cfree|malloc|free|memalign|do_memalign|(__)?posix_memalign|pvalloc|valloc|realloc|aligned_alloc|sdallocx|tcmalloc::.*|tc_calloc|tc_cfree|tc_malloc|tc_free|tc_memalign|tc_posix_memalign|tc_pvalloc|tc_valloc|tc_realloc|tc_new|tc_delete|tc_newarray|tc_deletearray|tc_new_nothrow|tc_newarray_nothrow|__builtin_delete|__builtin_new|__builtin_vec_delete|__builtin_vec_new|operator new|operator new\\[\\]|(::)?runtime\\.makemap_small|runtime\\.mallocgc|runtime\\.newobject|runtime\\.newarray|runtime\\.makeslice|runtime\\.growslice|runtime\\.concatstrings|runtime\\.rawstring.*|runtime\\.slicebytetostring|runtime\\.stringtoslicebyte|runtime\\.slicerunetostring|runtime\\.malg|runtime\\.mapassign.*";
        let skip = "runtime\\.panic|runtime\\.reflectcall|runtime\\.call[0-9]*";
        let f = FrameFilter::compile(alloc.as_bytes(), skip.as_bytes(), LIMIT).unwrap().unwrap();
        assert!(f.drop.memory_usage() < LIMIT / 4, "{}", f.drop.memory_usage());
        assert!(f.drops(b"runtime.mallocgc") && f.drops(b"operator new[]") && f.drops(b"tcmalloc::Alloc(int)"));
        assert!(!f.drops(b"runtime.call32") && !f.drops(b"main.main"));
    }
}
