//! "Did you mean ...?": the closest of some names to a misspelt one.

/// The candidate closest to `word`, when it is close enough to be a likely
/// typo of a key (up to 3 edits, fewer for short words).
pub(super) fn suggest_key<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    suggest(word, candidates, (word.chars().count() / 3).clamp(1, 3))
}

/// The candidate closest to `word`, when it is close enough to be a likely
/// typo of a block id or type: one edit. (Block ids come in families such as
/// `b45a_wideband_power_meter` / `b5b_wideband_power_meter`, where a looser
/// match would suggest a different, real block.)
pub(super) fn suggest_name<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    suggest(word, candidates, 1)
}

fn suggest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
    limit: usize,
) -> Option<&'a str> {
    candidates
        .filter(|c| *c != word)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (by chars); long inputs count as far apart.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 256 || b.len() > 256 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            suggest_name("ethernet_100g", ["ethernet_200g", "packetizer"].into_iter()),
            Some("ethernet_200g")
        );
        assert_eq!(suggest_name("zzz", ["ethernet_200g"].into_iter()), None);
        // Sibling blocks are not typos of each other.
        let siblings = ["b45a_wideband_power_meter", "b123_wideband_power_meter"];
        assert_eq!(
            suggest_name("b5b_wideband_power_meter", siblings.into_iter()),
            None
        );
    }
}
