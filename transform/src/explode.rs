//! The semantics: a validated [`Profile`] → per-function flat/cum for every sample type, the
//! profile-level facts, and (on request) the distinct stacks.
//!
//! The numbers are those of `go tool pprof -top` at its default, function granularity
//! (google/pprof `internal/graph` over a profile aggregated with `Profile.Aggregate(inline,
//! function=true, filename=false, linenumber=false, address=false)`):
//!
//! - A location expands to one *node* per line, `Line[0]` being the innermost inlined function;
//!   a location without lines (or a line without a function) is one node.
//! - A node is named by its function name as pprof's symbolizer leaves it
//!   ([`crate::symbolize::pprof_name`]: demangled C++/Rust system names, simplified names that
//!   look like demangled C++); functions that end up with the same name are one node. With no
//!   function name the name is that of the
//!   location's mapping file in brackets (`[libc.so.6]`, its base name) or `<unknown>`; addresses
//!   are dropped at function granularity, so unsymbolized frames of one binary become one node.
//! - When the profile carries frame filters (`drop_frames`, `keep_frames`), its locations and
//!   stacks are first pruned with them as pprof prunes them (module `prune`, matching those
//!   names): the walk reads the stacks that are left.
//! - **flat**: the sample's value goes to the first node of its first location (the leaf).
//! - **cum**: every distinct node on the sample's stack gets the value once, so recursion and
//!   inlined frames of the same function are not double counted.
//!
//! The inner loop touches only dense integer arrays: names are interned up front, each location
//! is pre-expanded into its node list, and "seen in this sample" is a stamp per node.

use std::borrow::Cow;
use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use xxhash_rust::xxh3::xxh3_64;

use crate::pprof::{Profile, SampleType};
use crate::prune::{self, Cut, FrameFilter};
use crate::symbolize::{pprof_name, Demangle};

/// What to compute besides per-function values.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExplodeOptions {
    /// Also aggregate distinct stacks (for flame graphs and merged pprof).
    pub stacks: bool,
    /// Also compute pprof's per-node inline markers (`(inline)`, `(partial-inline)`).
    pub inline_marks: bool,
    /// How function names are demangled and simplified (pprof's `-symbolize=demangle=`);
    /// the default is pprof's default.
    pub demangle: Demangle,
}

/// Profile-level facts.
#[derive(Debug, Clone)]
pub struct ProfileFacts {
    /// Profile time (`time_nanos`), ns since the epoch; 0 when absent.
    pub time_nanos: i64,
    /// Profile duration in ns; 0 when absent.
    pub duration_nanos: i64,
    /// What the period measures.
    pub period_type: Option<SampleType>,
    /// Sampling period, in `period_type` units.
    pub period: i64,
    /// Sample types, in profile order.
    pub sample_types: Vec<SampleType>,
    /// Index into `sample_types` of the type `go tool pprof` shows by default.
    pub default_sample_type: usize,
    /// Sum of all sample values, per sample type.
    pub totals: Vec<i64>,
    /// Number of samples.
    pub sample_count: u64,
    /// Distinct sample label keys, sorted.
    pub label_keys: Vec<String>,
    /// Decompressed protobuf size in bytes.
    pub decoded_bytes: u64,
}

/// The distinct stacks of a profile, stored flat (three arrays, whatever their number: a
/// production heap profile has tens of thousands). Stack `i` is [`Stacks::get`]`(i)`.
#[derive(Debug, Clone, Default)]
pub struct Stacks {
    /// xxh3-64 of each stack: over the little-endian xxh3-64 hashes of the frame names, leaf
    /// first. Stable across processes and versions: the same frames always give the same hash.
    pub hash: Vec<u64>,
    /// Stack `i`'s frames are `frames[frame_start[i]..frame_start[i + 1]]` (left empty, not `[0]`,
    /// for a profile without samples).
    frame_start: Vec<u32>,
    /// Node ids (indexes into [`Exploded::names`]), leaf first, stack after stack.
    frames: Vec<u32>,
    /// Stack `i`'s values are `values[i * k..(i + 1) * k]`, `k` the number of sample types.
    values: Vec<i64>,
    k: usize,
}

/// One distinct stack: frames leaf → root (inlined frames expanded), values per sample type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stack<'a> {
    /// See [`Stacks::hash`].
    pub hash: u64,
    /// Node ids (indexes into [`Exploded::names`]), leaf first.
    pub frames: &'a [u32],
    /// Values per sample type.
    pub values: &'a [i64],
}

impl Stacks {
    /// Room for `samples` stacks of `frames` frames in all (upper bounds: every sample its own
    /// stack), so the arrays never grow by copying; the slack is given back at the end.
    fn with_capacity(k: usize, samples: usize, frames: usize) -> Self {
        let mut frame_start = Vec::with_capacity(samples + 1);
        frame_start.push(0);
        Stacks {
            hash: Vec::with_capacity(samples),
            frame_start,
            frames: Vec::with_capacity(frames),
            values: Vec::with_capacity(samples * k),
            k,
        }
    }

