//! The accumulator's memory budget: what an event's JSON costs once parsed, so the
//! message it builds stays under its cap whatever a server sends.

/// What one JSON value costs in memory beyond its text, for [`weight`]: a `Value`
/// node and its map entry.
pub const NODE_BYTES: usize = 48;

/// What JSON text costs in memory once parsed, as the accumulator counts it: its
/// length plus [`NODE_BYTES`] per value it may hold (each `{`, `[`, `,` and `:`
/// outside strings, and one). An upper bound for `[1,1,1,…]` as for `"long text"`.
pub fn weight(json: &str) -> usize {
    let mut nodes = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' | b',' | b':' => nodes += 1,
                _ => {}
            }
        }
    }
    json.len().saturating_add(nodes.saturating_mul(NODE_BYTES))
}

/// `32 MiB`, or a byte count for a limit that is not a whole number of MiB.
pub fn describe_size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}
