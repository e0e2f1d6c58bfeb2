//! Where each fragment of an upload goes: k+m distinct providers per stripe,
//! spread across failure domains, weighted by free capacity.
//!
//! Per stripe, candidates are ordered by a weighted random key
//! (Efraimidis–Spirakis: `u^(1/w)` with `w` the free capacity and `u` from
//! BLAKE3 of the seed, stripe and provider, so a seed reproduces a placement),
//! then taken greedily: first one per organisation, then up to each
//! organisation's fair share (⌈k+m / organisations⌉, new sites first), then
//! one per site, then any, until the stripe has k+m distinct providers.

use strand_contracts::AccountId;

/// A provider that may receive fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its account (node id).
    pub account: AccountId,
    /// Organisation label.
    pub organisation: String,
    /// Site label.
    pub site: String,
    /// Free capacity in bytes.
    pub free_bytes: u64,
}

/// Not enough providers for the code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "each stripe needs {needed} distinct providers (k+m) with room for its fragments, the ledger lists {available}: register more nodes or use a smaller k+m"
)]
pub struct PlacementError {
    /// k+m.
    pub needed: usize,
    /// Usable providers.
    pub available: usize,
}

/// A rule a candidate must meet to join a stripe, given those chosen.
type Pass<'a> = dyn Fn(&Candidate, &[usize]) -> bool + 'a;

/// For each stripe, the candidate indices of its k+m (`width`) fragments.
pub fn place(
    stripes: u64,
    width: usize,
    candidates: &[Candidate],
    fragment_bytes: u64,
    seed: &[u8; 32],
) -> Result<Vec<Vec<usize>>, PlacementError> {
    let usable: Vec<usize> =
        (0..candidates.len()).filter(|&index| candidates[index].free_bytes >= fragment_bytes).collect();
    if usable.len() < width {
        return Err(PlacementError { needed: width, available: usable.len() });
    }
    // No organisation takes more than its fair share of a stripe where the
    // others can take the rest: losing one organisation then costs a stripe
    // at most ⌈width / organisations⌉ fragments.
    let organisations: std::collections::BTreeSet<&str> =
        usable.iter().map(|&index| candidates[index].organisation.as_str()).collect();
    let fair_share = width.div_ceil(organisations.len().max(1));
    let mut placements = Vec::with_capacity(stripes as usize);
    for stripe in 0..stripes {
        let mut order: Vec<(f64, usize)> =
            usable.iter().map(|&index| (weighted_key(seed, stripe, &candidates[index]), index)).collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut chosen: Vec<usize> = Vec::with_capacity(width);
        let in_organisation = |candidate: &Candidate, chosen: &[usize]| {
            chosen.iter().filter(|&&other| candidates[other].organisation == candidate.organisation).count()
        };
        let new_site = |candidate: &Candidate, chosen: &[usize]| {
            chosen.iter().all(|&other| candidates[other].site != candidate.site)
        };
        let passes: [&Pass<'_>; 5] = [
            &|candidate, chosen| in_organisation(candidate, chosen) == 0,
            &|candidate, chosen| in_organisation(candidate, chosen) < fair_share && new_site(candidate, chosen),
            &|candidate, chosen| in_organisation(candidate, chosen) < fair_share,
            &|candidate, chosen| new_site(candidate, chosen),
            &|_, _| true,
        ];
        for pass in passes {
            for &(_, index) in &order {
                if chosen.len() == width {
                    break;
                }
                if !chosen.contains(&index) && pass(&candidates[index], &chosen) {
                    chosen.push(index);
                }
            }
        }
        placements.push(chosen);
    }
    Ok(placements)
}

fn weighted_key(seed: &[u8; 32], stripe: u64, candidate: &Candidate) -> f64 {
    let mut hasher = blake3::Hasher::new_keyed(seed);
    hasher.update(&stripe.to_le_bytes()).update(&candidate.account.0);
    let bits = u64::from_le_bytes(hasher.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
    // u in (0, 1]; larger weight, larger key on average.
    let uniform = ((bits >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let weight = (candidate.free_bytes as f64).max(1.0);
    uniform.powf(1.0 / weight.log2().max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(index: u8, organisation: &str, free_bytes: u64) -> Candidate {
        Candidate {
            account: AccountId([index; 32]),
            organisation: organisation.into(),
            site: format!("site-{index}"),
            free_bytes,
        }
    }

    #[test]
    fn stripes_get_distinct_providers_from_distinct_organisations_first() {
        let candidates: Vec<Candidate> =
            (0..9).map(|index| candidate(index, &format!("org-{}", index % 3), 1 << 40)).collect();
        let placements = place(50, 3, &candidates, 1 << 20, &[1; 32]).expect("enough providers");
        for stripe in &placements {
            assert_eq!(stripe.len(), 3);
            let organisations: std::collections::HashSet<_> =
                stripe.iter().map(|&index| candidates[index].organisation.clone()).collect();
            assert_eq!(organisations.len(), 3, "one fragment per organisation when possible");
        }
        // Over many stripes every provider gets used.
        let used: std::collections::HashSet<usize> = placements.iter().flatten().copied().collect();
        assert_eq!(used.len(), 9);
        assert_eq!(place(50, 3, &candidates, 1 << 20, &[1; 32]).expect("again"), placements, "a seed reproduces it");
    }

    #[test]
    fn no_organisation_takes_more_than_its_fair_share_of_a_stripe() {
        // Six fragments over four organisations of three nodes each: at most
        // two per organisation, so losing one leaves k = 4.
        let candidates: Vec<Candidate> =
            (0..12).map(|index| candidate(index, &format!("org-{}", index % 4), 1 << 40)).collect();
        for seed in 0..50u8 {
            for stripe in place(20, 6, &candidates, 1 << 20, &[seed; 32]).expect("placement") {
                for organisation in 0..4 {
                    let name = format!("org-{organisation}");
                    let count = stripe.iter().filter(|&&index| candidates[index].organisation == name).count();
                    assert!(count <= 2, "seed {seed}: {count} fragments of a stripe in {name}");
                }
            }
        }
    }

    #[test]
    fn too_few_or_too_full_providers_is_a_clear_error() {
        let candidates = vec![candidate(1, "a", 1 << 30), candidate(2, "b", 10)];
        let error = place(1, 2, &candidates, 1 << 20, &[0; 32]).expect_err("one is full");
        assert_eq!(error, PlacementError { needed: 2, available: 1 });
        assert!(error.to_string().contains("register more nodes"));
    }

    #[test]
    fn more_free_capacity_draws_more_fragments() {
        let candidates = vec![candidate(1, "a", 1 << 20), candidate(2, "b", 1 << 40), candidate(3, "c", 1 << 40)];
        let placements = place(2000, 1, &candidates, 1024, &[5; 32]).expect("placement");
        let small = placements.iter().filter(|stripe| stripe[0] == 0).count();
        assert!(small < 2000 / 3, "the small provider got {small} of 2000");
    }
}