    /// Number of stacks.
    pub fn len(&self) -> usize {
        self.hash.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.hash.is_empty()
    }

    /// Stack `i`.
    pub fn get(&self, i: usize) -> Stack<'_> {
        let (a, b) = (self.frame_start[i] as usize, self.frame_start[i + 1] as usize);
        Stack { hash: self.hash[i], frames: &self.frames[a..b], values: &self.values[i * self.k..(i + 1) * self.k] }
    }

    /// Every stack, in order of first appearance.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Stack<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Every stack's values, stack after stack (`k` per stack), to change in place.
    pub fn values_mut(&mut self) -> &mut [i64] {
        &mut self.values
    }

    /// The heap memory the stacks hold, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.hash.capacity() * 8 + self.frame_start.capacity() * 4 + self.frames.capacity() * 4 + self.values.capacity() * 8
    }

    /// Appends a stack (frames leaf first); returns its index.
    fn push(&mut self, hash: u64, frames_leaf_first: impl Iterator<Item = u32>) -> u32 {
        self.hash.push(hash);
        self.frames.extend(frames_leaf_first);
        self.frame_start.push(self.frames.len() as u32);
        self.values.extend(std::iter::repeat_n(0, self.k));
        (self.hash.len() - 1) as u32
    }

    /// Appends a stack whose frames come later ([`Stacks::frames_after`]); returns its index.
    fn push_without_frames(&mut self, hash: u64) -> u32 {
        self.hash.push(hash);
        self.values.extend(std::iter::repeat_n(0, self.k));
        (self.hash.len() - 1) as u32
    }

    /// After stacks were added with [`Stacks::push_without_frames`]: gives stack `i` the frames
    /// `frames(i, &mut out)` appends, or none when `wanted[i]` is false.
    fn frames_after(&mut self, wanted: &[bool], mut frames: impl FnMut(usize, &mut Vec<u32>)) {
        debug_assert!(self.frames.is_empty() && self.frame_start == [0]);
        for (i, &w) in wanted.iter().enumerate() {
            if w {
                frames(i, &mut self.frames);
            }
            self.frame_start.push(self.frames.len() as u32);
        }
    }

    fn shrink_to_fit(&mut self) {
        self.hash.shrink_to_fit();
        self.frame_start.shrink_to_fit();
        self.frames.shrink_to_fit();
        self.values.shrink_to_fit();
    }
}

/// The exploded profile.
#[derive(Debug, Clone)]
pub struct Exploded {
    /// Profile-level facts.
    pub facts: ProfileFacts,
    /// Function (node) names; a node id indexes this.
    pub names: Names,
    /// `flat[node * k + t]` for `k` sample types.
    pub flat: Vec<i64>,
    /// `cum[node * k + t]`.
    pub cum: Vec<i64>,
    /// Distinct stacks, when asked for.
    pub stacks: Stacks,
    /// `inline_marks[node * k + t]`, when asked for (empty otherwise).
    pub inline_marks: Vec<InlineMark>,
}

/// How pprof labels a node in its reports: by whether the calls into it were inlined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InlineMark {
    /// Not inlined at any call site (or a root): no label.
    #[default]
    None,
    /// Inlined at every call site: pprof prints ` (inline)`.
    Inline,
    /// Inlined at some call sites and called at others: pprof prints ` (partial-inline)`.
    Partial,
}

/// pprof's inline labels, computed the way `internal/graph` does: an edge caller→callee is
/// inline when the callee is an inlined line of the same location, and stays inline only if
/// every sample's first (root-most) occurrence of that edge is inline; a node is `(inline)`
/// when some incoming edge is inline, `(partial-inline)` when also some is not. Edges are kept
/// per sample type, since pprof builds one graph per sample type and skips zero-valued samples.
/// Only edges into nodes that are inlined somewhere are tracked: no other node can be labelled.
struct InlineMarks {
    enabled: bool,
    k: usize,
    inlinable: Vec<bool>,
    edges: HashMap<(u32, u32), u32>,
    edge_child: Vec<u32>,
    edge_stamp: Vec<u32>,
    /// `[edge * k + t]`: 0 unseen, 1 inline so far, 2 seen non-inline.
    edge_state: Vec<u8>,
    n_nodes: usize,
}

impl InlineMarks {
    fn new(enabled: bool, n_nodes: usize, k: usize, loc_start: &[u32], loc_nodes: &[u32]) -> Self {
        let mut inlinable = vec![false; if enabled { n_nodes } else { 0 }];
        if enabled {
            for w in loc_start.windows(2) {
                let nodes = &loc_nodes[w[0] as usize..w[1] as usize];
                for &n in nodes.iter().take(nodes.len().saturating_sub(1)) {
                    inlinable[n as usize] = true;
                }
            }
        }
        InlineMarks {
            enabled,
            k,
            inlinable,
            edges: HashMap::new(),
            edge_child: Vec::new(),
            edge_stamp: Vec::new(),
            edge_state: Vec::new(),
            n_nodes,
        }
    }

