//! Hostile profiles: small files that would cost a naive decoder minutes or gigabytes. Each is
//! a real, well-formed pprof protobuf (gzip), built with the crate's own wire types.
use std::io::Write;

use bytes::Bytes;
use pprofhouse_transform::pprof::proto;
use prost::Message;

fn strings(extra: &[&str]) -> Vec<Bytes> {
    let mut s: Vec<Bytes> = ["", "cpu", "nanoseconds", "main.hostile"].iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect();
    s.extend(extra.iter().map(|x| Bytes::copy_from_slice(x.as_bytes())));
    s
}

fn base() -> proto::Profile {
    proto::Profile {
        sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }],
        function: vec![proto::Function { id: 1, name: 3, ..Default::default() }],
        location: vec![proto::Location { id: 1, line: vec![proto::Line { function_id: 1, ..Default::default() }], ..Default::default() }],
        sample: vec![proto::Sample { location_id: vec![1], value: vec![1], label: vec![] }],
        string_table: strings(&[]),
        ..Default::default()
    }
}

/// gzip of the encoded profile.
pub fn gzip(p: &proto::Profile) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&p.encode_to_vec()).unwrap();
    e.finish().unwrap()
}

/// One location with 5,000 inlined lines, sampled 1,000 times at depth 5,000: 25 billion frame
/// visits from a file of a few kilobytes (stopped by `max_lines_per_location`).
pub fn quadratic_frames() -> Vec<u8> {
    let mut p = base();
    p.location[0].line = vec![proto::Line { function_id: 1, ..Default::default() }; 5000];
    p.sample = vec![proto::Sample { location_id: vec![1; 5000], value: vec![1], label: vec![] }; 1000];
    gzip(&p)
}

/// Within `max_lines_per_location` but still billions of frame visits (stopped by
/// `max_expanded_frames`).
pub fn expanded_frames() -> Vec<u8> {
    let mut p = base();
    p.location[0].line = vec![proto::Line { function_id: 1, ..Default::default() }; 500];
    p.sample = vec![proto::Sample { location_id: vec![1; 8000], value: vec![1], label: vec![] }; 200];
    gzip(&p)
}

/// Six million samples with zero values (stopped by `max_samples`).
pub fn empty_samples() -> Vec<u8> {
    let mut p = base();
    p.sample = vec![proto::Sample { location_id: vec![1], value: vec![0], label: vec![] }; 6_000_000];
    gzip(&p)
}

/// 70,000 sample types (stopped by `max_sample_types`).
pub fn many_sample_types() -> Vec<u8> {
    let mut p = base();
    p.sample_type = vec![proto::ValueType { r#type: 1, unit: 2 }; 70_000];
    p.sample[0].value = vec![1; 70_000];
    gzip(&p)
}

/// A string table of six million strings (stopped by `max_strings`).
pub fn huge_string_table() -> Vec<u8> {
    let mut p = base();
    p.string_table.extend(std::iter::repeat_n(Bytes::from_static(b"s"), 6_000_000));
    gzip(&p)
}

/// A stack a million locations deep (stopped by `max_stack_depth`).
pub fn deep_stack() -> Vec<u8> {
    let mut p = base();
    p.sample[0].location_id = vec![1; 1_000_000];
    gzip(&p)
}

/// A `drop_frames` pattern of 100 KB (stopped by `max_frame_filter_bytes`: compiling a
/// regular expression takes memory in proportion to its length).
pub fn long_frame_filter() -> Vec<u8> {
    let mut p = base();
    p.drop_frames = p.string_table.len() as i64;
    p.string_table.push(Bytes::from("main\\.x|".repeat(10_000) + "main\\.y"));
    gzip(&p)
}

/// A short `drop_frames` pattern whose automaton has millions of states (stopped by
/// `max_frame_filter_dfa_bytes`). Matched lazily, such a pattern costs up to its whole size per
/// byte of a name: with megabytes of names, minutes.
pub fn frame_filter_dfa() -> Vec<u8> {
    let mut p = base();
    p.drop_frames = p.string_table.len() as i64;
    p.string_table.push(Bytes::from_static(b"(a|b)*a(a|b){24}"));
    gzip(&p)
}

/// Every hostile profile: (name, bytes, the limit that must stop it).
pub fn all() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        ("quadratic-frames", quadratic_frames(), "max_lines_per_location"),
        ("expanded-frames", expanded_frames(), "max_expanded_frames"),
        ("empty-samples", empty_samples(), "max_samples"),
        ("many-sample-types", many_sample_types(), "max_sample_types"),
        ("huge-string-table", huge_string_table(), "max_strings"),
        ("deep-stack", deep_stack(), "max_stack_depth"),
        ("long-frame-filter", long_frame_filter(), "max_frame_filter_bytes"),
        ("frame-filter-dfa", frame_filter_dfa(), "max_frame_filter_dfa_bytes"),
    ]
}
