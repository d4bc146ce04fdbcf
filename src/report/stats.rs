//! The statistics of the movers: a two-proportion z-test per function on sample counts, and
//! Benjamini–Hochberg over all of them. Pure functions; the math is written out in the README
//! ("Movers").

/// The two-sided p-value of the difference between two proportions `k1/n1` and `k2/n2`
/// (pooled z-test), and its z. A function absent from both windows, or an empty window, gives
/// `(0, 1)`: nothing to test.
pub fn two_proportion(k1: f64, n1: f64, k2: f64, n2: f64) -> (f64, f64) {
    if n1 <= 0.0 || n2 <= 0.0 {
        return (0.0, 1.0);
    }
    let pooled = (k1 + k2) / (n1 + n2);
    let var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    if var.is_nan() || var <= 0.0 {
        return (0.0, 1.0);
    }
    let z = (k2 / n2 - k1 / n1) / var.sqrt();
    (z, normal_two_sided(z))
}

/// P(|Z| ≥ |z|) for a standard normal Z: erfc(|z|/√2).
pub fn normal_two_sided(z: f64) -> f64 {
    libm::erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the order of `p`: q₍ᵢ₎ = min over j ≥ i of
/// p₍ⱼ₎·m/j (ranks of the sorted p-values), capped at 1. Rejecting every hypothesis with q ≤ α
/// keeps the expected false-discovery rate at most α (independent or positively dependent tests).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_tables() {
        assert!((normal_two_sided(1.959964) - 0.05).abs() < 1e-6);
        assert!((normal_two_sided(-2.575829) - 0.01).abs() < 1e-6);
        assert_eq!(normal_two_sided(0.0), 1.0);
    }

    #[test]
    fn two_proportions_known_case() {
        // 120/1000 vs 100/1000: pooled 0.11, se = sqrt(0.11·0.89·0.002) = 0.013994, z = -1.4292.
        let (z, p) = two_proportion(120.0, 1000.0, 100.0, 1000.0);
        assert!((z + 1.4292).abs() < 1e-3, "{z}");
        assert!((p - 0.1529).abs() < 1e-3, "{p}");
        assert_eq!(two_proportion(0.0, 0.0, 5.0, 10.0), (0.0, 1.0));
        assert_eq!(two_proportion(0.0, 10.0, 0.0, 10.0), (0.0, 1.0));
    }

    #[test]
    fn bh_matches_the_textbook_example() {
        // Benjamini & Hochberg's step-up on 5 p-values (R's p.adjust(method = "BH")).
        let p = [0.01, 0.04, 0.03, 0.005, 0.5];
        let q = benjamini_hochberg(&p);
        let want = [0.025, 0.05, 0.05, 0.025, 0.5];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
    }
}