    #[inline]
    fn edge(&mut self, parent: u32, child: u32, inline: bool, stamp: u32, v: &[i64]) {
        if parent == u32::MAX || parent == child || !self.inlinable[child as usize] {
            return;
        }
        let next = self.edge_child.len() as u32;
        let e = *self.edges.entry((parent, child)).or_insert(next) as usize;
        if e == self.edge_child.len() {
            self.edge_child.push(child);
            self.edge_stamp.push(0);
            self.edge_state.extend(std::iter::repeat_n(0u8, self.k));
        }
        if self.edge_stamp[e] == stamp {
            return;
        }
        self.edge_stamp[e] = stamp;
        for (t, &x) in v.iter().enumerate() {
            if x == 0 {
                continue;
            }
            let st = &mut self.edge_state[e * self.k + t];
            *st = if !inline {
                2
            } else if *st == 0 {
                1
            } else {
                *st
            };
        }
    }

    fn finish(self) -> Vec<InlineMark> {
        if !self.enabled {
            return Vec::new();
        }
        let k = self.k;
        // bit 1: some inline in-edge; bit 2: some non-inline in-edge.
        let mut bits = vec![0u8; self.n_nodes * k];
        for (e, &child) in self.edge_child.iter().enumerate() {
            for t in 0..k {
                match self.edge_state[e * k + t] {
                    1 => bits[child as usize * k + t] |= 1,
                    2 => bits[child as usize * k + t] |= 2,
                    _ => {}
                }
            }
        }
        bits.into_iter()
            .map(|b| match b {
                1 => InlineMark::Inline,
                3 => InlineMark::Partial,
                _ => InlineMark::None,
            })
            .collect()
    }
}

/// One output row: a function's flat and cum for one sample type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionRow<'a> {
    /// Index into the profile's sample types.
    pub sample_type: usize,
    /// Function (node) name.
    pub function: &'a [u8],
    /// Flat value: samples whose leaf is this function.
    pub flat: i64,
    /// Cum value: samples with this function anywhere on the stack (once per sample).
    pub cum: i64,
    /// pprof's inline label (always `None` unless explode computed the marks).
    pub mark: InlineMark,
}

impl Exploded {
    fn k(&self) -> usize {
        self.facts.sample_types.len()
    }

    /// Rows with non-zero flat or cum for sample type `t`, ordered like `pprof -top`:
    /// |flat| descending, then name, then |cum| descending.
    pub fn rows(&self, t: usize) -> Vec<FunctionRow<'_>> {
        let k = self.k();
        let mut rows: Vec<FunctionRow<'_>> = (0..self.names.len())
            .filter_map(|n| {
                let (flat, cum) = (self.flat[n * k + t], self.cum[n * k + t]);
                let mark = self.inline_marks.get(n * k + t).copied().unwrap_or_default();
                (flat != 0 || cum != 0).then(|| FunctionRow { sample_type: t, function: &self.names[n], flat, cum, mark })
            })
            .collect();
        sort_rows(&mut rows, false);
        rows
    }

    /// All rows, sample type by sample type.
    pub fn all_rows(&self) -> Vec<FunctionRow<'_>> {
        (0..self.k()).flat_map(|t| self.rows(t)).collect()
    }
}

/// Sorts like `pprof -top` (`cum == false`: flat order) or `pprof -top -cum`.
pub fn sort_rows(rows: &mut [FunctionRow<'_>], cum: bool) {
    rows.sort_by(|a, b| {
        let (pa, sa, pb, sb) = if cum {
            (a.cum.unsigned_abs(), a.flat.unsigned_abs(), b.cum.unsigned_abs(), b.flat.unsigned_abs())
        } else {
            (a.flat.unsigned_abs(), a.cum.unsigned_abs(), b.flat.unsigned_abs(), b.cum.unsigned_abs())
        };
        pb.cmp(&pa).then_with(|| a.function.cmp(b.function)).then_with(|| sb.cmp(&sa))
    });
}

/// The name pprof gives a node without a function name: `[base(mapping file)]` or `<unknown>`.
fn unnamed_node(profile: &Profile, mapping_id: u64) -> Cow<'static, [u8]> {
    let file = profile.mappings.get(mapping_id).map(|i| profile.str(profile.mapping[i].filename)).unwrap_or_default();
    if file.is_empty() {
        return Cow::Borrowed(b"<unknown>");
    }
    let mut name = Vec::with_capacity(file.len() + 2);
    name.push(b'[');
    name.extend_from_slice(go_filepath_base(file));
    name.push(b']');
    Cow::Owned(name)
}

