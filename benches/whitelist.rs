//! How long parsing a whitelist takes as it grows (divan). Run: `cargo bench --bench whitelist`
//! (`cargo test --all-targets` runs each case once, as a smoke test).
//!
//! The daemon refuses a whitelist over [`MAX_LINES`] lines or [`MAX_BYTES`] bytes, so only the
//! first two sizes can reach it; the larger ones are here to show that the time per line stays
//! flat. Parsing once took time quadratic in the number of lines (duplicates were found by scanning
//! the entries so far). Medians of a release build on the 2-core dev machine, before and after:
//!
//! | lines   | quadratic | linear  |
//! |---------|-----------|---------|
//! | 10,000  | 139 ms    | 2.9 ms  |
//! | 40,000  | 2.22 s    | 19.5 ms |
//! | 100,000 | 13.1 s    | 50 ms   |
//!
//! The figures are printed, not asserted: a timed test would fail on a slow or busy machine.
//!
//! [`MAX_LINES`]: splitdns::trust::whitelist::MAX_LINES
//! [`MAX_BYTES`]: splitdns::trust::whitelist::MAX_BYTES

use divan::{Bencher, black_box};
use splitdns::trust::whitelist::Whitelist;

fn main() {
    divan::main();
}

/// `lines` distinct domains, one per line, as a big generated whitelist would have them.
fn text(lines: usize) -> String {
    (0..lines).map(|i| format!("host{i:06}.corp.example\n")).collect()
}

#[divan::bench(args = [1_000, 10_000, 40_000, 100_000], sample_count = 5, sample_size = 1)]
fn parse(bencher: Bencher, lines: usize) {
    let text = text(lines);
    bencher.bench(|| {
        let parsed = Whitelist::parse(black_box(&text)).expect("a valid whitelist");
        assert_eq!(parsed.list.entries().len(), lines);
        parsed
    });
}