/// Go's `filepath.Base` on Unix: the last element, trailing slashes removed ("/" for all-slash).
fn go_filepath_base(path: &[u8]) -> &[u8] {
    let trimmed = {
        let mut end = path.len();
        while end > 0 && path[end - 1] == b'/' {
            end -= 1;
        }
        &path[..end]
    };
    if trimmed.is_empty() {
        return if path.is_empty() { b"." } else { b"/" };
    }
    match trimmed.iter().rposition(|&c| c == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// Node names, back to back in one buffer: `names[i]` is node `i`'s name. One allocation for
/// all of a profile's names (not one per name), and each a copy, not a slice of the
/// decompressed profile, which would keep megabytes alive while the rows wait in a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    bytes: Vec<u8>,
    /// Where each name ends in `bytes`.
    ends: Vec<u32>,
}

impl Names {
    /// How many names.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No names.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Name `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// The names in node order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4
    }

    fn push(&mut self, name: &[u8]) -> u32 {
        self.bytes.extend_from_slice(name);
        self.ends.push(self.bytes.len() as u32);
        self.ends.len() as u32 - 1
    }
}

impl std::ops::Index<usize> for Names {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        self.get(i)
    }
}

/// Interns node names: equal names are one node.
struct Interner {
    names: Names,
    /// Node ids, by the hash of their name.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Interner {
    fn with_capacity(n: usize) -> Self {
        Interner {
            names: Names { bytes: Vec::with_capacity(n * 32), ends: Vec::with_capacity(n) },
            index: HashTable::with_capacity(n),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn intern(&mut self, name: &[u8]) -> u32 {
        let Interner { names, index, hasher } = self;
        let hash = hasher.hash_one(name);
        let entry = index.entry(hash, |&id| names.get(id as usize) == name, |&id| hasher.hash_one(names.get(id as usize)));
        match entry {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => *e.insert(names.push(name)).get(),
        }
    }
}

/// `to[t] += v[t]` (wrapping, as Go's int64 arithmetic); inlined into loops whose length the
/// compiler knows.
#[inline(always)]
fn add(to: &mut [i64], v: &[i64]) {
    for (a, &x) in to.iter_mut().zip(v) {
        *a = a.wrapping_add(x);
    }
}

/// Adds `v` to a node's cum unless sample `stamp` already did, with no branch: whether a node
/// was seen in the sample depends on the stack (recursion), and a branch on it was mispredicted
/// often enough to be a quarter of the walk on a production heap profile.
#[inline(always)]
fn count_cum_branchless<const K: usize>(cum: &mut [i64; K], seen: &mut u32, stamp: u32, v: &[i64; K]) {
    // The values themselves are selected (not a reference to them or to zeros): a load whose
    // address waited on the comparison made every frame's add wait on two loads in a row.
    let add_v = std::hint::select_unpredictable(*seen != stamp, *v, [0; K]);
    *seen = stamp;
    for (a, x) in cum.iter_mut().zip(add_v) {
        *a = a.wrapping_add(x);
    }
}

/// The state of explode's walk over the samples.
struct Walk<'a> {
    k: usize,
    flat: Vec<i64>,
    cum: Vec<i64>,
    /// The last sample (stamp) that counted each node's cum.
    seen: Vec<u32>,
    totals: Vec<i64>,
    /// Sample `i`'s stack is `sample_locs[sample_start[i]..sample_end[i]]`: the profile's, or
    /// what its frame filters left of it (they only remove leaf-side frames, so only the start
    /// moves).
    sample_start: &'a [u32],
    sample_end: &'a [u32],
    sample_locs: &'a [u32],
    /// Location position → its nodes: `loc_nodes[loc_start[l]..loc_start[l + 1]]`.
    loc_start: &'a [u32],
    loc_nodes: &'a [u32],
    /// Location position → its node when it has exactly one, else `u32::MAX`.
    loc_one: Vec<u32>,
    stacks_on: bool,
    frames: Vec<u32>,
    table: StackTable<'a>,
    marks: InlineMarks,
}

/// The distinct stacks as the walk finds them.
struct StackTable<'a> {
    k: usize,
    name_hashes: &'a [u64],
    /// The index in `stacks` of each stack, found by its hash. Four bytes a slot, not the
    /// sixteen of a map from hash to index: this table is probed once per sample at a random
    /// place, and a production profile's tens of thousands of stacks then fit the core's cache
    /// beside the walk's arrays. Its slots are chosen by a keyed hash of the stack hash
    /// (`stack_keys`): the stack hash is a known function of the input's names, with which a
    /// crafted profile could put every stack in one run of slots.
    stack_ix: HashTable<u32>,
    stack_keys: DefaultHashBuilder,
    stacks: Stacks,
    /// Whether the frames of the stacks are asked for after the walk ([`explode_with`]): the
    /// walk then records each new stack's first sample (`first_sample`), and the frames of the
    /// stacks wanted are collected again from those samples.
    defer_frames: bool,
    first_sample: Vec<u32>,
    hash_buf: Vec<u8>,
}

impl Walk<'_> {
    /// Adds every sample's values to its nodes. `K` is the number of sample types when it is a
    /// compile-time constant, 0 when only `self.k` knows it; the inline marks, or a number of
    /// sample types only known at run time, take the general walk.
    fn run<const K: usize>(&mut self, profile: &Profile) {
        if K > 0 && !self.marks.enabled {
            return if self.stacks_on { self.run_leaf_first::<K, true>(profile) } else { self.run_leaf_first::<K, false>(profile) };
        }
        let k = if K == 0 { self.k } else { K };
        debug_assert_eq!(k, self.k);
        let n_samples = profile.sample_count();
        for si in 0..n_samples {
            let v = &profile.values[si * k..si * k + k];
            if v.iter().all(|&x| x == 0) {
                continue;
            }
            let stack = &self.sample_locs[self.sample_start[si] as usize..self.sample_end[si] as usize];
            add(&mut self.totals, v);
            let stamp = si as u32 + 1;
            self.frames.clear();
            let leaf = self.walk_root_first(stack, stamp, v);
            if leaf != u32::MAX {
                let leaf = leaf as usize;
                add(&mut self.flat[leaf * k..leaf * k + k], v);
            }
            if self.stacks_on && !self.frames.is_empty() {
                self.table.add(si as u32, &self.frames, v);
            }
        }
    }

    /// [`Walk::run`] without the inline marks, for `K` sample types known to the compiler and
    /// stacks on or off (`STACKS`): the per-frame loop over local slices of `K`-value arrays,
    /// so that it keeps its pointers in registers, checks one bound per access and has no
    /// per-frame test of whether stacks are on. Counts exactly as [`Walk::walk_root_first`]:
    /// without the inline marks the order of the walk changes nothing but the frames' order,
    /// and leaf first is the order a stack is hashed and stored in.
    #[inline(never)]
    fn run_leaf_first<const K: usize, const STACKS: bool>(&mut self, profile: &Profile) {
        let Walk { flat, cum, seen, totals, sample_start, sample_end, sample_locs, loc_start, loc_nodes, loc_one, frames, table, .. } =
            self;
        let (flat, _) = flat.as_chunks_mut::<K>();
        let (cum, _) = cum.as_chunks_mut::<K>();
        let (values, _) = profile.values.as_chunks::<K>();
        let totals: &mut [i64; K] = totals.as_mut_slice().try_into().expect("k totals");
        let (loc_start, loc_nodes, loc_one) = (*loc_start, *loc_nodes, loc_one.as_slice());
        let seen = seen.as_mut_slice();
        let (starts, ends, sample_locs) = (*sample_start, *sample_end, *sample_locs);
        // The per-frame loop indexes without bound checks (they were a third of its
        // instructions, and kept its pointers from registers); what makes that sound:
        // - a stack entry is a location position (`< loc_one.len()`): the profile's stacks were
        //   resolved and checked when it was decoded (`decode::validate`), and the frame
        //   filters only shorten them;
        // - a node id (`loc_nodes`, and `loc_one` where it is not `u32::MAX`) indexes `cum`
        //   and `seen`: checked here, once per line of the profile.
        debug_assert!(sample_locs.iter().all(|&li| (li as usize) < loc_one.len()));
        let max_node = loc_nodes.iter().fold(0, |m, &n| m.max(n));
        assert!(loc_nodes.is_empty() || ((max_node as usize) < cum.len() && (max_node as usize) < seen.len()));
        assert_eq!(loc_start.len(), loc_one.len() + 1);
        for (si, v) in values.iter().enumerate() {
            if v.iter().all(|&x| x == 0) {
                continue;
            }
            let stack = &sample_locs[starts[si] as usize..ends[si] as usize];
            add(totals, v);
            let Some(&first) = stack.first() else { continue };
            let stamp = si as u32 + 1;
            // The frames go into room made for one frame per location first, their count kept in
            // a register: a push per frame stored and reloaded the vector's length every frame.
            // `frames[..base]` are written, then `out[..n]`.
            if STACKS {
                frames.clear();
                frames.reserve(stack.len());
            }
            let (mut base, mut n) = (0, 0);
            let mut out = frames.spare_capacity_mut();
            // Validated and resolved: location positions. Every location has at least one node.
            let leaf = loc_nodes[loc_start[first as usize] as usize] as usize;
            add(&mut flat[leaf], v);
            for (at, &li) in stack.iter().enumerate() {
                let li = li as usize;
                // SAFETY: `li` is a location position (above).
                let one = unsafe { *loc_one.get_unchecked(li) };
                if one != u32::MAX {
                    // The common case: a location of one node (no inlined frames).
                    let one = one as usize;
                    // SAFETY: `one` is a node id, below both lengths (checked above).
                    unsafe { count_cum_branchless(cum.get_unchecked_mut(one), seen.get_unchecked_mut(one), stamp, v) };
                    if STACKS {
                        // SAFETY: `out` has room for a frame per location of the stack from the
                        // last reserve on, and `n` counts frames written since, one per location.
                        unsafe { out.get_unchecked_mut(n).write(one as u32) };
                        n += 1;
                    }
                    continue;
                }
                // SAFETY: `li + 1 < loc_start.len()`, as `li < loc_one.len()` (above).
                let (from, to) = unsafe { (*loc_start.get_unchecked(li), *loc_start.get_unchecked(li + 1)) };
                let nodes = &loc_nodes[from as usize..to as usize];
                for &node in nodes {
                    let node = node as usize;
                    // SAFETY: `node` is a node id (above).
                    unsafe { count_cum_branchless(cum.get_unchecked_mut(node), seen.get_unchecked_mut(node), stamp, v) };
                }
                if STACKS {
                    // Inlined calls: the nodes, then room again for one frame per location left.
                    // SAFETY: `frames[..base]` and `out[..n]` (right after them) are written.
                    unsafe { frames.set_len(base + n) };
                    frames.extend_from_slice(nodes);
                    frames.reserve(stack.len() - at - 1);
                    (base, n) = (frames.len(), 0);
                    out = frames.spare_capacity_mut();
                }
            }
            if STACKS {
                // SAFETY: as above.
                unsafe { frames.set_len(base + n) };
                table.add(si as u32, frames, v);
            }
        }
    }

    /// Counts one sample's cum and, with them on, its inline marks, root to leaf, as pprof's
    /// graph builder walks (its per-sample edge dedup keeps the root-most occurrence of an
    /// edge); collects its frames (leaf first) when stacks are on; returns its leaf node
    /// (`u32::MAX` for an empty stack).
    fn walk_root_first(&mut self, stack: &[u32], stamp: u32, v: &[i64]) -> u32 {
        let (loc_start, loc_nodes) = (self.loc_start, self.loc_nodes);
        let mut parent = u32::MAX;
        for &li in stack.iter().rev() {
            let li = li as usize;
            let nodes = &loc_nodes[loc_start[li] as usize..loc_start[li + 1] as usize];
            let last = nodes.len() - 1;
            for (ni, &n) in nodes.iter().enumerate().rev() {
                self.count_cum(n, stamp, v);
                if self.marks.enabled {
                    self.marks.edge(parent, n, ni != last, stamp, v);
                }
                parent = n;
            }
            if self.stacks_on {
                self.frames.extend(nodes.iter().rev());
            }
        }
        self.frames.reverse();
        parent
    }

    /// Adds `v` to node `n`'s cum unless sample `stamp` already did (recursion, inlined copies).
    #[inline(always)]
    fn count_cum(&mut self, n: u32, stamp: u32, v: &[i64]) {
        let nu = n as usize;
        if self.seen[nu] != stamp {
            self.seen[nu] = stamp;
            let k = v.len();
            add(&mut self.cum[nu * k..nu * k + k], v);
        }
    }
}

impl StackTable<'_> {
    /// Adds sample `si`, whose frames are `frames` (leaf first), with values `v` to its
    /// distinct stack. (Matching samples by a hash of their node ids first, and hashing names
    /// only per distinct stack, measured no faster: most samples are distinct stacks.)
    fn add(&mut self, si: u32, frames: &[u32], v: &[i64]) {
        let k = self.k;
        // Sized first, then filled: a push per frame kept the buffer's length in memory, one
        // store and reload per frame.
        self.hash_buf.clear();
        self.hash_buf.resize(frames.len() * 8, 0);
        for (to, &f) in self.hash_buf.chunks_exact_mut(8).zip(frames) {
            to.copy_from_slice(&self.name_hashes[f as usize].to_le_bytes());
        }
        let hash = xxh3_64(&self.hash_buf);
        let stacks = &mut self.stacks;
        let (known, keys) = (&stacks.hash, &self.stack_keys);
        let ix = match self.stack_ix.entry(keys.hash_one(hash), |&i| known[i as usize] == hash, |&i| keys.hash_one(known[i as usize])) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) if self.defer_frames => {
                self.first_sample.push(si);
                *e.insert(stacks.push_without_frames(hash)).get()
            }
            Entry::Vacant(e) => *e.insert(stacks.push(hash, frames.iter().copied())).get(),
        } as usize;
        add(&mut self.stacks.values[ix * k..ix * k + k], v);
    }
}

/// Explodes a validated profile.
pub fn explode(profile: &Profile, opts: ExplodeOptions) -> Exploded {
    explode_inner(profile, opts, None)
}

/// [`explode`], keeping the frames only of the stacks for which `frames_wanted(hash)` is true
/// (with [`ExplodeOptions::stacks`]): the others get their hash and values and no frames. For a
/// sink that has already stored those stacks' frames and writes them by hash alone; the frames
/// are the bulk of a record, so they are never built rather than dropped afterwards.
///
/// `frames_wanted` is asked once per distinct stack, after the walk over the samples, all in one
/// loop: a set of known stacks far larger than the cache then has its lookups overlap, where one
/// lookup per new stack inside the walk stalled it on each miss (a tenth of the worker's time).
pub fn explode_with(profile: &Profile, opts: ExplodeOptions, frames_wanted: &dyn Fn(u64) -> bool) -> Exploded {
    explode_inner(profile, opts, Some(frames_wanted))
}

fn explode_inner(profile: &Profile, opts: ExplodeOptions, frames_wanted: Option<&dyn Fn(u64) -> bool>) -> Exploded {
    let k = profile.sample_type.len();
    if profile.sample_count() == 0 {
        // Nothing to count and no rows to name (a mutex or block profile with profiling off, an
        // idle CPU profile: a fleet sends many). Only the facts, without building the name,
        // location and stack tables, which were most of such a profile's cost.
        return Exploded {
            facts: facts(profile, vec![0; k]),
            names: Names::default(),
            flat: Vec::new(),
            cum: Vec::new(),
            stacks: Stacks { k, ..Stacks::default() },
            inline_marks: Vec::new(),
        };
    }
    let n_funcs = profile.function.len();
    let mut names = Interner::with_capacity(n_funcs + 8);

    // Function position → node id (None: the function has no name; named per location).
    // Names are computed once per function, as pprof's symbolizer leaves them; so is whether
    // the profile's frame filters drop the function (`func_dropped`, only when it has them).
    let filter = FrameFilter::of(profile);
    let mut func_dropped: Vec<bool> = Vec::new();
    let func_node: Vec<Option<u32>> = profile
        .function
        .iter()
        .map(|f| {
            let (name, system_name) = (profile.str(f.name), profile.str(f.system_name));
            let name = pprof_name(name, system_name, opts.demangle);
            if let Some(filter) = filter {
                func_dropped.push(!name.is_empty() && filter.drops(&name));
            }
            (!name.is_empty()).then(|| names.intern(&name))
        })
        .collect();

    // Location position → its node ids, Line[0] (innermost) first.
    let n_locs = profile.loc_id.len();
    let mut loc_start: Vec<u32> = Vec::with_capacity(n_locs + 1);
    let mut loc_nodes: Vec<u32> = Vec::with_capacity(profile.line_function.len() + n_locs);
    let mut unnamed: HashMap<u64, u32> = HashMap::new();
    // With frame filters: what they do to each location (its lines trimmed here).
    let mut loc_cut: Vec<Cut> = Vec::new();
    for li in 0..n_locs {
        loc_start.push(loc_nodes.len() as u32);
        let mapping_id = profile.loc_mapping[li];
        let mut unnamed_id = || {
            *unnamed.entry(mapping_id).or_insert_with(|| {
                let name = unnamed_node(profile, mapping_id);
                names.intern(&name)
            })
        };
        let mut lines = &profile.line_function[profile.loc_line_start[li] as usize..profile.loc_line_start[li + 1] as usize];
        if filter.is_some() {
            let dropped = |i: usize| profile.functions.get(lines[i]).is_some_and(|fi| func_dropped[fi]);
            let (cut, at) = prune::location_cut(lines.len(), dropped);
            if cut == Cut::Beneath {
                lines = &lines[at + 1..];
            }
            loc_cut.push(cut);
        }
        if lines.is_empty() {
            let id = unnamed_id();
            loc_nodes.push(id);
            continue;
        }
        for &function_id in lines {
            let node = profile.functions.get(function_id).and_then(|fi| func_node[fi]);
            let id = match node {
                Some(id) => id,
                None => unnamed_id(),
            };
            loc_nodes.push(id);
        }
    }
    loc_start.push(loc_nodes.len() as u32);

    // Where each stack starts once the frame filters have cut it, when they cut any location:
    // they drop leaf-side frames only, so a stack stays a range of the profile's, ending where it
    // ended (four bytes a sample, not a copy of the stacks).
    let starts = &profile.sample_loc_start;
    let pruned_start: Option<Vec<u32>> = loc_cut.iter().any(|&c| c != Cut::Keep).then(|| {
        starts
            .windows(2)
            .map(|w| {
                let stack = &profile.sample_locs[w[0] as usize..w[1] as usize];
                w[1] - prune::pruned_stack(stack, &loc_cut).len() as u32
            })
            .collect()
    });
    let sample_start = pruned_start.as_deref().unwrap_or(&starts[..starts.len() - 1]);
    let (sample_end, sample_locs) = (&starts[1..], &profile.sample_locs[..]);

    let n_nodes = names.names.len();
    let name_hashes: Vec<u64> = if opts.stacks { names.names.iter().map(xxh3_64).collect() } else { Vec::new() };
    let mut walk = Walk {
        k,
        flat: vec![0i64; n_nodes * k],
        cum: vec![0i64; n_nodes * k],
        seen: vec![0u32; n_nodes],
        totals: vec![0i64; k],
        sample_start,
        sample_end,
        sample_locs,
        loc_start: &loc_start,
        loc_nodes: &loc_nodes,
        loc_one: loc_start.windows(2).map(|w| if w[1] - w[0] == 1 { loc_nodes[w[0] as usize] } else { u32::MAX }).collect(),
        stacks_on: opts.stacks,
        frames: Vec::new(),
        table: StackTable {
            k,
            name_hashes: &name_hashes,
            stack_ix: HashTable::with_capacity(if opts.stacks { profile.sample_count() } else { 0 }),
            stack_keys: DefaultHashBuilder::default(),
            stacks: if opts.stacks {
                // Frames: one per stack entry, more where locations hold inlined lines.
                // (Asked after the walk, the frames are usually few: they grow as needed.)
                let frames = if frames_wanted.is_some() { 0 } else { profile.sample_locs.len() + profile.sample_locs.len() / 4 };
                Stacks::with_capacity(k, profile.sample_count(), frames)
            } else {
                Stacks::with_capacity(k, 0, 0)
            },
            defer_frames: frames_wanted.is_some(),
            first_sample: Vec::new(),
            hash_buf: Vec::new(),
        },
        marks: InlineMarks::new(opts.inline_marks, n_nodes, k, &loc_start, &loc_nodes),
    };
    // The per-frame loop, with the number of sample types known to the compiler for the usual
    // counts (1 to 4: CPU, heap, contention profiles), so its per-type loops unroll.
    match k {
        1 => walk.run::<1>(profile),
        2 => walk.run::<2>(profile),
        3 => walk.run::<3>(profile),
        4 => walk.run::<4>(profile),
        _ => walk.run::<0>(profile),
    }
    let Walk { flat, cum, totals, table, marks, loc_one, .. } = walk;
    let StackTable { mut stacks, first_sample, .. } = table;
    if let (Some(wanted), true) = (frames_wanted, opts.stacks) {
        let wanted: Vec<bool> = stacks.hash.iter().map(|&h| wanted(h)).collect();
        // The frames of a stack's first sample, leaf first, as the walk collected them. A
        // location of one node is pushed as one, as the walk does: a worker that knows no stack
        // yet wants every stack's frames, and a copy call per location made that slower.
        stacks.frames_after(&wanted, |i, out| {
            let si = first_sample[i] as usize;
            for &li in &sample_locs[sample_start[si] as usize..sample_end[si] as usize] {
                let li = li as usize;
                match loc_one[li] {
                    u32::MAX => out.extend_from_slice(&loc_nodes[loc_start[li] as usize..loc_start[li + 1] as usize]),
                    one => out.push(one),
                }
            }
        });
    }

    let inline_marks = marks.finish();
    // The record may wait in a batch for seconds: no doubling slack.
    stacks.shrink_to_fit();
    Exploded { facts: facts(profile, totals), names: names.names, flat, cum, stacks, inline_marks }
}

/// The profile-level facts, with the walk's `totals`.
fn facts(profile: &Profile, totals: Vec<i64>) -> ProfileFacts {
    ProfileFacts {
        time_nanos: profile.time_nanos(),
        duration_nanos: profile.duration_nanos(),
        period_type: profile.period_type(),
        period: profile.period(),
        sample_types: profile.sample_types(),
        default_sample_type: profile.default_sample_type_index(),
        totals,
        sample_count: profile.sample_count() as u64,
        label_keys: profile.label_keys(),
        decoded_bytes: profile.decoded_bytes as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::{go_filepath_base, Interner};

    #[test]
    fn interned_names_are_one_node_each_and_read_back_whole() {
        let mut i = Interner::with_capacity(1);
        let input: [&[u8]; 7] = [b"main.main", b"", b"runtime.mallocgc", b"main.main", b"", b"main.mai", b"\xff\x00x"];
        let ids: Vec<u32> = input.iter().map(|n| i.intern(n)).collect();
        assert_eq!(ids, [0, 1, 2, 0, 1, 3, 4]);
        let names = i.names;
        assert_eq!(names.len(), 5);
        let back: Vec<&[u8]> = names.iter().collect();
        assert_eq!(back, [&b"main.main"[..], b"", b"runtime.mallocgc", b"main.mai", b"\xff\x00x"]);
        assert_eq!(&names[3], b"main.mai");
        // Grown past its first capacity, the index still finds every name.
        let mut i = Interner::with_capacity(1);
        let many: Vec<String> = (0..5000).map(|n| format!("pkg.f{n}")).collect();
        for (n, name) in many.iter().enumerate() {
            assert_eq!(i.intern(name.as_bytes()), n as u32);
        }
        for (n, name) in many.iter().enumerate().rev() {
            assert_eq!(i.intern(name.as_bytes()), n as u32);
        }
    }

    #[test]
    fn filepath_base_matches_go() {
        assert_eq!(go_filepath_base(b"/usr/lib/libc.so.6"), b"libc.so.6");
        assert_eq!(go_filepath_base(b"[vdso]"), b"[vdso]");
        assert_eq!(go_filepath_base(b"/a/b/"), b"b");
        assert_eq!(go_filepath_base(b"///"), b"/");
        assert_eq!(go_filepath_base(b""), b".");
    }
}
